#!/bin/bash
# rdd-guest soak, stress and fault-injection suite (issue 6).
#
#   tests/stress/run.sh BINARY          e.g. build/rdd-guest, build/sanitize/rdd-guest
#
# Builds its own tools into build/stress/ (the load generator/backend, the
# accept4 fault-injection shim, the libFuzzer target for option parsing),
# then runs tests/stress/stress.py. Last line: "N passed, N failed".
# RDD_STRESS_SCALE scales connection counts (default 1);
# RDD_FUZZ_SECS bounds the fuzzing (default 60); extra arguments after
# BINARY select scenarios by name.
set -euo pipefail

if [ $# -lt 1 ]; then
	echo "usage: $0 BINARY [SCENARIO...]" >&2
	exit 2
fi
binary=$(realpath "$1")
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/build/stress"
mkdir -p "$out"

if [ ! -x "$binary" ]; then
	echo "no such binary: $binary (run make first)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# Our own flags: the caller's CFLAGS may be the daemon's sanitizer flags.
warn=(-std=c11 -Wall -Wextra -Werror)
gcc "${warn[@]}" -O2 -g -o "$out/stressor" "$root/tests/stress/stressor.c"
gcc "${warn[@]}" -O2 -g -shared -fPIC -o "$out/faultinject.so" "$root/tests/stress/faultinject.c" -ldl

# The fuzz target: clang's libFuzzer (Debian: libclang-rt-14-dev).
rm -f "$out/fuzz_options"
if command -v clang >/dev/null; then
	# shellcheck disable=SC2046 # pkg-config prints several words
	if ! clang "${warn[@]}" -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -D_GNU_SOURCE -DRDD_GUEST_VERSION='"fuzz"' \
		-I"$root/src" $(pkg-config --cflags libsystemd) \
		-o "$out/fuzz_options" "$root/tests/fuzz/fuzz_options.c" \
		"$root/src/options.c" "$root/src/log.c" 2>"$out/fuzz-build.log"; then
		echo "# fuzz target did not build:" >&2
		cat "$out/fuzz-build.log" >&2
	fi
fi

exec /usr/bin/python3 "$root/tests/stress/stress.py" "$binary" "$out" "$@"
