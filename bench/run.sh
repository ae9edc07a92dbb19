#!/bin/bash
# bench/run.sh RDD-GUEST-BINARY
#
# Measures rdd-guest beside the proxies a user would pick instead (socat,
# systemd-socket-proxyd), beside "floor" (bench/floor.c, a minimal relay
# built here as a reference: the least a userspace relay can do) and beside
# the direct connection (no relay at all), every contender listening on a
# Unix socket and forwarding to the same Unix backend (bench/rddbench.c).
# Every scenario runs once untimed per contender as a warm-up, then in
# interleaved rounds (A B C D, A B C D, ...); the report takes medians and
# prints beside each the spread of the rounds. Where a goal compares two
# figures whose spreads overlap, the contenders involved get more rounds (up
# to BENCH_MAX_ROUNDS) before the goal table says "within noise".
#
# Scenarios: upload, download (1 GiB each way), latency (64-byte ping-pong),
# conn1/conn32 (connections per second), idleN (the ping-pong with N idle
# relayed connections held open, and the relay's user and system CPU per
# round trip), throttled (a download by a paced reader slower than the
# relay), memory. With BENCH_RDD_OLD=PATH an earlier build of the daemon
# takes part in the idle and throttled scenarios, for before/after figures.
# Afterwards, tests/vm/run.sh's throughput scenario (real AF_VSOCK under
# qemu, both directions, both copy modes) on every kernel it can boot.
#
# Writes build/bench/results.md, results.png, idle.png, raw.tsv, vm.tsv and
# bench/README-section.md, prints the tables, then one line per check and
# "N passed, N failed".
#
# Knobs (environment), for development; `make bench` uses the defaults:
#   BENCH_CONTENDERS   default "direct floor rdd-splice rdd-nosplice socat proxyd"
#   BENCH_RDD_OLD      an earlier rdd-guest binary (default: none)
#   BENCH_PASSES       default "pinned unpinned"
#   BENCH_ROUNDS (3)  BENCH_MAX_ROUNDS (5)  BENCH_BYTES (1 GiB)  BENCH_RTT (20000)
#   BENCH_EXTRA_SECONDS (120): time all the extra rounds may take together
#   BENCH_CONN_SECONDS (1.5)  BENCH_HOLD (200)
#   BENCH_RTT_SECONDS (5): a latency run ends after BENCH_RTT round trips or this
#   BENCH_IDLE ("0 64 250")  BENCH_IDLE_RTT (30000)  BENCH_IDLE_SECONDS (6)
#   BENCH_THROTTLE     "BYTES MBPS CHUNK" (default "268435456 250 16384")
#   BENCH_SCENARIOS    default, pinned pass: "upload download latency conn1
#                      conn32 idle0 idle64 idle250 throttled memory"; unpinned
#                      pass: the same without the idle and throttled ones
#   BENCH_VM           auto (default: when qemu-system-x86_64 is installed), 0, 1
#   BENCH_VM_KERNELS   kernel images (default: each /boot/vmlinuz-* with modules)
#   BENCH_VM_RUNS (3)  BENCH_VM_ACCEL (tcg)  BENCH_VM_SIZE (256M)
#   BENCH_VM_TIMEOUT (240 s a boot; a boot that does not finish ends that kernel's runs)
# The whole script is one brace group, so bash parses all of it before it
# runs any of it: editing the file during a run cannot derail that run.
{
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${BENCH_OUT:-$root/build/bench}
# a development run (its own BENCH_OUT) leaves the README's section alone
readme=$root/bench/README-section.md
[ -n "${BENCH_OUT:-}" ] && readme=$out/README-section.md
rdd_arg=${1:-$root/build/rdd-guest}

contenders=${BENCH_CONTENDERS:-direct floor rdd-splice rdd-nosplice socat proxyd}
rdd_old=${BENCH_RDD_OLD:-}
old_contenders=
[ -n "$rdd_old" ] && old_contenders="rdd-old-splice rdd-old-nosplice"
passes=${BENCH_PASSES:-pinned unpinned}
rounds=${BENCH_ROUNDS:-3}
max_rounds=${BENCH_MAX_ROUNDS:-5}
extra_budget=${BENCH_EXTRA_SECONDS:-120}
extra_spent=0
[ "$max_rounds" -ge "$rounds" ] || max_rounds=$rounds
idle_counts=${BENCH_IDLE:-0 64 250}
idle_rtt=${BENCH_IDLE_RTT:-30000}
rtt_seconds=${BENCH_RTT_SECONDS:-5}
idle_seconds=${BENCH_IDLE_SECONDS:-6}
read -r throttle_bytes throttle_rate throttle_chunk <<<"${BENCH_THROTTLE:-268435456 250 16384}"
idle_scenarios=
for n in $idle_counts; do idle_scenarios="$idle_scenarios idle$n"; done
idle_scenarios=${idle_scenarios# }
first_idle=${idle_scenarios%% *}
bytes=${BENCH_BYTES:-1073741824}
warm_bytes=$((bytes / 4))
rtt=${BENCH_RTT:-20000}
msg=64
conn_seconds=${BENCH_CONN_SECONDS:-1.5}
hold=${BENCH_HOLD:-200}
proxyd=/usr/lib/systemd/systemd-socket-proxyd
[ -x "$proxyd" ] || proxyd=/lib/systemd/systemd-socket-proxyd
clk_tck=$(getconf CLK_TCK)

say() { echo "bench: $*" >&2; }
fatal() { say "$*"; echo "0 passed, 1 failed"; exit 1; }

for tool in cc taskset socat systemd-socket-activate gnuplot python3 timeout ps; do
	command -v "$tool" >/dev/null || fatal "missing tool: $tool (see bench/packages.txt)"
done
[ -x "$proxyd" ] || fatal "missing systemd-socket-proxyd"
case " $contenders " in
*" rdd-"*)
	case $rdd_arg in /*) rdd=$rdd_arg ;; *) rdd=$PWD/$rdd_arg ;; esac
	[ -x "$rdd" ] || fatal "rdd-guest binary not found: $rdd_arg (run make first)"
	;;
*) rdd= ;;
esac
if [ -n "$rdd_old" ]; then
	case $rdd_old in /*) ;; *) rdd_old=$PWD/$rdd_old ;; esac
	[ -x "$rdd_old" ] || fatal "BENCH_RDD_OLD: not an executable: $rdd_old"
fi

mkdir -p "$out" || fatal "cannot create $out"
bench=$out/rddbench
cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -o "$bench.tmp" "$here/rddbench.c" &&
	mv -f "$bench.tmp" "$bench" || fatal "cannot build rddbench"
floor=$out/floor
cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -o "$floor.tmp" "$here/floor.c" &&
	mv -f "$floor.tmp" "$floor" || fatal "cannot build floor"

tmp=$(mktemp -d /tmp/rdd-bench.XXXXXX) || fatal "mktemp failed"
# only this shell's own background jobs that are still running: never a
# pid that may have been reused by another process
cleanup() {
	local jobs_left
	jobs_left=$(jobs -pr)
	[ -n "$jobs_left" ] && kill $jobs_left 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

raw=$out/raw.tsv
: >"$raw"
: >"$out/errors.log"
start_time=$(date +%s)

# ------------------------------------------------------------- processes

# pid_alive PID: the process exists and is not a zombie
pid_alive() {
	local state
	state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

children_of() { ps --ppid "$1" -o pid= 2>/dev/null | tr -d ' '; }

# wait_ready SOCKET PID: a request/reply goes through within 10 s
wait_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		pid_alive "$2" || return 1
		[ -S "$1" ] && "$bench" ping "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# start_backend PASS: sets backend_sock, backend_pid
start_backend() {
	backend_sock=$tmp/$1-backend.sock
	$pin_server "$bench" backend "$backend_sock" >"$tmp/$1-backend.out" 2>&1 &
	backend_pid=$!
	wait_ready "$backend_sock" "$backend_pid" || fatal "backend did not start"
}

# start_contender PASS NAME: sets sock[NAME] and pid[NAME] (empty for direct)
declare -A sock pid
start_contender() {
	local p=$1 c=$2 s=$tmp/$1-$2.sock
	case $c in
	direct)
		sock[$c]=$backend_sock
		pid[$c]=
		return 0
		;;
	floor)
		$pin_server "$floor" "$s" "$backend_sock" 2>>"$tmp/$p-$c.log" &
		;;
	rdd-splice | rdd-nosplice | rdd-old-splice | rdd-old-nosplice)
		local mode=--splice bin=$rdd
		case $c in *-nosplice) mode=--no-splice ;; esac
		case $c in rdd-old-*) bin=$rdd_old ;; esac
		$pin_server "$bin" --listen "unix:$s" --backend "$backend_sock" \
			--max-connections 300 "$mode" 2>>"$tmp/$p-$c.log" &
		;;
	socat)
		$pin_server socat "UNIX-LISTEN:$s,fork" "UNIX-CONNECT:$backend_sock" \
			2>>"$tmp/$p-$c.log" &
		;;
	proxyd)
		# execs systemd-socket-proxyd (same pid) at the first connection,
		# which the readiness probe makes
		$pin_server systemd-socket-activate -l "$s" \
			"$proxyd" --connections-max=300 "$backend_sock" 2>>"$tmp/$p-$c.log" &
		;;
	esac
	pid[$c]=$!
	sock[$c]=$s
	wait_ready "$s" "${pid[$c]}" || {
		tail -5 "$tmp/$p-$c.log" >&2
		fatal "$c did not start"
	}
}

# restart_contender PASS NAME: a fresh instance on the same socket path
restart_contender() {
	[ -n "${pid[$2]}" ] || return 0
	kill "${pid[$2]}" 2>/dev/null
	wait "${pid[$2]}" 2>/dev/null
	rm -f "${sock[$2]}"
	start_contender "$1" "$2"
}

# proxy_pids NAME: the proxy process and, for socat, its forked children
proxy_pids() {
	[ -n "${pid[$1]}" ] || return 0
	echo "${pid[$1]}"
	children_of "${pid[$1]}"
}

# settle NAME [N]: wait (up to 3 s) until socat has reaped its
# per-connection children but N (the connections still held open), so that
# their CPU time is in the parent's cutime/cstime and the idle memory figure
# is the parent alone
settle() {
	local i keep=${2:-0}
	[ -n "${pid[$1]}" ] || return 0
	for ((i = 0; i < 30; i++)); do
		[ "$(children_of "${pid[$1]}" | grep -c .)" -le "$keep" ] && return 0
		sleep 0.1
	done
}

# cpu_ticks NAME: user+system CPU of the proxy including reaped children
cpu_ticks() {
	[ -n "${pid[$1]}" ] || { echo 0; return; }
	awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/${pid[$1]}/stat"
}

# cpu_split NAME: "USER SYSTEM" clock ticks of the proxy (all its threads,
# and its reaped children), from /proc/PID/stat
cpu_split() {
	[ -n "${pid[$1]}" ] || { echo "0 0"; return; }
	awk '{ sub(/.*\) /, ""); print $12 + $14, $13 + $15 }' "/proc/${pid[$1]}/stat"
}

# waits NAME: how often the proxy has blocked (voluntary context switches
# of its one thread: for an event loop, its waits in select or epoll_wait).
# Empty for the proxies whose connections live in other threads or
# processes (floor, socat), whose counts end with them.
waits() {
	case $1 in rdd-* | proxyd) ;; *) return 0 ;; esac
	awk '/^voluntary_ctxt_switches:/ { print $2 }' "/proc/${pid[$1]}/status" 2>/dev/null
}

# per_unit BEFORE AFTER NUM DEN NAME: "NAME_user=.. NAME_sys=.." with the
# tick differences (from cpu_split) in seconds, times NUM/DEN
per_unit() {
	awk -v b="$1" -v a="$2" -v num="$3" -v den="$4" -v n="$5" -v hz="$clk_tck" 'BEGIN {
		split(b, x, " "); split(a, y, " "); k = num / den / hz
		printf "%s_user=%.4f %s_sys=%.4f", n, (y[1] - x[1]) * k, n, (y[2] - x[2]) * k }'
}

# start_hold NAME N: N relayed connections held open by a background
# rddbench hold; sets hold_pid. Returns 1 (and stops it) if it never says ready.
start_hold() {
	local c=$1 n=$2 i
	: >"$tmp/hold.out"
	$pin_client "$bench" hold "${sock[$c]}" "$n" 600 >"$tmp/hold.out" 2>>"$out/errors.log" &
	hold_pid=$!
	for ((i = 0; i < 300; i++)); do
		grep -q '^ready' "$tmp/hold.out" && return 0
		pid_alive "$hold_pid" || break
		sleep 0.1
	done
	{
		echo "$c: no ready line from rddbench hold $n after $((i / 10)) s;" \
			"hold alive: $(pid_alive "$hold_pid" && echo yes || echo no);" \
			"proxy alive: $( [ -z "${pid[$c]}" ] || pid_alive "${pid[$c]}" && echo yes || echo no);" \
			"hold output: $(cat "$tmp/hold.out")"
		tail -3 "$tmp/$p-$c.log" 2>/dev/null
	} >>"$out/errors.log"
	stop_hold
	return 1
}

stop_hold() {
	[ -n "${hold_pid:-}" ] || return 0
	kill "$hold_pid" 2>/dev/null
	wait "$hold_pid" 2>/dev/null
	hold_pid=
}

# mem_of PIDS...: "rss=KiB anon=KiB pss=KiB" summed over the processes.
# anon is private anonymous memory: per mapping, the smaller of Anonymous
# and Private_Clean+Private_Dirty (anonymous pages that no other process
# shares, so socat's fork-shared pages are not counted twice).
mem_of() {
	local p files=()
	for p in "$@"; do
		files+=("/proc/$p/status" "/proc/$p/smaps_rollup" "/proc/$p/smaps")
	done
	# one tail and one awk for all the files (socat has 201 processes with
	# 200 connections); tail marks each file and skips one that vanished
	tail -n +1 -v "${files[@]}" 2>/dev/null | awk '
		function flush() { if (seen) anon += (a < q ? a : q); a = 0; q = 0; seen = 0 }
		/^==> .* <==$/ { flush(); kind = $2; sub(/.*\//, "", kind); next }
		kind == "status" && /^VmRSS:/ { rss += $2 }
		kind == "smaps_rollup" && /^Pss:/ { pss += $2 }
		kind == "smaps" {
			if (/^[0-9a-f]+-[0-9a-f]+ /) { flush(); seen = 1 }
			else if (/^Anonymous:/) a = $2
			else if (/^Private_(Clean|Dirty):/) q += $2
		}
		END { flush(); printf "rss=%d anon=%d pss=%d\n", rss, anon, pss }'
}

# ------------------------------------------------------------- scenarios

record() { # PASS SCENARIO CONTENDER ROUND KEY=VALUE...
	local IFS=$'\t'
	echo "$*" | sed 's/ /\t/g' >>"$raw"
}

declare -A run_ok run_failed

# run_one PASS SCENARIO CONTENDER ROUND(0 = warm-up)
run_one() {
	local p=$1 sc=$2 c=$3 r=$4 s=${sock[$3]} res rc before after n t0
	t0=$(date +%s.%N)
	case $sc in
	upload | download)
		n=$bytes
		[ "$r" = 0 ] && n=$warm_bytes
		settle "$c"
		before=$(cpu_ticks "$c")
		res=$(timeout 300 $pin_client "$bench" "$sc" "$s" "$n" 2>>"$out/errors.log")
		rc=$?
		settle "$c"
		after=$(cpu_ticks "$c")
		[ $rc = 0 ] && res="$res cpu_s=$(awk -v t=$((after - before)) -v hz="$clk_tck" 'BEGIN { printf "%.3f", t / hz }')"
		;;
	latency)
		n=$rtt
		[ "$r" = 0 ] && n=$((rtt / 10))
		res=$(timeout 120 $pin_client "$bench" latency "$s" "$n" "$msg" "$rtt_seconds" 2>>"$out/errors.log")
		rc=$?
		;;
	conn1 | conn32)
		n=$conn_seconds
		[ "$r" = 0 ] && n=0.5
		res=$(timeout 120 $pin_client "$bench" connrate "$s" "${sc#conn}" "$n" 2>>"$out/errors.log")
		rc=$?
		;;
	idle*)
		# the ping-pong of the latency scenario, with ${sc#idle} idle
		# relayed connections open; the relay's CPU over the ping-pong alone
		local idle=${sc#idle}
		n=$idle_rtt
		[ "$r" = 0 ] && n=$((idle_rtt / 10))
		rc=0
		[ "$idle" -gt 0 ] && { start_hold "$c" "$idle" || rc=1; }
		if [ $rc = 0 ]; then
			settle "$c" "$idle"
			before=$(cpu_split "$c")
			res=$(timeout 300 $pin_client "$bench" latency "$s" "$n" "$msg" "$idle_seconds" 2>>"$out/errors.log")
			rc=$?
			settle "$c" "$idle"
			after=$(cpu_split "$c")
			# the round trips made (fewer than asked if the time ran out)
			n=$(echo "$res" | sed -n 's/.* count=\([0-9]*\).*/\1/p')
			[ -n "$n" ] || rc=1
			[ $rc = 0 ] && [ -n "${pid[$c]}" ] &&
				res="$res idle=$idle $(per_unit "$before" "$after" 1000000 "$n" cpu_us)"
			[ $rc = 0 ] && [ -z "${pid[$c]}" ] && res="$res idle=$idle"
		fi
		stop_hold
		;;
	throttled)
		n=$throttle_bytes
		[ "$r" = 0 ] && n=$((throttle_bytes / 4))
		settle "$c"
		before=$(cpu_split "$c")
		local w0 w1
		w0=$(waits "$c")
		res=$(timeout 300 $pin_client "$bench" throttled "$s" "$n" "$throttle_rate" "$throttle_chunk" 2>>"$out/errors.log")
		rc=$?
		w1=$(waits "$c")
		settle "$c"
		after=$(cpu_split "$c")
		[ $rc = 0 ] && [ -n "${pid[$c]}" ] &&
			res="$res $(per_unit "$before" "$after" 1073741824 "$n" cpu_gib)"
		[ $rc = 0 ] && [ -n "$w0" ] && [ -n "$w1" ] &&
			res="$res waits_per_mib=$(awk -v a="$w0" -v b="$w1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1048576 / n }')"
		;;
	memory)
		[ -n "${pid[$c]}" ] || return 0
		run_memory "$p" "$c"
		rc=$?
		;;
	esac
	if [ $rc != 0 ]; then
		echo "$p $sc $c round $r: failed (exit $rc)" >>"$out/errors.log"
		say "$p $sc round $r $c: FAILED (exit $rc)"
		run_failed[$p/$c]=$((${run_failed[$p/$c]:-0} + 1))
		return 1
	fi
	run_ok[$p/$c]=$((${run_ok[$p/$c]:-0} + 1))
	res="$res wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
	say "$p $sc round $r $c: $res"
	[ "$r" = 0 ] || record "$p" "$sc" "$c" "$r" $res
}

# run_memory PASS NAME: sets res. The idle figures of the instance that
# carried the other scenarios ("used"), then of a fresh instance (whose
# allocator has not yet grown: otherwise the memory that 200 connections
# take would already be counted as idle), then with $hold relayed
# connections open (each has carried one echo round trip).
run_memory() {
	local p=$1 c=$2 used idle busy pipes
	settle "$c"
	sleep 0.2
	local -a pids
	mapfile -t pids < <(proxy_pids "$c")
	used=$(mem_of "${pids[@]}")
	restart_contender "$p" "$c"
	settle "$c"
	sleep 0.2
	mapfile -t pids < <(proxy_pids "$c")
	idle=$(mem_of "${pids[@]}")
	start_hold "$c" "$hold" || return 1
	sleep 0.3
	mapfile -t pids < <(proxy_pids "$c")
	busy=$(mem_of "${pids[@]}")
	# in the background: should opening a pipe wait for its mutex (see
	# rddbench.c, run_pipes), ending the hold releases it
	"$bench" pipes "${pids[@]}" >"$tmp/pipes.out" 2>>"$out/errors.log" &
	local pipes_pid=$! i
	for ((i = 0; i < 100; i++)); do
		pid_alive "$pipes_pid" || break
		sleep 0.1
	done
	pid_alive "$pipes_pid" && echo "$p memory $c: rddbench pipes still waiting after 10 s" >>"$out/errors.log"
	local nprocs=${#pids[@]}
	stop_hold
	wait "$pipes_pid"
	pipes=$(cat "$tmp/pipes.out")
	res="used_${used// / used_} idle_${idle// / idle_} held_${busy// / held_} conns=$hold procs=$nprocs $pipes"
	return 0
}

# ------------------------------------------------------------- the run

machine() {
	local model cores mem os
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	cores=$(nproc)
	mem=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
	os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
	echo "$model, $cores cores, $mem RAM; $os; Linux $(uname -r)"
}

# kver_of IMAGE: the version string a bzImage carries in its setup header
kver_of() {
	local off v
	off=$(od -An -tu2 -j526 -N2 "$1" 2>/dev/null | tr -d ' ')
	[ -n "$off" ] && [ "$off" -gt 0 ] &&
		v=$(tail -c +$((off + 512 + 1)) "$1" 2>/dev/null | head -c 200 | tr '\0' '\n' | head -n 1 | awk '{ print $1 }')
	[ -n "${v:-}" ] || v=$(basename "$1" | sed 's/^vmlinuz-//')
	echo "$v"
}

# scenario_contenders SCENARIO: who takes part. The earlier build (if any)
# only in the scenarios that its changes are about.
scenario_contenders() {
	local c
	for c in $contenders $old_contenders; do
		case $1/$c in
		idle*/rdd-old-splice | throttled/rdd-old-*) ;;
		*/rdd-old-*) continue ;;
		esac
		echo "$c"
	done
}

pass_scenarios() {
	if [ -n "${BENCH_SCENARIOS:-}" ]; then
		echo "$BENCH_SCENARIOS"
	elif [ "$1" = pinned ]; then
		echo "upload download latency conn1 conn32 $idle_scenarios throttled memory"
	else
		echo "upload download latency conn1 conn32 memory"
	fi
}

# the pass whose figures the goal table judges, and which gets more rounds
# where a goal is within the noise
goal_pass=unpinned
case " $passes " in *" pinned "*) goal_pass=pinned ;; esac
case " $passes " in *" $goal_pass "*) ;; *) goal_pass=${passes%% *} ;; esac

{
	echo "machine	$(machine)"
	echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "command	${BENCH_RDD_OLD:+BENCH_RDD_OLD=$BENCH_RDD_OLD }bench/run.sh ${1:-build/rdd-guest}   (${BENCH_RDD_OLD:+BENCH_RDD_OLD=... }make bench)"
	echo "load-start	$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "params	bytes=$bytes rounds=$rounds max_rounds=$max_rounds rtt=$rtt rtt_seconds=$rtt_seconds idle_seconds=$idle_seconds msg=$msg conn_seconds=$conn_seconds hold=$hold idle_rtt=$idle_rtt throttle_bytes=$throttle_bytes throttle_mbps=$throttle_rate throttle_chunk=$throttle_chunk"
	echo "contenders	$contenders"
	echo "old-contenders	$old_contenders"
	echo "idle	$idle_counts"
	echo "goal-pass	$goal_pass"
	[ -n "$rdd" ] && echo "version-rdd	$("$rdd" --version 2>&1 | head -1)"
	[ -n "$rdd_old" ] && echo "old-build	$rdd_old ($("$rdd_old" --version 2>&1 | head -1))"
	echo "version-socat	socat $(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }')"
	echo "version-proxyd	systemd $("$proxyd" --version 2>/dev/null | awk 'NR == 1 { print $2 }')"
} >"$out/meta.tsv"

for p in $passes; do
	case $p in
	pinned) pin_client="taskset -c 0" pin_server="taskset -c 1" ;;
	unpinned) pin_client="" pin_server="" ;;
	*) fatal "unknown pass: $p" ;;
	esac
	scenarios=$(pass_scenarios "$p")
	running=
	for sc in $scenarios; do
		for c in $(scenario_contenders "$sc"); do
			case " $running " in *" $c "*) ;; *) running="$running $c" ;; esac
		done
	done
	say "pass $p: starting backend and contenders"
	start_backend "$p"
	for c in $running; do
		start_contender "$p" "$c"
	done
	for sc in $scenarios; do
		mapfile -t who < <(scenario_contenders "$sc")
		# memory is not timed, so it needs no warm-up; the idle scenarios
		# after the first run on contenders it has warmed up
		warm=yes
		case $sc in
		memory) warm= ;;
		idle*) [ "$sc" = "$first_idle" ] || warm= ;;
		esac
		[ -z "$warm" ] || for c in "${who[@]}"; do
			run_one "$p" "$sc" "$c" 0
		done
		for ((r = 1; r <= rounds; r++)); do
			for c in "${who[@]}"; do
				run_one "$p" "$sc" "$c" "$r"
			done
		done
		# more rounds, interleaved, for the contenders of a goal whose two
		# figures are within each other's spread (report.py --undecided
		# prints "SCENARIO CONTENDER FROM TO" lines)
		[ "$p" = "$goal_pass" ] || continue
		for ((tries = 0; tries < max_rounds; tries++)); do
			more=$(python3 "$here/report.py" --undecided "$out" "$p" "$sc" "$max_rounds") || break
			[ -n "$more" ] || break
			if [ "$extra_spent" -ge "$extra_budget" ]; then
				say "$p $sc: within the noise, but the extra rounds have had their $extra_budget s"
				echo "$p $sc: no more rounds: BENCH_EXTRA_SECONDS=$extra_budget spent" >>"$out/errors.log"
				break
			fi
			extra_t0=$(date +%s)
			say "$p $sc: within the noise, more rounds: $(echo "$more" | awk '{ printf "%s%s %s to round %s", (NR > 1 ? ", " : ""), $1, $2, $4 }')"
			lo=$(echo "$more" | awk 'NR == 1 || $3 < m { m = $3 } END { print m }')
			hi=$(echo "$more" | awk '$4 > m { m = $4 } END { print m }')
			for ((r = lo; r <= hi; r++)); do
				while read -r xsc xc from to; do
					[ "$r" -ge "$from" ] && [ "$r" -le "$to" ] && run_one "$p" "$xsc" "$xc" "$r"
				done <<<"$more"
			done
			extra_spent=$((extra_spent + $(date +%s) - extra_t0))
		done
	done
	for c in $running; do
		[ -n "${pid[$c]}" ] || continue
		pid_alive "${pid[$c]}" || {
			say "$p: $c died during the pass"
			run_failed[$p/$c]=$((${run_failed[$p/$c]:-0} + 1))
		}
		kill "${pid[$c]}" 2>/dev/null
		wait "${pid[$c]}" 2>/dev/null
	done
	kill "$backend_pid" 2>/dev/null
	wait "$backend_pid" 2>/dev/null
	cp "$tmp/$p"-*.log "$out/" 2>/dev/null
done
bench_end=$(date +%s)
echo "load-end	$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/meta.tsv"
echo "runtime-local	$((bench_end - start_time)) s" >>"$out/meta.tsv"
echo "runtime-extra	$extra_spent s" >>"$out/meta.tsv"

# ------------------------------------------------------------- VM figures
# tests/vm/run.sh's throughput scenario: 256 MiB each way over real
# AF_VSOCK (vsock_loopback) in a qemu guest, direct and through the daemon
# in both copy modes, on every kernel image that has its modules here.
vm_runs=${BENCH_VM_RUNS:-3}
vm_accel=${BENCH_VM_ACCEL:-tcg}
vm_size=${BENCH_VM_SIZE:-256M}
: >"$out/vm.tsv"
vm_ok=0 vm_bad=0
case ${BENCH_VM:-auto} in
0 | no | off)
	echo "vm	not run (BENCH_VM=0)" >>"$out/meta.tsv"
	;;
*)
	if ! command -v qemu-system-x86_64 >/dev/null; then
		say "VM throughput figures skipped: qemu-system-x86_64 is not installed (tests/vm/packages.txt)"
		echo "vm	skipped: qemu-system-x86_64 is not installed (tests/vm/packages.txt)" >>"$out/meta.tsv"
	elif [ -z "$rdd" ]; then
		echo "vm	skipped: rdd-guest not measured" >>"$out/meta.tsv"
	else
		vm_kernels=${BENCH_VM_KERNELS:-}
		if [ -z "$vm_kernels" ]; then
			for k in /boot/vmlinuz-*; do
				[ -r "$k" ] && [ -r "/lib/modules/${k##*/vmlinuz-}/modules.dep" ] && vm_kernels="$vm_kernels $k"
			done
		fi
		[ -n "$vm_kernels" ] || echo "vm	skipped: no kernel image with modules in /boot" >>"$out/meta.tsv"
		for k in $vm_kernels; do
			kv=$(kver_of "$k")
			for ((r = 1; r <= vm_runs; r++)); do
				log=$out/vm-$kv-$r.log
				vm_t0=$(date +%s)
				RDD_VM_SCENARIOS=throughput RDD_VM_KERNEL=$k RDD_VM_ACCEL=$vm_accel \
					RDD_VM_THROUGHPUT_SIZE=$vm_size RDD_VM_TIMEOUT=${BENCH_VM_TIMEOUT:-240} \
					"$root/tests/vm/run.sh" "$rdd" >"$log" 2>&1
				vm_rc=$?
				if [ $vm_rc = 0 ]; then
					vm_ok=$((vm_ok + 1))
				else
					vm_bad=$((vm_bad + 1))
					echo "vm $kv run $r: tests/vm/run.sh exit $vm_rc (see $log)" >>"$out/errors.log"
				fi
				sed -n -e 's/^FIGURE throughput \(up\|down\) --\([a-z-]*\): .* = \([0-9.]*\) MiB\/s, carried by copy=\([a-z]*\).*/\1 \2 \3 \4/p' \
					-e 's/^FIGURE throughput \(up\|down\), kernel vsock loopback without the daemon: \([0-9.]*\) MiB\/s.*/\1 direct \2 -/p' "$log" |
					while read -r way mode mibps copy; do
						printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kv" "$vm_accel" "$r" "$way" "$mode" "$mibps" "$copy"
					done >>"$out/vm.tsv"
				say "vm $kv ($vm_accel) run $r: exit $vm_rc in $(($(date +%s) - vm_t0)) s:" \
					"$(awk -v r="$r" -v k="$kv" '$1 == k && $3 == r { printf "%s %s %s; ", $4, $5, $6 }' "$out/vm.tsv")"
				# a guest that did not finish will not finish the next time either
				grep -q '^FAIL .*did not finish' "$log" && break
			done
		done
		echo "vm	kernels:$vm_kernels; accel $vm_accel; $vm_runs runs each; $vm_size each way" >>"$out/meta.tsv"
		echo "runtime-vm	$(($(date +%s) - bench_end)) s" >>"$out/meta.tsv"
	fi
	;;
esac
echo "runtime	$(($(date +%s) - start_time)) s" >>"$out/meta.tsv"

python3 "$here/report.py" "$out" "$readme" || fatal "report failed"
(cd "$out" && gnuplot results.gp) 2>>"$out/errors.log" || say "gnuplot failed (see $out/errors.log)"

cat "$out/results.md"
echo
passed=0
failed=0
for p in $passes; do
	for c in $contenders $old_contenders; do
		ok=${run_ok[$p/$c]:-0}
		bad=${run_failed[$p/$c]:-0}
		if [ "$ok" = 0 ] && [ "$bad" = 0 ]; then
			continue
		elif [ "$bad" = 0 ]; then
			echo "ok: $p $c: $ok runs completed with every byte accounted for"
			passed=$((passed + 1))
		else
			echo "FAIL: $p $c: $bad of $((ok + bad)) runs failed (see build/bench/errors.log)"
			failed=$((failed + 1))
		fi
	done
done
if [ $((vm_ok + vm_bad)) -gt 0 ]; then
	if [ $vm_bad = 0 ]; then
		echo "ok: vm: $vm_ok runs of tests/vm/run.sh's throughput scenario passed"
		passed=$((passed + 1))
	else
		echo "FAIL: vm: $vm_bad of $((vm_ok + vm_bad)) runs of tests/vm/run.sh failed (see build/bench/vm-*.log)"
		failed=$((failed + 1))
	fi
fi
if [ -s "$out/results.png" ]; then
	echo "ok: chart written to build/bench/results.png"
	passed=$((passed + 1))
else
	echo "FAIL: no chart (gnuplot failed, see build/bench/errors.log)"
	failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
exit
}
