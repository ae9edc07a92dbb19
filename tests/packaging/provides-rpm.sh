#!/bin/bash
# tests/packaging/provides-rpm.sh LIBDIR TOPDIR: build, under TOPDIR, the
# test fixture debian-chroot-provides-1-0.noarch.rpm and print its path.
#
# The rpm database of a Debian root knows nothing of the Debian packages
# in it, so the rdd-guest RPM's requirements (libc.so.6, libsystemd.so.0,
# /bin/sh, rtld(GNU_HASH)) would be unmet. This package declares what the
# root's own libc.so.6 and libsystemd.so.0 in LIBDIR provide, as computed
# by rpm's ELF dependency generator from those files, plus /bin/sh and
# rtld(GNU_HASH), which the root has. rdd-guest's requirements are so
# checked, not skipped: the snippet runs zypper without --nodeps.
set -euo pipefail
libdir=$1 top=$2
provides=$(printf '%s\n' "$(readlink -f "$libdir/libc.so.6")" "$(readlink -f "$libdir/libsystemd.so.0")" |
	/usr/lib/rpm/elfdeps --provides | sort -u)
grep -q 'libsystemd.so.0()' <<<"$provides" || { echo "no libsystemd provides found in $libdir" >&2; exit 1; }
mkdir -p "$top/SPECS"
spec=$top/SPECS/debian-chroot-provides.spec
{
	printf '%s\n' 'Name: debian-chroot-provides' 'Version: 1' 'Release: 0' \
		'Summary: What a Debian test root has outside the rpm database' \
		'License: MIT' 'BuildArch: noarch' 'Provides: /bin/sh' 'Provides: rtld(GNU_HASH)'
	for p in $provides; do echo "Provides: $p"; done
	printf '%s\n' '%description' 'Test fixture for tests/packaging and tests/kiwi.' '%files'
} >"$spec"
timeout 300 rpmbuild -bb --define "_topdir $top" "$spec" >"$top/build.log" 2>&1 ||
	{ tail -n 5 "$top/build.log" >&2; exit 1; }
echo "$top/RPMS/noarch/debian-chroot-provides-1-0.noarch.rpm"
