#!/bin/bash
# tools/dist.sh: the release tarball rdd-guest-VERSION.tar.gz, made from the
# files that MANIFEST lists (`make dist`; `make rpm` builds from it).
#
#   tools/dist.sh [OUTDIR]     write OUTDIR/rdd-guest-VERSION.tar.gz (default
#                              build/) and print its path
#   tools/dist.sh --manifest   rewrite MANIFEST's list from `git ls-files`,
#                              keeping its comment lines (`make manifest`)
#
# The same tree gives the same bytes, from a git checkout or from a plain
# copy without .git (a Docker `COPY`, an unpacked tarball): the files are
# MANIFEST's, not whatever else lies in the tree; names are sorted (C
# locale); every entry has owner and group 0 (numeric, no names), mode 0755
# (directories, and files with the owner's execute bit) or 0644, and the
# mtime of MANIFEST's "# date:" line; GNU tar format; gzip -n (no name, no
# time stamp). Bump that date with each release. The packaging suite
# (tests/packaging/run.sh) checks MANIFEST against `git ls-files` and that a
# plain copy gives the same bytes.
set -euo pipefail

die() { echo "tools/dist.sh: $*" >&2; exit 1; }

outdir=${1:-}
case $outdir in
--manifest | '') ;;
/*) ;;
*) outdir=$PWD/$outdir ;;
esac
cd "$(dirname "$0")/.."
[ -f MANIFEST ] || die "no MANIFEST in $PWD"
[ -f VERSION ] || die "no VERSION in $PWD"

# Lines of MANIFEST that are not comments or blank: one path a line.
manifest_files() { sed -e '/^#/d' -e '/^[[:space:]]*$/d' MANIFEST; }

if [ "$outdir" = --manifest ]; then
	git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
		die "--manifest needs a git checkout"
	{
		grep '^#' MANIFEST
		git ls-files | LC_ALL=C sort
	} >MANIFEST.new
	mv MANIFEST.new MANIFEST
	exit 0
fi
outdir=${outdir:-$PWD/build}

name=rdd-guest
version=$(cat VERSION)
top=$name-$version
date=$(sed -n 's/^# date:[[:space:]]*//p' MANIFEST | head -n 1)
[ -n "$date" ] || die "MANIFEST has no '# date: YYYY-MM-DDTHH:MM:SSZ' line"
epoch=$(date -u -d "$date" +%s) || die "MANIFEST's date '$date' is not a date"

manifest_files | LC_ALL=C sort -c -u ||
	die "MANIFEST's list is not sorted (LC_ALL=C sort) or names a file twice"

# In a git checkout, say what MANIFEST misses or names in vain (the
# packaging suite fails on it; `make manifest` rewrites the list).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
	[ "$(git rev-parse --show-toplevel)" = "$PWD" ]; then
	if ! drift=$(diff <(manifest_files) <(git ls-files | LC_ALL=C sort)); then
		echo "tools/dist.sh: note: MANIFEST differs from git ls-files ('>' only in git):" >&2
		grep '^[<>]' <<<"$drift" >&2 || true
	fi
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/rdd-guest-dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$top"
while IFS= read -r f; do
	case /$f/ in
	*/../* | */./* | //*) die "MANIFEST: '$f' is not a relative path inside the tree" ;;
	esac
	[ -f "$f" ] && [ ! -L "$f" ] || die "MANIFEST names '$f', which is not a regular file here"
	mkdir -p "$stage/$top/$(dirname "$f")"
	cp "$f" "$stage/$top/$f"
	if [ -n "$(find "$f" -maxdepth 0 -perm -u=x)" ]; then
		chmod 0755 "$stage/$top/$f"
	else
		chmod 0644 "$stage/$top/$f"
	fi
done < <(manifest_files)
find "$stage/$top" -type d -exec chmod 0755 {} +

(cd "$stage" && find "$top" -print0 | LC_ALL=C sort -z) >"$stage.list"
trap 'rm -rf "$stage" "$stage.list"' EXIT
mkdir -p "$outdir"
out=$outdir/$top.tar.gz
tar -C "$stage" --create --format=gnu --no-recursion --null --files-from="$stage.list" \
	--owner=0 --group=0 --numeric-owner --mtime="@$epoch" |
	gzip -9 -n >"$out.part"
mv "$out.part" "$out"
echo "$out"
