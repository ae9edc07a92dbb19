# shellcheck shell=bash
# config.sh.d/rdd-guest.sh: install the rdd-guest RPM into the WSL image.
#
# The image's KIWI config.sh sources this file. KIWI runs config.sh
# chrooted in the new image root, after every package is installed and the
# root/ overlay is applied, with $kiwi_profiles holding the profiles being
# built, comma-separated. For the wsl profile this installs the rdd-guest
# RPM that the image build staged under /image/rdd-guest/ (KIWI leaves
# /image out of the finished image, so the staged file does not ship);
# the RPM's %post enables rdd-guest.service through its preset. For any
# other profile it does nothing.
#
# A wsl build without the package, staged or already installed, fails: the
# Windows docker CLI would have nothing to talk to. Failing here means
# `exit 1` from config.sh, which aborts the image build. Running it twice
# is harmless (zypper finds the same package installed and does nothing).
# Installing touches no repository: see the zypper call below.
#
# RDD_GUEST_RPM_DIR overrides the staging directory.
# doc/adopting-in-kiwi.md describes how an image adopts this file.

rdd_guest_fail() {
	echo "config.sh.d/rdd-guest.sh: ERROR: $*" >&2
	echo "config.sh.d/rdd-guest.sh: ERROR: the wsl image would have no Docker socket bridge; stopping the build" >&2
	exit 1
}

rdd_guest_install() {
	local dir=${RDD_GUEST_RPM_DIR:-/image/rdd-guest}
	local rpms=() f

	# Exact member of the comma-separated list: "wsl", not "wsl-test".
	case ",${kiwi_profiles:-}," in
	*,wsl,*) ;;
	*)
		echo "config.sh.d/rdd-guest.sh: profile(s) '${kiwi_profiles:-}' are not wsl, nothing to do"
		return 0
		;;
	esac

	for f in "$dir"/rdd-guest-[0-9]*.rpm; do
		case $f in
		*.src.rpm) continue ;;
		esac
		if [ -f "$f" ]; then
			rpms+=("$f")
		fi
	done

	if [ "${#rpms[@]}" -gt 1 ]; then
		rdd_guest_fail "more than one rdd-guest RPM in $dir (${rpms[*]}); stage exactly one"
	fi
	if [ "${#rpms[@]}" -eq 0 ]; then
		# An image that lists rdd-guest in its <packages> (from a local
		# rpm-md repository) has it installed by KIWI already.
		if rpm -q rdd-guest >/dev/null 2>&1; then
			echo "config.sh.d/rdd-guest.sh: $(rpm -q rdd-guest) already installed, no RPM staged in $dir"
			return 0
		fi
		rdd_guest_fail "no rdd-guest RPM in $dir and the package is not installed"
	fi

	echo "config.sh.d/rdd-guest.sh: installing ${rpms[0]}"
	# Install this one file and consult no repository. KIWI writes the
	# description's imageinclude repositories into /etc/zypp/repos.d just
	# before config.sh, with no metadata cache, and --no-refresh alone still
	# fetches their repomd.xml then: with no network zypper exits 106 and
	# the build stops; with network their metadata would ship in
	# /var/cache/zypp. So:
	# --reposd-dir on an empty directory: no repository is read, and the
	#   solver sees only the installed rpm database (@System) and the file
	#   (@commandline). A dependency the image lacks fails the install
	#   instead of being fetched.
	# --cache-dir of our own, removed afterwards: even the @System solv
	#   cache zypper writes on every run stays out of /var/cache/zypp.
	# --no-refresh: services (/etc/zypp/services.d) are not refreshed either.
	# /etc/zypp and /var/cache/zypp are left exactly as they were.
	# A locally built RPM is unsigned, hence --allow-unsigned-rpm.
	local tmp rc=0
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/rdd-guest-zypper.XXXXXX") &&
		mkdir "$tmp/repos.d" "$tmp/cache" ||
		rdd_guest_fail "cannot make a scratch directory for zypper under ${TMPDIR:-/tmp}"
	zypper --non-interactive --no-refresh \
		--reposd-dir "$tmp/repos.d" --cache-dir "$tmp/cache" \
		install --allow-unsigned-rpm --no-recommends "${rpms[0]}" || rc=$?
	rm -rf "$tmp"
	if [ "$rc" -ne 0 ]; then
		rdd_guest_fail "zypper could not install ${rpms[0]} (exit $rc); it resolves against the installed packages only, so the image must already hold what rdd-guest requires"
	fi
	rpm -q rdd-guest >/dev/null ||
		rdd_guest_fail "zypper reported success but rdd-guest is not installed"

	# The image relies on %post having enabled the unit; a preset of the
	# image's own that disables it would otherwise go unnoticed until a
	# Windows user found no Docker.
	if ! systemctl is-enabled --quiet rdd-guest.service; then
		rdd_guest_fail "rdd-guest.service is not enabled after installing the RPM (check the image's systemd presets)"
	fi
	echo "config.sh.d/rdd-guest.sh: $(rpm -q rdd-guest) installed, rdd-guest.service enabled"
}

rdd_guest_install
