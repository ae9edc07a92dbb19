# shellcheck shell=bash
# Sourced by the packaging and kiwi suites: what happens to a suite's scratch
# directory at exit.
#
#   remove_work DIR FAILED
#
# Never deletes through a mount that outlived its namespace (a chroot's /proc,
# an nspawn bind); keeps the directory, and says where, when the suite failed
# or KEEP=1; otherwise removes it.
remove_work() {
	if findmnt -rn -o TARGET | grep "^$1" >/dev/null; then
		echo "note: mounts left under $1; not removing it" >&2
	elif [ "${KEEP:-0}" = 1 ] || [ "$2" -gt 0 ]; then
		echo "note: scratch files and logs kept in $1" >&2
	else
		rm -rf "$1"
	fi
}
