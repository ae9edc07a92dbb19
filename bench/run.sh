#!/bin/bash
# bench/run.sh RDD-GUEST-BINARY
#
# Measures rdd-guest beside the proxies a user would pick instead (socat,
# systemd-socket-proxyd) and beside the direct connection (the physical
# limit), every contender listening on a Unix socket and forwarding to the
# same Unix backend (bench/rddbench.c). Every scenario runs once untimed per
# contender as a warm-up, then in interleaved rounds (A B C D, A B C D, ...);
# the report takes medians. Writes build/bench/results.md, results.png,
# raw.tsv and bench/README-section.md, prints the table, then one line per
# check and "N passed, N failed".
#
# Knobs (environment), for development; `make bench` uses the defaults:
#   BENCH_CONTENDERS   default "direct rdd-splice rdd-nosplice socat proxyd"
#   BENCH_PASSES       default "pinned unpinned"
#   BENCH_ROUNDS (3)  BENCH_BYTES (1 GiB)  BENCH_RTT (20000)
#   BENCH_CONN_SECONDS (1.5)  BENCH_HOLD (200)
#   BENCH_SCENARIOS    default "upload download latency conn1 conn32 memory"
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

contenders=${BENCH_CONTENDERS:-direct rdd-splice rdd-nosplice socat proxyd}
passes=${BENCH_PASSES:-pinned unpinned}
rounds=${BENCH_ROUNDS:-3}
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

mkdir -p "$out" || fatal "cannot create $out"
bench=$out/rddbench
cc -std=c11 -O2 -Wall -Wextra -Werror -pthread -o "$bench.tmp" "$here/rddbench.c" &&
	mv -f "$bench.tmp" "$bench" || fatal "cannot build rddbench"

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
	rdd-splice | rdd-nosplice)
		local mode=--splice
		[ "$c" = rdd-nosplice ] && mode=--no-splice
		$pin_server "$rdd" --listen "unix:$s" --backend "$backend_sock" \
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

# settle NAME: wait (up to 3 s) until socat has reaped its per-connection
# children, so that their CPU time is in the parent's cutime/cstime and the
# idle memory figure is the parent alone
settle() {
	local i
	[ -n "${pid[$1]}" ] || return 0
	for ((i = 0; i < 30; i++)); do
		[ -z "$(children_of "${pid[$1]}")" ] && return 0
		sleep 0.1
	done
}

# cpu_ticks NAME: user+system CPU of the proxy including reaped children
cpu_ticks() {
	[ -n "${pid[$1]}" ] || { echo 0; return; }
	awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/${pid[$1]}/stat"
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
		res=$(timeout 120 $pin_client "$bench" latency "$s" "$n" "$msg" 2>>"$out/errors.log")
		rc=$?
		;;
	conn1 | conn32)
		n=$conn_seconds
		[ "$r" = 0 ] && n=0.5
		res=$(timeout 120 $pin_client "$bench" connrate "$s" "${sc#conn}" "$n" 2>>"$out/errors.log")
		rc=$?
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
	local p=$1 c=$2 used idle busy pipes hold_pid i
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
	$pin_client "$bench" hold "${sock[$c]}" "$hold" 60 >"$tmp/hold.out" 2>>"$out/errors.log" &
	hold_pid=$!
	for ((i = 0; i < 300; i++)); do
		grep -q '^ready' "$tmp/hold.out" && break
		pid_alive "$hold_pid" || break
		sleep 0.1
	done
	if ! grep -q '^ready' "$tmp/hold.out"; then
		{
			echo "$p memory $c: no ready line from rddbench hold after $((i / 10)) s;" \
				"hold alive: $(pid_alive "$hold_pid" && echo yes || echo no);" \
				"proxy alive: $(pid_alive "${pid[$c]}" && echo yes || echo no);" \
				"hold output: $(cat "$tmp/hold.out")"
			tail -3 "$tmp/$p-$c.log"
		} >>"$out/errors.log"
		kill "$hold_pid" 2>/dev/null
		wait "$hold_pid" 2>/dev/null
		return 1
	fi
	sleep 0.3
	mapfile -t pids < <(proxy_pids "$c")
	busy=$(mem_of "${pids[@]}")
	pipes=$("$bench" pipes "${pids[@]}")
	local nprocs=${#pids[@]}
	kill "$hold_pid"
	wait "$hold_pid"
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

{
	echo "machine	$(machine)"
	echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "command	bench/run.sh ${1:-build/rdd-guest}   (make bench)"
	echo "params	bytes=$bytes rounds=$rounds rtt=$rtt msg=$msg conn_seconds=$conn_seconds hold=$hold"
	echo "contenders	$contenders"
	[ -n "$rdd" ] && echo "version-rdd	$("$rdd" --version 2>&1 | head -1)"
	echo "version-socat	socat $(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }')"
	echo "version-proxyd	systemd $("$proxyd" --version 2>/dev/null | awk 'NR == 1 { print $2 }')"
} >"$out/meta.tsv"

for p in $passes; do
	case $p in
	pinned) pin_client="taskset -c 0" pin_server="taskset -c 1" ;;
	unpinned) pin_client="" pin_server="" ;;
	*) fatal "unknown pass: $p" ;;
	esac
	say "pass $p: starting backend and contenders"
	start_backend "$p"
	for c in $contenders; do
		start_contender "$p" "$c"
	done
	for sc in ${BENCH_SCENARIOS:-upload download latency conn1 conn32 memory}; do
		# memory is not timed, so it needs no warm-up
		[ "$sc" = memory ] || for c in $contenders; do
			run_one "$p" "$sc" "$c" 0
		done
		for ((r = 1; r <= rounds; r++)); do
			for c in $contenders; do
				run_one "$p" "$sc" "$c" "$r"
			done
		done
	done
	for c in $contenders; do
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
echo "runtime	$(($(date +%s) - start_time)) s" >>"$out/meta.tsv"

python3 "$here/report.py" "$out" "$readme" || fatal "report failed"
(cd "$out" && gnuplot results.gp) 2>>"$out/errors.log" || say "gnuplot failed (see $out/errors.log)"

cat "$out/results.md"
echo
passed=0
failed=0
for p in $passes; do
	for c in $contenders; do
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
