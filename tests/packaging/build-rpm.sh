#!/bin/bash
# Build rdd-guest's source RPM and binary RPM with rpmbuild, in a private
# top directory (default build/rpm), from the release tarball of this work
# tree (tools/dist.sh, what `make dist` runs).
#
#   tests/packaging/build-rpm.sh [--topdir DIR] [--release N] [--nocheck]
#                                [--define 'MACRO VALUE']...
#
# --release N builds the same version with Release: N (the packaging tests
# use it to make a "newer release" for rpm -U). --nocheck skips %check (the
# tests use it for those extra releases of code already checked). --define
# goes to rpmbuild. Prints the paths of the SRPM and the binary RPM on its
# last two lines.
#
# The spec's %changelog is empty, as OBS wants it; like OBS, this appends
# rdd-guest.changes to it with changelog2spec (obs-build on Debian, build
# on openSUSE). Without that tool the RPM is built with no changelog.
#
# rpmbuild runs with --nodeps: on Debian the build dependencies are Debian
# packages (tests/packaging/packages.txt), which the rpm database knows
# nothing about. On openSUSE (OBS) BuildRequires are honoured as usual.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "$here/../.." && pwd)
topdir=$tree/build/rpm
release=
nocheck=
defines=()

while [ $# -gt 0 ]; do
	case $1 in
	--topdir) topdir=$2; shift 2 ;;
	--release) release=$2; shift 2 ;;
	--nocheck) nocheck=--nocheck; shift ;;
	--define) defines+=(--define "$2"); shift 2 ;;
	*) echo "usage: $0 [--topdir DIR] [--release N] [--nocheck] [--define 'MACRO VALUE']..." >&2; exit 2 ;;
	esac
done
case $topdir in /*) ;; *) topdir=$PWD/$topdir ;; esac

cd "$tree"
name=rdd-guest
mkdir -p "$topdir"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}

# Source0 is the release tarball, made as `make dist` makes it: the files
# MANIFEST lists, as they are in this work tree.
tools/dist.sh "$topdir/SOURCES" >/dev/null

spec=$topdir/SPECS/$name.spec
cp rdd-guest.spec "$spec"
if [ -n "$release" ]; then
	sed -i "s/^Release:\([[:space:]]*\).*/Release:\1$release/" "$spec"
fi
changelog2spec=
for c in /usr/lib/build/changelog2spec /usr/lib/obs-build/changelog2spec; do
	[ -x "$c" ] && changelog2spec=$c && break
done
if [ -n "$changelog2spec" ]; then
	tail -n 1 "$spec" | grep -qx '%changelog' ||
		{ echo "$0: rdd-guest.spec must end with an empty %changelog (OBS fills it)" >&2; exit 1; }
	"$changelog2spec" --test "$name.changes" >>"$spec"
else
	echo "$0: note: no changelog2spec (obs-build or build package); the RPM gets no changelog" >&2
fi

# Packager: the builder names itself, as OBS does; the spec carries none.
# __brp_compress: Debian runs brp-compress with dash, which lacks read -d,
# so man pages would stay uncompressed; bash runs it as intended.
timeout 900 rpmbuild -ba --nodeps ${nocheck:+"$nocheck"} "${defines[@]}" \
	--define "_topdir $topdir" \
	--define "packager rdd-guest maintainers (tests/packaging/build-rpm.sh)" \
	--define "__brp_compress /bin/bash %{_rpmconfigdir}/brp-compress %{?_prefix}" \
	"$spec"

nvr=$(rpmspec -q --srpm --qf '%{name}-%{version}-%{release}' --define "_topdir $topdir" "$spec")
srpm=$topdir/SRPMS/$nvr.src.rpm
rpm=
for f in "$topdir"/RPMS/*/"$nvr".*.rpm; do
	[ -f "$f" ] && rpm=$f
done
test -f "$srpm"
test -n "$rpm"
echo "$srpm"
echo "$rpm"
