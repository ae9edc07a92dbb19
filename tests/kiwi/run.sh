#!/bin/bash
# tests/kiwi/run.sh: a real `kiwi-ng system prepare` (make check-kiwi).
#
# Debian's kiwi prepares an image root, once per profile (lima, wsl), from
# the description in tests/kiwi/description/: shaped like
# rancher-desktop-opensuse's with its patch series applied (a config.kiwi
# with both profiles and an imageinclude repository, a root/ overlay, the
# RPM and the snippet staged in root/build/rdd-guest/ as the series'
# Dockerfile stages them, a config.sh with the series' lines). The root is
# bootstrapped from Debian's packages through the machine's own apt sources
# (the first deb URI for this release's suite); Debian's kiwi, rpm and
# zypper stand in for openSUSE's, whose repositories these test machines
# cannot reach. Then: for wsl, rdd-guest installed, its unit enabled, no
# zypper repository metadata, nothing staged left; for lima, none of it.
#
# Runs as root. About a minute per profile. Skips, saying why, only when
# the Debian package archive cannot be reached. Scratch files go to
# build/kiwi/run.XXXXXX, removed at the end unless KEEP=1 or a check
# failed. One line per check; the last line is "N passed, N failed".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/workdir.sh
. "$here/../lib/workdir.sh"
tree=$(cd "$here/../.." && pwd)
cd "$tree" || exit 1

passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
check() { # NAME COMMAND...: the command's status decides; its output goes to the log
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$name"
	else
		fail "$name" "$(printf '%s\n' "$out" | tail -n 5 | tr '\n' ' ')"
	fi
	printf '== %s\n%s\n' "$name" "$out" >>"$log"
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

mkdir -p build/kiwi
work=$(mktemp -d "$tree/build/kiwi/run.XXXXXX")
log=$work/log
: >"$log"
export GNUPGHOME=$work/gnupg
mkdir -m 0700 "$GNUPGHOME"
cleanup() {
	# kiwi leaves a gpg-agent running on its GNUPGHOME: ours.
	gpgconf --homedir "$GNUPGHOME" --kill gpg-agent 2>/dev/null
	remove_work "$work" "$failed"
}
trap cleanup EXIT

version=$(cat VERSION)
arch=$(uname -m)

if [ "$(id -u)" != 0 ]; then
	fail "prerequisites" "must run as root (kiwi)"
	finish
fi
missing=
for tool in kiwi-ng debootstrap rsync gpgconf rpm rpmbuild systemctl python3; do
	command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
	fail "prerequisites" "missing:$missing (apt-get install \$(cat tests/kiwi/packages.txt))"
	finish
fi
pass "prerequisites"

# The machine's own apt sources: the first deb URI that serves this
# release's suite (deb822 or one-line format).
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
uri=$(python3 - "$suite" <<'PY'
import glob, re, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        f = {}
        for line in stanza.splitlines():
            m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
            if m and not line.startswith("#"):
                f[m.group(1).lower()] = m.group(2).split()
        if f.get("enabled", ["yes"])[0] != "no" and "deb" in f.get("types", []) \
                and suite in f.get("suites", []) and f.get("uris"):
            print(f["uris"][0]); sys.exit()
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        w = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(w) >= 3 and w[0] == "deb" and w[2] == suite:
            print(w[1]); sys.exit()
PY
)
if [ -z "$suite" ] || [ -z "$uri" ]; then
	fail "the machine's apt sources" "no deb source for suite '$suite'"
	finish
fi
# Skip only when the archive cannot be reached.
if ! why=$(python3 - "$uri/dists/$suite/InRelease" <<'PY' 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=20).read(1)
PY
); then
	echo "SKIP kiwi-ng system prepare: the Debian package archive $uri ($suite) cannot be reached: $(tail -n 1 <<<"$why")"
	finish
fi
pass "the Debian package archive $uri ($suite) answers"

# --- the description, staged as the series' Dockerfile stages it ----------
desc=$work/description
stage_description() {
	local rpm_paths fixture
	cp -r "$here/description" "$desc" || return 1
	sed -e "s|@APT_URI@|$uri|" -e "s|@SUITE@|$suite|" "$desc/config.kiwi.in" >"$desc/config.kiwi" &&
		rm "$desc/config.kiwi.in" || return 1
	rpm_paths=$(timeout 900 tests/packaging/build-rpm.sh --topdir "$work/rpm" --nocheck 2>&1) ||
		{ tail -n 5 <<<"$rpm_paths"; return 1; }
	mkdir -p "$desc/root/build/rdd-guest" "$desc/root/build/fixtures" &&
		cp "$(tail -n 1 <<<"$rpm_paths")" config.sh.d/rdd-guest.sh "$desc/root/build/rdd-guest/" || return 1
	fixture=$(tests/packaging/provides-rpm.sh "/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo "$arch-linux-gnu")" \
		"$work/provides") && cp "$fixture" "$desc/root/build/fixtures/" || return 1
	find "$desc" -type f | sed "s|^$desc/||" | sort
}
check "description: config.kiwi from the machine's apt sources; the RPM and the snippet staged in root/build/rdd-guest/" \
	stage_description
[ -f "$desc/config.kiwi" ] && [ -n "$(ls "$desc/root/build/rdd-guest/"*.rpm 2>/dev/null)" ] || finish

prepare() { # PROFILE
	local t0=$SECONDS rc=0
	timeout 600 kiwi-ng --debug --profile "$1" system prepare \
		--description "$desc" --root "$work/root-$1" >"$work/kiwi-$1.log" 2>&1 || rc=$?
	echo "kiwi-ng system prepare --profile $1: exit $rc in $((SECONDS - t0)) s"
	grep 'config.sh.d/rdd-guest.sh' "$work/kiwi-$1.log" | sed 's/^.*\(config.sh.d\)/\1/'
	[ "$rc" -eq 0 ] || { grep -E 'ERROR|Error' "$work/kiwi-$1.log" | tail -n 5; return 1; }
}
in_image() { # PROFILE CMD...: rpm and systemctl on the prepared root, from outside
	local r=$work/root-$1
	shift
	case $1 in
	rpm) shift; rpm --root "$r" --dbpath /var/lib/rpm "$@" ;;
	systemctl) shift; systemctl --root="$r" "$@" ;;
	esac
}
nothing_staged() { # PROFILE: no build input ships
	local r=$work/root-$1 left
	[ ! -e "$r/build" ] || { echo "/build is in the image"; return 1; }
	left=$(find "$r" -xdev \( -name 'rdd-guest-*.rpm' -o -name 'rdd-guest-zypper.*' -o -name 'debian-chroot-provides*.rpm' \) -print)
	[ -z "$left" ] || { echo "left in the image: $left"; return 1; }
}
no_zypp_metadata() { # PROFILE: repos.d as the overlay made it, no services, nothing in /var/cache/zypp
	local r=$work/root-$1 files
	diff -r "$here/description/root/etc/zypp/repos.d" "$r/etc/zypp/repos.d" || return 1
	files=$(find "$r/etc/zypp/services.d" "$r/var/cache/zypp" -type f 2>/dev/null)
	[ -z "$files" ] || { echo "repository metadata left: $files"; return 1; }
}
wsl() {
	in_image wsl rpm -q rdd-guest | grep -qx "rdd-guest-$version-0.$arch" || { echo "not installed"; return 1; }
	[ "$(in_image wsl systemctl is-enabled rdd-guest.service)" = enabled ] || { echo "unit not enabled"; return 1; }
	[ -L "$work/root-wsl/etc/systemd/system/rancher-desktop.target.wants/rdd-guest.service" ] ||
		{ echo "no rancher-desktop.target.wants link"; return 1; }
}
lima() {
	local r=$work/root-lima f
	if in_image lima rpm -q rdd-guest; then return 1; fi
	for f in usr/sbin/rdd-guest usr/lib/systemd/system/rdd-guest.service lib/systemd/system/rdd-guest.service \
		etc/systemd/system/rancher-desktop.target.wants/rdd-guest.service; do
		if [ -e "$r/$f" ] || [ -L "$r/$f" ]; then echo "$f exists"; return 1; fi
	done
}

if check "kiwi-ng system prepare --profile wsl (config.sh installs rdd-guest)" prepare wsl; then
	check "wsl: rdd-guest $version installed, rdd-guest.service enabled (rancher-desktop.target.wants)" wsl
	check "wsl: no repository metadata: /etc/zypp as the overlay made it, nothing in /var/cache/zypp" no_zypp_metadata wsl
	check "wsl: nothing staged ships (/build, RPM files, zypper scratch)" nothing_staged wsl
fi
if check "kiwi-ng system prepare --profile lima" prepare lima; then
	check "lima: no rdd-guest package, binary, unit or enablement" lima
	check "lima: no repository metadata" no_zypp_metadata lima
	check "lima: nothing staged ships" nothing_staged lima
fi
finish
