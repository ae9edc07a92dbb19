#!/bin/bash
# bench/profile.sh RDD-GUEST-BINARY [CONTENDER] [SCENARIO]
#
# perf profile of one proxy during one scenario, in the pinned placement of
# bench/run.sh: CONTENDER is rdd-splice (default), rdd-nosplice, floor
# (bench/floor.c), socat or proxyd; SCENARIO is upload (default), download,
# latency, conn1 or conn32.
# Prints the proxy's CPU seconds for the run and perf's top symbols
# (system-wide on CPU 1, where the proxy and the backend run, and the proxy
# alone); leaves perf.data in build/bench/profile-CONTENDER-SCENARIO.data.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$root/build/bench
rdd=${1:-$root/build/rdd-guest}
case $rdd in /*) ;; *) rdd=$PWD/$rdd ;; esac
contender=${2:-rdd-splice}
scenario=${3:-upload}
proxyd=/usr/lib/systemd/systemd-socket-proxyd
[ -x "$proxyd" ] || proxyd=/lib/systemd/systemd-socket-proxyd

command -v perf >/dev/null || { echo "profile: perf is not installed" >&2; exit 1; }
mkdir -p "$out"
cc -std=c11 -O2 -g -Wall -Wextra -Werror -pthread -o "$out/rddbench" "$here/rddbench.c" || exit 1
bench=$out/rddbench
if [ "$contender" = floor ]; then
	cc -std=c11 -O2 -g -Wall -Wextra -Werror -pthread -o "$out/floor" "$here/floor.c" || exit 1
fi
tmp=$(mktemp -d /tmp/rdd-profile.XXXXXX) || exit 1
cleanup() {
	local j
	j=$(jobs -pr)
	[ -n "$j" ] && kill $j 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

taskset -c 1 "$bench" backend "$tmp/b.sock" >/dev/null &
s=$tmp/p.sock
case $contender in
rdd-splice) taskset -c 1 "$rdd" --listen "unix:$s" --backend "$tmp/b.sock" --splice --log-level warning & ;;
rdd-nosplice) taskset -c 1 "$rdd" --listen "unix:$s" --backend "$tmp/b.sock" --no-splice --log-level warning & ;;
floor) taskset -c 1 "$out/floor" "$s" "$tmp/b.sock" & ;;
socat) taskset -c 1 socat "UNIX-LISTEN:$s,fork" "UNIX-CONNECT:$tmp/b.sock" & ;;
proxyd) taskset -c 1 systemd-socket-activate -l "$s" "$proxyd" --connections-max=300 "$tmp/b.sock" 2>/dev/null & ;;
*) echo "profile: unknown contender $contender" >&2; exit 2 ;;
esac
pid=$!
for ((i = 0; i < 100; i++)); do
	[ -S "$s" ] && [ -S "$tmp/b.sock" ] && "$bench" ping "$s" 2>/dev/null && break
	sleep 0.1
done
"$bench" ping "$s" || { echo "profile: $contender did not start" >&2; exit 1; }

case $scenario in
upload | download) args=("$scenario" "$s" 1073741824) ;;
latency) args=(latency "$s" 20000 64) ;;
conn1) args=(connrate "$s" 1 2) ;;
conn32) args=(connrate "$s" 32 2) ;;
*) echo "profile: unknown scenario $scenario" >&2; exit 2 ;;
esac
taskset -c 0 "$bench" "${args[@]}" >/dev/null # warm-up

data=$out/profile-$contender-$scenario.data
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat"; }
before=$(ticks)
perf record -q -g -C 1 -o "$data" -- taskset -c 0 "$bench" "${args[@]}" >/dev/null
after=$(ticks)
cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
# system calls of the proxy in a second run of the same scenario
perf stat -x, -e 'raw_syscalls:sys_enter' -e 'syscalls:sys_enter_splice' \
	-e 'syscalls:sys_enter_select' -e 'syscalls:sys_enter_pselect6' \
	-e 'syscalls:sys_enter_epoll_wait' -e 'syscalls:sys_enter_read' -e 'syscalls:sys_enter_write' \
	-e 'syscalls:sys_enter_recvfrom' -e 'syscalls:sys_enter_sendto' -e 'syscalls:sys_enter_accept4' \
	-e 'syscalls:sys_enter_connect' -e 'syscalls:sys_enter_socket' -e 'syscalls:sys_enter_close' -e 'syscalls:sys_enter_pipe2' \
	-e 'syscalls:sys_enter_fcntl' -e 'syscalls:sys_enter_getsockopt' -e 'syscalls:sys_enter_shutdown' -e 'syscalls:sys_enter_epoll_ctl' \
	-p "$pid" -o "$tmp/stat" -- taskset -c 0 "$bench" "${args[@]}" >/dev/null
echo "$contender $scenario: proxy CPU $cpu s (perf data: $data)"
echo "--- system calls of the proxy in one more run"
awk -F, '$1 + 0 > 0 { printf "%12d  %s\n", $1, $3 }' "$tmp/stat"
echo "--- CPU 1 (proxy and backend), by command"
perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null |
	grep -v '^#' | grep -v '^$' | head -6
echo "--- the proxy, top symbols (share of the proxy's samples)"
perf report -i "$data" --no-children --pid "$pid" --percentage relative --sort sym \
	--stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20
