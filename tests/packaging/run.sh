#!/bin/bash
# tests/packaging/run.sh: the packaging suite for rdd-guest (issue 3).
#
# Runs as root. Checks the release tarball (make dist: MANIFEST against git
# ls-files, the same bytes from a plain copy of the tree). Builds the RPM
# from it with rpmbuild (release 0 with %check, which runs the unit tests,
# and releases 1 and 2 for the upgrade tests), queries and lints it, then
# installs it the way the WSL image build does: in a Debian chroot made by mmdebstrap with rpm,
# zypper and systemd inside, running the KIWI config.sh snippet chrooted
# with kiwi_profiles=lima and kiwi_profiles=wsl, and /.kconfig from Debian's
# kiwi package, with repositories in /etc/zypp that the snippet must not
# consult (an unreachable one, and one that has what the RPM must not get
# from it). Then rpm -U to newer releases, with the unit enabled and
# disabled, and rpm -e. systemd-analyze verify/security judge the installed
# unit in that root.
#
# The chroot tarball is cached in build/packaging/cache/ (first run: about
# 3 minutes to make it from the machine's own apt sources). Scratch files go
# to a mktemp directory under build/packaging/, removed at the end unless
# KEEP=1. Every mount lives in a private mount namespace (unshare -m) and
# disappears with it.
#
# One line per check ("PASS name" / "FAIL name: why"); the last line is
# "N passed, N failed". Exit status 0 only when nothing failed.

# Checks are functions run through check(), which shellcheck cannot see
# (SC2317); bash -c '...' scripts get their arguments as "$1" (SC2016).
# shellcheck disable=SC2317,SC2016
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/workdir.sh
. "$here/../lib/workdir.sh"
tree=$(cd "$here/../.." && pwd)
cd "$tree" || exit 1

passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
# check NAME COMMAND...: the command's exit status decides; its output goes
# to the log and, on failure, its last lines are shown.
check() {
	local name=$1 out rc=0
	shift
	if out=$("$@" 2>&1); then
		pass "$name"
	else
		rc=1
		fail "$name" "$(printf '%s\n' "$out" | tail -n 5 | tr '\n' ' ')"
	fi
	printf '== %s\n%s\n' "$name" "$out" >>"$log"
	return "$rc"
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

mkdir -p build/packaging/cache
work=$(mktemp -d "$tree/build/packaging/run.XXXXXX")
log=$work/log
: >"$log"
cleanup() {
	declare -F stop_boot >/dev/null && stop_boot
	remove_work "$work" "$failed"
}
trap cleanup EXIT

version=$(cat VERSION)
arch=$(uname -m)

# --- prerequisites -------------------------------------------------------
missing=
for tool in rpmbuild rpm rpm2cpio cpio rpmlint rpmspec mmdebstrap systemd-analyze systemd-nspawn \
	unshare nsenter chroot pgrep git gcc python3 shellcheck; do
	command -v "$tool" >/dev/null || missing="$missing $tool"
done
kconfig=$(dpkg -L kiwi 2>/dev/null | grep -m1 '/kiwi/config/functions\.sh$')
[ -n "$kconfig" ] && [ -f "$kconfig" ] || missing="$missing kiwi(functions.sh)"
changelog2spec=/usr/lib/obs-build/changelog2spec
[ -x "$changelog2spec" ] && perl -MDate::Parse -e 1 2>/dev/null ||
	missing="$missing obs-build(changelog2spec) libtimedate-perl"
if [ "$(id -u)" != 0 ]; then
	fail "prerequisites" "must run as root (chroot, mount namespaces)"
	finish
fi
if [ -n "$missing" ]; then
	fail "prerequisites" "missing:$missing (apt-get install \$(cat tests/packaging/packages.txt))"
	finish
fi
pass "prerequisites"

check "shellcheck: the KIWI snippet and the packaging scripts" \
	shellcheck -S warning config.sh.d/rdd-guest.sh "$here/kiwi-config.sh" "$here/build-rpm.sh" "$here/run.sh" \
	"$here/provides-rpm.sh" tools/dist.sh "$tree/tests/kiwi/run.sh" "$tree/tests/kiwi/description/config.sh" \
	"$tree/tests/kiwi/description/post_bootstrap.sh"

# --- the release tarball (make dist) ---------------------------------------
manifest_is_git() {
	local listed
	listed=$(sed -e '/^#/d' -e '/^[[:space:]]*$/d' MANIFEST)
	LC_ALL=C sort -c -u <<<"$listed" || { echo "MANIFEST is not sorted (LC_ALL=C) and unique"; return 1; }
	diff -u <(echo "$listed") <(git ls-files | LC_ALL=C sort) ||
		{ echo "MANIFEST differs from git ls-files ('+' only in git): make manifest rewrites it"; return 1; }
}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	check "MANIFEST lists exactly the files git tracks (git ls-files), sorted" manifest_is_git
else
	echo "note: no git checkout here; MANIFEST not compared with git ls-files"
fi
# A plain copy of the tree, as a Docker COPY or an unpacked archive makes
# one: no .git (and git cannot find the checkout above it), no build/,
# files with other mtimes, modes (umask 002), owner, and a stray file.
plain=$work/plain-copy
dist_same_bytes() {
	local a b
	mkdir "$plain" || return 1
	tar -C "$tree" --exclude=./.git --exclude=./build -cf - . |
		(umask 0002 && tar -C "$plain" -xf - --no-same-owner --no-same-permissions --touch) || return 1
	echo stray >"$plain/src/stray.c~" && chown -R 65534:65534 "$plain" || return 1
	a=$(env -u SOURCE_DATE_EPOCH make -s dist DISTDIR="$work/dist-git") || return 1
	b=$(cd "$plain" && env -u SOURCE_DATE_EPOCH GIT_CEILING_DIRECTORIES="$work" \
		make -s dist DISTDIR="$work/dist-copy") || return 1
	[ ! -e "$plain/.git" ] && ! (cd "$plain" && GIT_CEILING_DIRECTORIES=$work git rev-parse 2>/dev/null) ||
		{ echo "the copy is a git checkout"; return 1; }
	sha256sum "$a" "$b"
	cmp "$a" "$b"
}
check "make dist: a git checkout and a plain copy without .git give the same bytes" dist_same_bytes
dist=$work/dist-git/rdd-guest-$version.tar.gz
check "the tarball: MANIFEST's files with their bytes, sorted, 0/0, MANIFEST's date, 0644/0755, gzip -n" \
	python3 "$here/check_dist.py" "$work/dist-copy/rdd-guest-$version.tar.gz" "$plain"

# --- build ---------------------------------------------------------------
build_release() { # N [--nocheck] -> topdir $work/rpm-N; prints "SRPM RPM" paths
	timeout 900 "$here/build-rpm.sh" --topdir "$work/rpm-$1" --release "$@" \
		>"$work/build-$1.log" 2>&1 || return 1
	tail -n 2 "$work/build-$1.log" | tr '\n' ' '
}
srpm='' rpms=()
if paths=$(build_release 0); then
	read -r srpm rpm0 <<<"$paths"
	rpms[0]=$rpm0
	pass "rpmbuild makes the SRPM and the binary RPM (make rpm's script)"
else
	fail "rpmbuild makes the SRPM and the binary RPM (make rpm's script)" \
		"$(tail -n 5 "$work/build-0.log" | tr '\n' ' ')"
	finish
fi
check "%check ran the unit tests during the build" \
	grep -qE '^unit: [1-9][0-9]* passed, 0 failed$' "$work/build-0.log"
# Release 2 is built as a newer compiler might build it: with a warning
# that fires (-Wpadded) added to the distribution's flags.
optflags=$(rpm --eval '%{optflags}')
for r in 1 2; do
	args=(--nocheck)
	[ "$r" = 2 ] && args+=(--define "optflags $optflags -Wpadded")
	if paths=$(build_release "$r" "${args[@]}"); then
		read -r _ "rpms[$r]" <<<"$paths"
		pass "rpmbuild makes release $r for the upgrade tests"
	else
		fail "rpmbuild makes release $r for the upgrade tests" \
			"$(tail -n 5 "$work/build-$r.log" | tr '\n' ' ')"
	fi
done

# -Werror: on for make and CI, off in the package's build.
werror_off_in_rpm() {
	local compiles
	compiles=$(grep -E '^(cc|gcc|clang) .* -c -o ' "$work/build-0.log")
	[ -n "$compiles" ] || { echo "no compile lines in the build log"; return 1; }
	if grep -e '-Werror' <<<"$compiles"; then echo "the package build compiles with -Werror"; return 1; fi
	make -n -B BUILD="$work/werror-probe" "$work/werror-probe/obj/main.o" | grep -e ' -Werror ' ||
		{ echo "make does not use -Werror"; return 1; }
}
check "-Werror: make compiles with it, the package build without (WERROR=)" werror_off_in_rpm
check "a warning a newer compiler adds does not fail the package build (release 2: -Wpadded warns)" \
	bash -c '[ -n "$1" ] && grep -q "warning: .*\[-Wpadded\]" "$2"' _ "${rpms[2]:-}" "$work/build-2.log"

# --- what the RPM says about itself ---------------------------------------
check "RPM is rdd-guest $version-0.$arch" \
	test "$(rpm -qp --qf '%{NAME} %{VERSION}-%{RELEASE}.%{ARCH}' "$rpm0")" = "rdd-guest $version-0.$arch"

files=$(rpm -qlp "$rpm0" | grep -v '^/usr/lib/\.build-id')
layout_ok() {
	local want
	for want in /usr/sbin/rdd-guest \
		/usr/lib/systemd/system/rdd-guest.service \
		/usr/lib/systemd/system-preset/90-rdd-guest.preset \
		/usr/share/man/man8/rdd-guest.8.gz; do
		grep -qx "$want" <<<"$files" || { echo "missing $want"; return 1; }
	done
	grep -q '^/usr/share/doc/.*/README\.md$' <<<"$files" || { echo "no README.md as %doc"; return 1; }
	grep -q '^/usr/share/licenses/.*/LICENSE$' <<<"$files" || { echo "no LICENSE as %license"; return 1; }
	if grep '^/usr/local' <<<"$files"; then echo "files under /usr/local"; return 1; fi
	if grep '^/etc' <<<"$files"; then echo "the package must not own /etc (enabling is done by systemctl preset)"; return 1; fi
	return 0
}
check "RPM layout: binary in /usr/sbin, unit in %_unitdir, preset, man page, README, LICENSE, nothing in /usr/local" layout_ok

modes=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpm0")
check "RPM modes: binary 0755 root:root, unit and preset 0644 root:root" \
	bash -c 'grep -qx -- "-rwxr-xr-x root:root /usr/sbin/rdd-guest" <<<"$1" &&
		grep -qx -- "-rw-r--r-- root:root /usr/lib/systemd/system/rdd-guest.service" <<<"$1" &&
		grep -qx -- "-rw-r--r-- root:root /usr/lib/systemd/system-preset/90-rdd-guest.preset" <<<"$1"' _ "$modes"

payload=$work/payload
mkdir -p "$payload"
(cd "$payload" && rpm2cpio "$rpm0" | cpio -idm --quiet) 2>>"$log"
check "packaged unit is systemd/rdd-guest.service" \
	cmp "$payload/usr/lib/systemd/system/rdd-guest.service" systemd/rdd-guest.service
check "packaged preset enables rdd-guest.service" \
	grep -qx 'enable rdd-guest.service' "$payload/usr/lib/systemd/system-preset/90-rdd-guest.preset"
check "packaged binary prints its version: rdd-guest $version" \
	test "$(timeout 10 "$payload/usr/sbin/rdd-guest" --version)" = "rdd-guest $version"

# LimitNOFILE=: the packaged daemon under the packaged unit's limit, with
# as many bulk connections as the unit's --max-connections, all splicing
# at once (nofile_check.py says what it measures). Then the same with one
# descriptor short of 1024 + 4 per connection, which must show.
check "LimitNOFILE= holds --max-connections splicing connections: 4 pipe ends each above FD_SETSIZE, copy=splice each" \
	timeout 300 python3 "$here/nofile_check.py" "$payload/usr/sbin/rdd-guest" \
	"$payload/usr/lib/systemd/system/rdd-guest.service"
one_short() {
	local m
	m=$(sed -n 's/^ExecStart=.*--max-connections[= ]\([0-9]*\).*/\1/p' systemd/rdd-guest.service)
	[ -n "$m" ] || return 1
	if timeout 300 python3 "$here/nofile_check.py" "$payload/usr/sbin/rdd-guest" \
		systemd/rdd-guest.service --nofile $((1024 + 4 * m - 1)); then
		echo "no shortfall seen"
		return 1
	fi
}
check "...and the measurement sees a limit one descriptor short of 1024 + 4 x max-connections" one_short

scripts=$(rpm -qp --scripts "$rpm0")
scriptlet() { # NAME: the body of one scriptlet
	awk -v want="$1 scriptlet" 'index($0, want) == 1 { on = 1; next }
		/^[a-z]+ scriptlet/ { on = 0 } on' <<<"$scripts"
}
check "%pre marks a first install for presets" \
	bash -c 'grep -q "needs-preset/\$service" <<<"$1"' _ "$(scriptlet preinstall)"
check "%post enables by preset on first install only (no hard enable)" \
	bash -c 'grep -q "systemctl preset" <<<"$1" && grep -q "needs-preset" <<<"$1" &&
		! grep -q "systemctl.* enable" <<<"$1"' _ "$(scriptlet postinstall)"
check "%preun disables and stops on erase only" \
	bash -c 'grep -q "\"\$1\" -eq 0" <<<"$1" &&
		grep -q "systemctl --no-reload disable --now rdd-guest.service" <<<"$1"' _ "$(scriptlet preuninstall)"
check "%postun try-restarts on upgrade only" \
	bash -c 'grep -q "\"\$1\" -ge 1" <<<"$1" &&
		grep -q "systemctl try-restart rdd-guest.service" <<<"$1"' _ "$(scriptlet postuninstall)"

requires=$(rpm -qp --requires "$rpm0" | sort -u)
check "requires libsystemd.so.0 and libc, nothing unexpected" \
	bash -c 'grep -qx "libsystemd.so.0()(64bit)" <<<"$1" &&
		! grep -vE "^(/bin/sh|libc\.so\.6\(.*|libsystemd\.so\.0\(.*|rtld\(GNU_HASH\)|rpmlib\(.*)$" <<<"$1"' _ "$requires"

check "SRPM carries the spec and the source tarball" \
	bash -c 'l=$(rpm -qlp "$1") && grep -qx rdd-guest.spec <<<"$l" && grep -qx "rdd-guest-$2.tar.gz" <<<"$l"' \
	_ "$srpm" "$version"
srpm_source_is_dist() {
	mkdir -p "$work/srpm" && (cd "$work/srpm" && rpm2cpio "$srpm" | cpio -idm --quiet) &&
		cmp "$work/srpm/rdd-guest-$version.tar.gz" "$dist"
}
check "make rpm builds on make dist: the SRPM's tarball is byte for byte make dist's" srpm_source_is_dist

# OBS: rdd-guest.changes beside the spec, %changelog empty, the macros
# package required where it exists.
changes_format() {
	local n
	"$changelog2spec" --test rdd-guest.changes >/dev/null || return 1
	n=$(grep -c '^-------------------------------------------------------------------$' rdd-guest.changes)
	[ "$n" -ge 1 ] && [ "$n" = "$(grep -cE '^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] UTC [0-9]{4} - [^<>]* <[^<>@ ]+@[^<>@ ]+>$' rdd-guest.changes)" ] ||
		{ echo "not every entry is a line of 67 dashes, then 'Www Mmm DD HH:MM:SS UTC YYYY - Name <email>'"; return 1; }
	head -n 1 rdd-guest.changes | grep -qx -- '-\{67\}' || { echo "the first line is not the dashes"; return 1; }
}
check "rdd-guest.changes is in openSUSE's format (and obs-build's changelog2spec --test reads it)" changes_format
check "rdd-guest.spec ends with an empty %changelog, for OBS to fill" \
	bash -c '[ "$(tail -n 1 rdd-guest.spec)" = "%changelog" ]'
changelog_is_changes() {
	diff <("$changelog2spec" rdd-guest.changes | sed '/^$/d') \
		<(rpm -qp --changelog "$rpm0" | sed '/^$/d')
}
check "the RPM's changelog is rdd-guest.changes, converted as OBS converts it" changelog_is_changes
macros_on_suse() {
	local suse other
	suse=$(rpmspec -q --buildrequires --define 'suse_version 1600' rdd-guest.spec) &&
		other=$(rpmspec -q --buildrequires rdd-guest.spec) || return 1
	echo "openSUSE: $suse" | tr '\n' ' '; echo
	grep -qx systemd-rpm-macros <<<"$suse" && ! grep -qx systemd-rpm-macros <<<"$other"
}
check "BuildRequires: systemd-rpm-macros on openSUSE, not where it does not exist (Debian's rpmbuild)" macros_on_suse

# The spec's Version and the VERSION file must agree, or the build stops.
mismatch() {
	local top=$work/mismatch src
	mkdir -p "$top"/{SOURCES,SPECS,BUILD}
	src=$(mktemp -d "$work/src.XXXXXX")
	tar -xzf "$work/rpm-0/SOURCES/rdd-guest-$version.tar.gz" -C "$src" || return 1
	echo 99.99.99 >"$src/rdd-guest-$version/VERSION"
	tar -czf "$top/SOURCES/rdd-guest-$version.tar.gz" -C "$src" "rdd-guest-$version" || return 1
	cp rdd-guest.spec "$top/SPECS/"
	if out=$(timeout 300 rpmbuild -bp --nodeps --define "_topdir $top" "$top/SPECS/rdd-guest.spec" 2>&1); then
		echo "rpmbuild accepted VERSION 99.99.99 with Version $version"
		return 1
	fi
	grep -q "differs from VERSION 99.99.99" <<<"$out" || { echo "$out" | tail -n 3; return 1; }
}
check "a VERSION file that disagrees with the spec's Version fails the build" mismatch

# --- rpmlint -------------------------------------------------------------
lint() {
	local out warnings id
	out=$(timeout 300 rpmlint -c "$here/rpmlint.toml" -r "$here/rdd-guest-rpmlintrc" \
		rdd-guest.spec "$srpm" "$rpm0" 2>&1)
	echo "$out"
	if grep -E ': E: ' <<<"$out"; then
		return 1
	fi
	grep -qE '[0-9]+ packages and [0-9]+ specfiles checked; 0 errors' <<<"$out" || return 1
	# Every warning left must be explained in the spec's header comment,
	# as a "# - ID" item (%% there is rpm's escape for %).
	# (No "sed | grep -q" here: with pipefail, grep -q's early exit can make
	# sed die of SIGPIPE and the pipeline fail.)
	warnings=$(sed -n 's/.*: W: \([^ ]*\).*/\1/p' <<<"$out" | sort -u)
	spec_text=$(sed 's/%%/%/g' rdd-guest.spec)
	for id in $warnings; do
		grep -qF -- "# - $id" <<<"$spec_text" || {
			echo "warning $id is not explained in rdd-guest.spec"
			return 1
		}
	done
}
check "rpmlint: no errors on the spec and both RPMs; each warning explained in the spec" lint

# --- the chroot ----------------------------------------------------------
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
chroot_pkgs=systemd,rpm,zypper
tarball=$tree/build/packaging/cache/chroot-$suite-$(echo "$chroot_pkgs" | tr ',' '-').tar
make_tarball() {
	[ -f "$tarball" ] && [ -s "$tarball" ] && return 0
	local part=${tarball%.tar}.part.tar
	rm -rf "$part"
	# No mirror named here: mmdebstrap pastes the machine's own apt
	# sources file into the chroot and downloads from there.
	timeout 1500 mmdebstrap --variant=minbase --format=tar --include="$chroot_pkgs" \
		--aptopt='Acquire::Check-Valid-Until "false"' \
		"$suite" "$part" "$sources" &&
		mv "$part" "$tarball"
}
check "Debian chroot with rpm, zypper and systemd (cached in build/packaging/cache)" make_tarball
if [ ! -f "$tarball" ]; then
	finish
fi

root=$work/root
mkdir -p "$root"
tar -xf "$tarball" -C "$root" 2>>"$log"

# in_root CMD...: run CMD chrooted in $root with /proc, /sys and /dev
# mounted as KIWI mounts them, in a private mount namespace, with the
# clean environment KIWI gives config.sh plus kiwi_profiles if set.
in_root() {
	timeout 300 unshare -m --propagation private /bin/bash -c '
		root=$1; shift
		mount -t proc proc "$root/proc" &&
		mount -t sysfs sysfs "$root/sys" &&
		mount --rbind /dev "$root/dev" || exit 125
		exec env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C \
			${kiwi_profiles+kiwi_profiles="$kiwi_profiles"} chroot "$root" "$@"
	' in_root "$root" "$@"
}

# What an openSUSE image has and a Debian chroot lacks:
# - KIWI's helper functions at /.kconfig (Debian's kiwi package);
# - rancher-desktop.target, in the image's overlay unit directory;
# - the rpm database where openSUSE's zypper looks (Debian's rpm defaults
#   to ~/.rpmdb);
# - an rpm database that knows glibc and libsystemd: provides-rpm.sh.
# fixture_rpm NAME VERSION [SPEC LINE...]: an empty noarch package built for
# these tests under $work/fixtures; prints its path.
fixture_rpm() {
	local name=$1 version=$2 top=$work/fixtures
	shift 2
	mkdir -p "$top/SPECS" || return 1
	printf '%s\n' "Name: $name" "Version: $version" 'Release: 0' \
		'Summary: Test fixture for tests/packaging/run.sh' 'License: MIT' 'BuildArch: noarch' \
		"$@" '%description' 'Test fixture for tests/packaging/run.sh.' '%files' \
		>"$top/SPECS/$name.spec"
	timeout 300 rpmbuild -bb --define "_topdir $top" "$top/SPECS/$name.spec" \
		>"$top/$name.log" 2>&1 || { tail -n 5 "$top/$name.log"; return 1; }
	echo "$top/RPMS/noarch/$name-$version-0.noarch.rpm"
}
prepare_root() {
	local libdir fixture
	cp "$kconfig" "$root/.kconfig" || return 1
	mkdir -p "$root/usr/local/lib/systemd/system" "$root/etc/rpm" "$root/image/config.sh.d" || return 1
	printf '[Unit]\nDescription=Rancher Desktop services (stand-in for the image'"'"'s target)\n' \
		>"$root/usr/local/lib/systemd/system/rancher-desktop.target"
	echo '%_dbpath /var/lib/rpm' >"$root/etc/rpm/macros.dbpath"
	libdir=$root/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo "$arch-linux-gnu")
	[ -d "$libdir" ] || libdir=$root/lib/$arch-linux-gnu
	fixture=$("$here/provides-rpm.sh" "$libdir" "$work/provides") || return 1
	cp "$fixture" "$root/tmp/" || return 1
	in_root rpm -i "/tmp/$(basename "$fixture")" || return 1
	cp "$here/kiwi-config.sh" "$root/image/config.sh" &&
		cp config.sh.d/rdd-guest.sh "$root/image/config.sh.d/rdd-guest.sh"
}
if ! check "chroot prepared: /.kconfig from Debian's kiwi, rpm database, stand-in target" prepare_root; then
	finish
fi

# What KIWI leaves in the image root just before config.sh: the
# description's imageinclude repositories in /etc/zypp/repos.d, enabled,
# with no metadata cache. Here one rpm-md repository and one service at a
# loopback port where nothing listens (the image's Leap repository, seen
# from a build with no network), and a plaindir repository that would
# satisfy a dependency the image lacks (the same repository, seen from a
# build with network). The snippet must consult none of them.
dep_name=rdd-guest-test-dependency
imageinclude_repos() {
	local dep
	mkdir -p "$root/etc/zypp/repos.d" "$root/etc/zypp/services.d" "$root/srv/rdd-test-repo" || return 1
	printf '%s\n' '[leap-16.0-oss]' 'name=leap-16.0-oss' 'enabled=1' 'autorefresh=1' \
		'baseurl=http://127.0.0.1:9/' 'type=rpm-md' 'priority=99' \
		>"$root/etc/zypp/repos.d/leap-16.0-oss.repo" &&
		printf '%s\n' '[rdd-test-service]' 'name=rdd-test-service' 'enabled=1' 'autorefresh=1' \
			'url=http://127.0.0.1:9/service' 'type=ris' \
			>"$root/etc/zypp/services.d/rdd-test-service.service" &&
		printf '%s\n' '[rdd-test-local]' 'name=rdd-test-local' 'enabled=1' 'autorefresh=1' \
			'baseurl=dir:///srv/rdd-test-repo' 'type=plaindir' 'gpgcheck=0' \
			>"$root/etc/zypp/repos.d/rdd-test-local.repo" || return 1
	dep=$(fixture_rpm "$dep_name" 1) && cp "$dep" "$root/srv/rdd-test-repo/" || return 1
	# An "rdd-guest" that requires what only that repository has.
	[ "$(fixture_rpm rdd-guest 0.0.1 "Requires: $dep_name")" = "$needs_dep" ]
}
# zypp_state: a listing of the root's /etc/zypp and /var/cache/zypp, every
# entry with its type, mode, owner, size, mtime and link target, and every
# file's sha256.
zypp_state() {
	local d
	for d in etc/zypp var/cache/zypp; do
		if [ -e "$root/$d" ] || [ -L "$root/$d" ]; then
			(cd "$root" && find "$d" -printf '%y %m %U:%G %s %T@ %p -> %l\n' | LC_ALL=C sort &&
				find "$d" -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
		else
			echo "$d: absent"
		fi
	done
}
zypp_before=$work/zypp-state.before
zypp_unchanged() {
	local leftover
	zypp_state | diff -u "$zypp_before" - || { echo "/etc/zypp or /var/cache/zypp changed"; return 1; }
	leftover=$(find "$root/tmp" "$root/var/tmp" -maxdepth 1 -name 'rdd-guest-zypper.*')
	[ -z "$leftover" ] || { echo "scratch left: $leftover"; return 1; }
}
needs_dep=$work/fixtures/RPMS/noarch/rdd-guest-0.0.1-0.noarch.rpm
if check "imageinclude repositories as KIWI leaves them: an rpm-md repository and a service at a dead loopback port, a plaindir one" imageinclude_repos; then
	zypp_state >"$zypp_before"
fi

# config PROFILE: run the image's config.sh as KIWI does.
config() {
	printf "kiwi_profiles='%s'\n" "$1" >"$root/.profile"
	kiwi_profiles=$1 in_root bash /image/config.sh
}
stage() { # RPM...: what the image build puts in /image/rdd-guest/
	rm -rf "$root/image/rdd-guest" && mkdir -p "$root/image/rdd-guest" &&
		{ [ $# -eq 0 ] || cp "$@" "$root/image/rdd-guest/"; }
}
installed() { in_root rpm -q --qf '%{NAME}-%{VERSION}-%{RELEASE}\n' rdd-guest 2>/dev/null; }
wants=$root/etc/systemd/system/rancher-desktop.target.wants/rdd-guest.service
is_enabled() { systemctl --root="$root" is-enabled rdd-guest.service 2>/dev/null; }
nothing_installed() {
	if installed; then echo "rdd-guest is installed"; return 1; fi
	for f in /usr/sbin/rdd-guest /usr/lib/systemd/system/rdd-guest.service \
		/usr/lib/systemd/system-preset/90-rdd-guest.preset /usr/share/man/man8/rdd-guest.8.gz; do
		if [ -e "$root$f" ]; then echo "$f exists"; return 1; fi
	done
	if [ -e "$wants" ] || [ -L "$wants" ]; then echo "$wants exists"; return 1; fi
	if find "$root/etc/systemd" -lname '*rdd-guest*' | grep .; then return 1; fi
}

# lima: the snippet does nothing, even with an RPM staged.
stage "$rpm0"
lima() {
	out=$(config lima 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	grep -q 'nothing to do' <<<"$out" && nothing_installed
}
check "kiwi_profiles=lima: config.sh succeeds and installs nothing" lima

# wsl without a package: a loud failure.
stage
wsl_missing() {
	if out=$(config wsl 2>&1); then
		echo "$out"; echo "config.sh succeeded without a package"
		return 1
	fi
	echo "$out"
	grep -q 'ERROR: no rdd-guest RPM in /image/rdd-guest' <<<"$out" && nothing_installed
}
check "kiwi_profiles=wsl without the RPM: config.sh fails with an error" wsl_missing

# wsl: installed, right modes, enabled through the preset by %post.
stage "$rpm0"
stat_is() { # PATH MODE: mode owner:group of a path in the root
	local got
	got=$(stat -c '%a %U:%G' "$root$1") || return 1
	[ "$got" = "$2" ] || { echo "$1: $got, want $2"; return 1; }
}
wsl_install() {
	out=$(config wsl 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	[ "$(installed)" = "rdd-guest-$version-0" ] || { echo "installed: $(installed)"; return 1; }
	stat_is /usr/sbin/rdd-guest "755 root:root" &&
		stat_is /usr/lib/systemd/system/rdd-guest.service "644 root:root" &&
		stat_is /usr/lib/systemd/system-preset/90-rdd-guest.preset "644 root:root" &&
		stat_is /usr/share/man/man8/rdd-guest.8.gz "644 root:root"
}
check "kiwi_profiles=wsl: config.sh installs the RPM with zypper; files in place with their modes" wsl_install
check "wsl: the install consulted no repository: /etc/zypp and /var/cache/zypp as before (checksum listing), no scratch left" \
	zypp_unchanged
enabled_by_symlink() {
	[ -L "$wants" ] || { echo "no $wants"; return 1; }
	# The link is absolute in the image's namespace; resolve it there.
	target=$(readlink "$wants")
	cmp "$root$target" "$root/usr/lib/systemd/system/rdd-guest.service" &&
		[ "$(is_enabled)" = enabled ]
}
check "wsl: rdd-guest.service enabled (symlink in rancher-desktop.target.wants)" enabled_by_symlink
wsl_again() {
	out=$(config wsl 2>&1) || { echo "$out"; return 1; }
	echo "$out"
	[ "$(installed)" = "rdd-guest-$version-0" ] && [ "$(is_enabled)" = enabled ] && zypp_unchanged
}
check "wsl: running config.sh a second time is harmless" wsl_again

# The unit as installed in a systemd root: verify and security.
verify() {
	local out
	# MANPATH: verify runs man(1) on the host for Documentation=man:...,
	# so point it at the root's man pages.
	out=$(MANPATH=$root/usr/share/man timeout 120 systemd-analyze verify --root="$root" rdd-guest.service 2>&1)
	local rc=$?
	echo "$out"
	[ "$rc" -eq 0 ] && [ -z "$out" ]
}
check "systemd-analyze verify: the installed unit is clean" verify
security() {
	local out level
	out=$(timeout 120 systemd-analyze security --offline=true --root="$root" rdd-guest.service 2>&1)
	echo "$out" | tail -n 20
	level=$(sed -n 's/.*Overall exposure level for rdd-guest.service: \([0-9.]*\).*/\1/p' <<<"$out")
	[ -n "$level" ] || return 1
	echo "exposure $level"
	awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'
}
check "systemd-analyze security --offline=true: exposure 2.0 or lower" security

# Upgrades keep the administrator's choice.
upgrade() { # N
	cp "${rpms[$1]}" "$root/tmp/" &&
		in_root rpm -U "/tmp/$(basename "${rpms[$1]}")" &&
		[ "$(installed)" = "rdd-guest-$version-$1" ]
}
if [ -n "${rpms[1]:-}" ] && [ -n "${rpms[2]:-}" ]; then
	check "rpm -U to release 1 succeeds" upgrade 1
	check "after the upgrade an enabled unit is still enabled" enabled_by_symlink
	check "systemctl disable in the image" in_root systemctl disable rdd-guest.service
	check "rpm -U to release 2 succeeds" upgrade 2
	still_disabled() {
		if [ -e "$wants" ] || [ -L "$wants" ]; then echo "$wants came back"; return 1; fi
		[ "$(is_enabled)" = disabled ] || { echo "is-enabled: $(is_enabled)"; return 1; }
	}
	check "after the upgrade a disabled unit stays disabled" still_disabled
else
	fail "upgrade tests" "releases 1 and 2 did not build"
fi

# Erase: files and symlinks gone (enable first, so there is a link to remove).
erase() {
	if ! in_root systemctl enable rdd-guest.service || [ ! -L "$wants" ]; then
		echo "could not enable"
		return 1
	fi
	in_root rpm -e rdd-guest || return 1
	nothing_installed
}
check "rpm -e removes the files and the enablement symlinks" erase

# The solver sees the installed packages and the staged file, nothing else:
# a requirement the image lacks fails the build, even with a repository
# at hand that has it.
missing_dependency() {
	stage "$needs_dep" || return 1
	if out=$(config wsl 2>&1); then
		echo "$out"; echo "config.sh succeeded"
		return 1
	fi
	echo "$out"
	grep -q 'ERROR: zypper could not install' <<<"$out" &&
		grep -q "nothing provides.*$dep_name" <<<"$out" || return 1
	if installed || in_root rpm -q "$dep_name"; then return 1; fi
	zypp_unchanged
}
check "wsl: a requirement the image lacks fails the build; the repository that has it is not used" missing_dependency

# An image whose own preset disables the unit: the snippet notices.
image_preset() {
	mkdir -p "$root/etc/systemd/system-preset"
	echo 'disable rdd-guest.service' >"$root/etc/systemd/system-preset/00-image.preset"
	stage "$rpm0"
	if out=$(config wsl 2>&1); then
		echo "$out"; echo "config.sh succeeded with the unit disabled"
		rm -f "$root/etc/systemd/system-preset/00-image.preset"
		return 1
	fi
	rm -f "$root/etc/systemd/system-preset/00-image.preset"
	echo "$out"
	grep -q 'ERROR: rdd-guest.service is not enabled' <<<"$out"
}
check "wsl: an image preset that disables the unit fails the build loudly" image_preset


# --- the installed unit under a running systemd ----------------------------
# systemd-nspawn boots the same root with systemd as PID 1, and the unit runs
# with every hardening directive it ships with. A drop-in changes only what
# a test machine forces: no WSL (ConditionVirtualization= reset), a free
# vsock port, and a backend that echoes. This machine has no vsock loopback
# transport (a connection to CID 1 times out), so the vsock listener is only
# started here, under the sandbox; the bytes then go through a Unix listener
# of the same sandboxed unit. tests/vm relays over real vsock.
boot_pid='' backend_pid='' init_pid=''
boot_dir=$work/boot
port=$((40000 + RANDOM % 20000))
dropin=$root/etc/systemd/system/rdd-guest.service.d
in_boot() { timeout 60 nsenter -t "$init_pid" -a "$@"; }
stop_boot() {
	if [ -n "$boot_pid" ]; then
		kill -TERM "$boot_pid" 2>/dev/null
		for _ in $(seq 1 100); do
			kill -0 "$boot_pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$boot_pid" 2>/dev/null
		wait "$boot_pid" 2>/dev/null
		boot_pid=''
	fi
	if [ -n "$backend_pid" ]; then
		kill "$backend_pid" 2>/dev/null
		wait "$backend_pid" 2>/dev/null
		backend_pid=''
	fi
}
listen_on() { # vsock|unix: the test drop-in
	local listen extra=
	if [ "$1" = vsock ]; then
		listen=vsock:$port
	else
		listen=unix:/run/rdd-test/rdd.sock
		# The listener's socket file needs a writable directory under
		# ProtectSystem=strict; the Docker socket path never does.
		extra='ReadWritePaths=/run/rdd-test'
	fi
	mkdir -p "$dropin" && cat >"$dropin/test.conf" <<-EOF
	# tests/packaging/run.sh: systemd-nspawn instead of WSL, a free port or
	# a Unix listener, a test backend. Everything else as shipped.
	[Unit]
	ConditionVirtualization=
	[Service]
	ExecStart=
	ExecStart=/usr/sbin/rdd-guest --listen $listen --backend /run/rdd-test/backend.sock --max-connections 256 --drain-timeout 10
	$extra
	EOF
}
boot() {
	mkdir -p "$boot_dir" "$root/etc/sysconfig" || return 1
	if ! in_root rpm -q rdd-guest >/dev/null 2>&1; then
		cp "${rpms[0]}" "$root/tmp/" && in_root rpm -i "/tmp/$(basename "${rpms[0]}")" || return 1
	fi
	echo CONTAINER_ENGINE=moby >"$root/etc/sysconfig/rancher-desktop"
	listen_on vsock || return 1
	timeout 600 python3 "$here/echo_backend.py" "$boot_dir/backend.sock" 550 >>"$log" 2>&1 &
	backend_pid=$!
	timeout 600 systemd-nspawn -q -D "$root" --register=no --keep-unit -b \
		--console=pipe --bind="$boot_dir:/run/rdd-test" >"$work/nspawn.log" 2>&1 </dev/null &
	boot_pid=$!
	# timeout -> systemd-nspawn -> the container's systemd (PID 1 inside).
	for _ in $(seq 1 150); do
		for p in $(pgrep -P "$boot_pid"); do
			for q in $(pgrep -P "$p"); do
				if [ "$(cat "/proc/$q/comm" 2>/dev/null)" = systemd ]; then
					init_pid=$q
				fi
			done
		done
		[ -n "$init_pid" ] && break
		sleep 0.2
	done
	[ -n "$init_pid" ] || { echo "no systemd in the container"; cat "$work/nspawn.log"; return 1; }
	# Until systemd's private socket exists, systemctl cannot ask.
	local state=
	for _ in $(seq 1 120); do
		state=$(in_boot systemctl is-system-running 2>/dev/null)
		case $state in running | degraded) break ;; esac
		sleep 0.5
	done
	echo "system: $state"
	case $state in running | degraded) ;; *) return 1 ;; esac
	[ -S "$boot_dir/backend.sock" ]
}
active() { in_boot systemctl is-active rdd-guest.service; }
listening_lines() { in_boot journalctl -u rdd-guest.service -o cat | grep -c "listening on $1"; }
start_unit() { # LISTEN
	in_boot systemctl start rdd-guest.service || { in_boot journalctl -u rdd-guest.service -o cat | tail; return 1; }
	[ "$(active)" = active ] || return 1
	in_boot journalctl -u rdd-guest.service -o cat | grep "listening on $1"
}
to_unix() {
	in_boot systemctl stop rdd-guest.service &&
		listen_on unix && in_boot systemctl daemon-reload &&
		start_unit unix:/run/rdd-test/rdd.sock
}
relay() { timeout 60 python3 "$here/relay_client.py" "unix:$boot_dir/rdd.sock" 1048576; }
drain_on_restart() {
	local ready=$boot_dir/ready go=$boot_dir/go client state before
	before=$(listening_lines unix:)
	rm -f "$ready" "$go"
	timeout 60 python3 "$here/relay_client.py" "unix:$boot_dir/rdd.sock" 1048576 --hold "$ready" "$go" &
	client=$!
	for _ in $(seq 1 100); do [ -e "$ready" ] && break; sleep 0.1; done
	[ -e "$ready" ] || { echo "client did not connect"; kill "$client"; return 1; }
	# What %postun runs on upgrade.
	in_boot systemctl try-restart --no-block rdd-guest.service || return 1
	# The old daemon is draining: stopping, with our connection still open.
	for _ in $(seq 1 50); do
		state=$(in_boot systemctl show -P ActiveState rdd-guest.service)
		[ "$state" = deactivating ] && break
		sleep 0.1
	done
	echo "state while the connection is open: $state"
	touch "$go"
	wait "$client" || return 1
	[ "$state" = deactivating ] || return 1
	for _ in $(seq 1 100); do [ "$(active)" = active ] && break; sleep 0.2; done
	[ "$(active)" = active ] && [ "$(listening_lines unix:)" -gt "$before" ]
}
# Issue 10: restarts and upgrades fail no request. A client makes one
# request every 10 ms (4 KiB, echoed, checksummed) through five try-restarts
# and two rpm -U to newer releases (whose %postun try-restarts); the
# listener stays in systemd's descriptor store, so every request either is
# relayed by the old instance or waits in the backlog for the new one.
restart_figure=$work/restart-figure
restarts_fail_nothing() {
	local stop=$boot_dir/stop-loop client rc out exits served_each passed_in r
	rm -f "$stop" "$restart_figure"
	local since
	since=$(in_boot date '+%Y-%m-%d %H:%M:%S')
	timeout 300 python3 "$here/restart_loop.py" "unix:$boot_dir/rdd.sock" "$stop" 240 \
		>"$work/restart-loop.out" 2>&1 &
	client=$!
	# The starts the earlier checks made count against systemd's start
	# limit (5 in 10 s); the restarts below are 3 s apart, as restarts of
	# a real system are, so they stay under it.
	in_boot systemctl reset-failed rdd-guest.service
	sleep 1
	for r in 1 2 3 4 5; do
		in_boot systemctl try-restart rdd-guest.service || { echo "try-restart $r failed"; touch "$stop"; wait "$client"; return 1; }
		sleep 3
	done
	for r in 1 2; do
		cp "${rpms[$r]}" "$boot_dir/" &&
			in_boot rpm -U "/run/rdd-test/$(basename "${rpms[$r]}")" ||
			{ echo "rpm -U to release $r failed"; touch "$stop"; wait "$client"; return 1; }
		[ "$(installed)" = "rdd-guest-$version-$r" ] || { echo "not at release $r: $(installed)"; touch "$stop"; wait "$client"; return 1; }
		sleep 3
	done
	sleep 1
	touch "$stop"
	wait "$client"
	rc=$?
	cat "$work/restart-loop.out"
	head -n 1 "$work/restart-loop.out" >"$restart_figure"
	out=$(in_boot journalctl -u rdd-guest.service -o cat --since "$since")
	# Seven instances ended (5 try-restarts, 2 upgrades), each after serving
	# and draining: its last counters line says active=0 and served>0.
	exits=$(grep -c '^counters: active=0 served=[1-9]' <<<"$out")
	served_each=$(grep '^counters: ' <<<"$out" | sed 's/.* served=\([0-9]*\).*/\1/' | tr '\n' ' ')
	passed_in=$(grep -c 'listening on unix:/run/rdd-test/rdd.sock (passed in' <<<"$out")
	echo "instances ended with active=0 and served>0: $exits (served: $served_each); started on the stored listener: $passed_in"
	echo "served $served_each" >>"$restart_figure"
	[ "$rc" -eq 0 ] && [ "$exits" -ge 7 ] && [ "$passed_in" -ge 7 ]
}
clean_stop() {
	in_boot systemctl stop rdd-guest.service || return 1
	out=$(in_boot systemctl show -p Result -p ExecMainStatus rdd-guest.service)
	echo "$out"
	grep -qx 'Result=success' <<<"$out" && grep -qx 'ExecMainStatus=0' <<<"$out"
}
containerd_gate() {
	local state before
	before=$(listening_lines unix:)
	echo CONTAINER_ENGINE=containerd >"$root/etc/sysconfig/rancher-desktop"
	in_boot systemctl start rdd-guest.service
	state=$(active)
	echo "is-active: $state"
	echo CONTAINER_ENGINE=moby >"$root/etc/sysconfig/rancher-desktop"
	[ "$state" != active ] && [ "$(listening_lines unix:)" -eq "$before" ]
}
# boot runs in this shell, not through check(): it keeps the PIDs of what
# it starts, for stop_boot.
if boot >"$work/boot.out" 2>&1; then
	pass "systemd-nspawn boots the image root with systemd"
	cat "$work/boot.out" >>"$log"
	if check "rdd-guest.service starts hardened (Type=notify) with its AF_VSOCK listener" start_unit "vsock:$port" &&
		check "the same unit, switched to a Unix listener, starts" to_unix; then
		check "the sandboxed daemon relays 1 MiB both ways with half-close" relay
		check "try-restart (what an upgrade runs) drains an open connection, then the new daemon listens" drain_on_restart
		if [ -n "${rpms[1]:-}" ] && [ -n "${rpms[2]:-}" ]; then
			check "a request every 10 ms through 5 try-restarts and 2 rpm -U: none fails, every instance drained and served" \
				restarts_fail_nothing
			[ -s "$restart_figure" ] && echo "# restarts: $(tr '\n' ' ' <"$restart_figure")"
		fi
		check "systemctl stop: the daemon exits 0" clean_stop
		check "CONTAINER_ENGINE=containerd: ExecCondition keeps the daemon from starting" containerd_gate
	fi
else
	fail "systemd-nspawn boots the image root with systemd" "$(tail -n 5 "$work/boot.out" | tr '\n' ' ')"
fi
stop_boot
rm -rf "$dropin"

# --- the upstream patch series (contrib/rancher-desktop-opensuse) ---------
# git am onto a git repository made from the snapshot of upstream 67d8db0
# (RDD_UPSTREAM_SNAPSHOT, default ../shared/upstream/rancher-desktop-opensuse
# beside this tree; skipped when there is none). Then what Docker and KIWI
# would run, as far as this machine can: the Leap stage's rpmbuild command
# on make dist's tarball, and the patched config.sh's rdd-guest part in the
# chroot for lima and wsl.
snapshot=${RDD_UPSTREAM_SNAPSHOT:-$tree/../shared/upstream/rancher-desktop-opensuse}
series=$tree/contrib/rancher-desktop-opensuse
upstream=$work/upstream
git_test() { git -C "$upstream" -c user.name=rdd-test -c user.email=rdd-test@example.invalid "$@"; }
series_applies() {
	cp -r "$snapshot" "$upstream" && chmod -R u+w "$upstream" || return 1
	git_test init -q && git_test add -A -f && git_test commit -q -m "upstream 67d8db0 (snapshot)" || return 1
	git_test am -q "$series"/*.patch || return 1
	git_test log --format='%h %s' | head -n 4
	[ -z "$(git_test status --porcelain)" ]
}
go_bridge_gone() {
	local base changed
	cd "$upstream" || return 1
	base=$(git_test rev-list --max-parents=0 HEAD)
	changed=$(git_test diff --name-status "$base" HEAD | tr '\t' ' ')
	echo "$changed"
	[ "$changed" = "$(printf '%s\n' 'M .github/workflows/lint.yaml' 'M Dockerfile' 'M Makefile' \
		'M config.sh' 'M root/build/versions.env' 'D root/usr/local/lib/systemd/system/rdd-guest.service' \
		'D src/rdd-guest/Makefile' 'D src/rdd-guest/go.mod' 'D src/rdd-guest/go.sum' 'D src/rdd-guest/main.go')" ] ||
		{ echo "the series changes other files than these"; return 1; }
	[ ! -e src/rdd-guest ] && [ ! -e root/usr/local/lib/systemd/system/rdd-guest.service ] || return 1
	if grep -n -e '^WORKDIR /rd/rdd-guest$' -e '/go/bin/rdd-guest' Dockerfile ||
		grep -n 'systemctl enable rdd-guest' config.sh ||
		grep -rn 'rdd-guest' .github .golangci.yml .gitignore .dockerignore Makefile.docker; then
		echo "the Go bridge is still there"
		return 1
	fi
	# The five other Go binaries, and the COPY that ships them, stay.
	[ "$(grep -c 'go build' Dockerfile)" = 5 ] &&
		grep -qxF 'COPY --from=gobuild /go/bin/* /description/root/usr/local/bin/' Dockerfile
}
pinned() {
	local RDD_GUEST_VERSION='' RDD_GUEST_SUM='' RDD_GUEST_REPO='' now
	# shellcheck source=/dev/null
	. "$upstream/root/build/versions.env" || return 1
	echo "RDD_GUEST_REPO=$RDD_GUEST_REPO RDD_GUEST_VERSION=$RDD_GUEST_VERSION RDD_GUEST_SUM=$RDD_GUEST_SUM"
	now=$(sha256sum <"$dist" | cut -d' ' -f1)
	[ "$RDD_GUEST_SUM" = "$now" ] ||
		echo "note: this tree's make dist gives $now; refresh the pin when releasing (doc/adopting-in-kiwi.md)"
	[ "$RDD_GUEST_VERSION" = "v$version" ] && [ -n "$RDD_GUEST_REPO" ] &&
		[[ $RDD_GUEST_SUM =~ ^[0-9a-f]{64}$ ]]
}
# The Leap stage's build command, run here: /rd and /out under $work,
# versions.env pinned to make dist's tarball of this tree; --nodeps and
# bash for brp-compress, as build-rpm.sh does on Debian.
leap=$work/leap-stage
leap_stage() {
	local cmd
	cmd=$(python3 "$here/upstream_series.py" stage "$upstream") || return 1
	echo "$cmd"
	mkdir -p "$leap/rd" && cp "$dist" "$leap/rd/" &&
		sed "s/^RDD_GUEST_SUM=.*/RDD_GUEST_SUM=$(sha256sum <"$dist" | cut -d' ' -f1)/" \
			"$upstream/root/build/versions.env" >"$leap/rd/versions.env" || return 1
	cmd=$(sed -e "s|\([ '\"]\)/rd/|\1$leap/rd/|g" -e "s|\([ '\"]\)/out\b|\1$leap/out|g" \
		-e 's|rpmbuild -tb|rpmbuild -tb --nodeps --define "__brp_compress /bin/bash %{_rpmconfigdir}/brp-compress %{?_prefix}"|' <<<" $cmd")
	(cd "$leap" && timeout 900 sh -c "$cmd") || return 1
	ls -l "$leap/out"
	[ -f "$leap/out/rdd-guest-$version-0.$arch.rpm" ] && cmp "$leap/out/rdd-guest.sh" config.sh.d/rdd-guest.sh
}
upstream_config() { # PROFILE: the patched config.sh's rdd-guest part, as KIWI runs config.sh
	printf "kiwi_profiles='%s'\n" "$1" >"$root/.profile"
	kiwi_profiles=$1 in_root bash /image/upstream-config.sh
}
# What the builder stage's COPY --from=rdd-guest and KIWI's overlay leave.
stage_upstream() {
	rm -rf "$root/build" && mkdir -p "$root/build/rdd-guest" &&
		cp "$leap/out/"* "$root/build/rdd-guest/" &&
		cp "$upstream/root/build/versions.env" "$root/build/"
}
upstream_lima() {
	stage_upstream && upstream_config lima || return 1
	nothing_installed || return 1
	[ ! -e "$root/build" ] || { echo "/build ships"; return 1; }
}
upstream_wsl() {
	stage_upstream && upstream_config wsl || return 1
	[ "$(installed)" = "rdd-guest-$version-0" ] && [ "$(is_enabled)" = enabled ] || return 1
	[ ! -e "$root/build" ] || { echo "/build ships"; return 1; }
	zypp_unchanged
}
if [ ! -f "$snapshot/config.kiwi" ]; then
	echo "SKIP the upstream patch series: no snapshot of rancher-desktop-opensuse at $snapshot (set RDD_UPSTREAM_SNAPSHOT)"
elif check "the series (contrib/rancher-desktop-opensuse) applies with git am to a git repository of upstream 67d8db0" series_applies; then
	check "...and leaves nothing of the Go bridge: module, Dockerfile lines, overlay unit, enable line, lint step" go_bridge_gone
	check "...and pins rdd-guest v$version by repository and sha256 in versions.env" pinned
	check "...and its Leap stage's command builds the RPM from make dist's tarball and takes the snippet from it" leap_stage
	python3 "$here/upstream_series.py" config "$upstream" >"$root/image/upstream-config.sh" 2>"$work/upstream-config.err"
	check "...and its config.sh installs rdd-guest in the wsl branch, before /build/ is removed" \
		bash -c '[ -s "$1" ] || { cat "$2"; exit 1; }; cat "$1"' _ "$root/image/upstream-config.sh" "$work/upstream-config.err"
	# A clean image root: no rdd-guest from the tests above.
	in_root rpm -e rdd-guest >/dev/null 2>&1
	check "patched config.sh, kiwi_profiles=lima: nothing installed, /build/ removed" upstream_lima
	check "patched config.sh, kiwi_profiles=wsl: installed and enabled, /build/ removed, /etc/zypp and /var/cache/zypp untouched" upstream_wsl
fi

finish
