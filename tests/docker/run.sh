#!/bin/bash
# The real docker CLI through rdd-guest against a real, private dockerd.
#
# Usage: tests/docker/run.sh [PATH-TO-rdd-guest]      (default build/rdd-guest)
#
# Starts its own containerd and dockerd (Debian's docker.io) under a temporary
# directory, with no network changes on the machine, builds a busybox image
# locally (no registry), runs rdd-guest --listen unix:... --backend on that
# dockerd's socket, and runs each scenario with /usr/bin/docker twice: once
# straight at dockerd ("direct") and once through rdd-guest ("bridge").
# Every result through the bridge is asserted and compared with the direct one.
#
# Helpers beside it: upgrade.py (a raw Upgrade: tcp attach), reject.py (a raw
# request with a large body the engine rejects), keeper.py (a parent that keeps
# the listening socket across restarts of rdd-guest, as systemd would).
#
# Prints one line per check and, last, "N passed, N failed, N skipped".
# Runs as root. Environment:
#   RDD_DOCKER_BRIDGE=socat   use socat as a stand-in bridge (to check the suite
#                             itself; the drain and restart scenarios are then
#                             skipped, and so are the reject-* checks that socat
#                             fails: it loses the engine's early answer too)
#   RDD_DOCKER_KEEP=1         keep the temporary directory for inspection

# "test && pass ... || fail ..." is fine here: pass and fail always succeed.
# shellcheck disable=SC2015
set -u
export LC_ALL=C

RDD=${1:-build/rdd-guest}
HERE=$(cd "$(dirname "$0")" && pwd)
# Debian's binaries, never whatever else comes first in PATH.
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
CONTAINERD=/usr/bin/containerd
PY=/usr/bin/python3
BUSYBOX=/bin/busybox
IMG=rddtest:latest
DRAIN=3                 # rdd-guest --drain-timeout for this suite
BIG=64M                 # size of the files for cp and the build context
MODE=${RDD_DOCKER_BRIDGE:-rdd-guest}

# Results go to the suite's own stdout (fd 3) and diagnostics to its stderr
# (fd 4), even from inside a function whose output is redirected to a file.
exec 3>&1 4>&2
passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "ok - $1" >&3; }
fail() { failed=$((failed + 1)); echo "FAIL - $1${2:+: $2}" >&3; }
skip() { skipped=$((skipped + 1)); echo "skip - $1${2:+: $2}" >&3; }
note() { sed 's/^/#   /' >&4; }      # diagnostics, indented
finish() {
	echo "$passed passed, $failed failed, $skipped skipped" >&3
	[ "$failed" -eq 0 ]
}

die_setup() {
	fail "setup: $1"
	[ -n "${2:-}" ] && [ -f "$2" ] && tail -20 "$2" | note
	finish
	exit 1
}

# ---------------------------------------------------------------- preflight --
[ "$(id -u)" -eq 0 ] || { echo "tests/docker must run as root"; echo "0 passed, 1 failed"; exit 1; }
for bin in "$DOCKER" "$DOCKERD" "$CONTAINERD" "$PY" "$BUSYBOX"; do
	[ -x "$bin" ] || { fail "setup: $bin missing (see tests/docker/packages.txt)"; finish; exit 1; }
done
if [ "$MODE" = rdd-guest ]; then
	[ -x "$RDD" ] || { fail "setup: rdd-guest binary $RDD not found (run make)"; finish; exit 1; }
	RDD=$(cd "$(dirname "$RDD")" && pwd)/$(basename "$RDD")
fi

# Short path: the unix sockets under it must fit in sun_path (108 bytes).
d=$(mktemp -d /tmp/rdd-e2e.XXXXXX) || exit 1
o=$d/out
mkdir -p "$o" "$d/cfg"
CGROUP_PARENT=/$(basename "$d")     # our containers' cgroups, to find leftovers
DSOCK=$d/docker.sock
BSOCK=$d/bridge.sock

# A private client config: no user contexts, credentials or plugins.
export DOCKER_CONFIG=$d/cfg
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_BUILDKIT=0 DOCKER_CLI_HINTS=false

ctd_pid='' dockerd_pid='' bridge_pid='' bg_pids=()

# alive PID: the process exists and is not a zombie
alive() {
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
# wait_gone PID SECONDS: wait (bounded) for a process to end; reap it if it is ours
wait_gone() {
	local pid=$1 end=$((SECONDS + $2))
	while alive "$pid"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
	return 0
}
stop_pid() {            # stop_pid PID SECONDS: TERM, then KILL after SECONDS
	[ -n "$1" ] || return 0
	alive "$1" || { wait "$1" 2>/dev/null; return 0; }
	kill -TERM "$1" 2>/dev/null
	wait_gone "$1" "$2" || { kill -KILL "$1" 2>/dev/null; wait_gone "$1" 5; }
}

cleanup() {
	set +e
	trap - EXIT INT TERM HUP
	for p in "${bg_pids[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
	stop_pid "$bridge_pid" 5
	if alive "$dockerd_pid"; then
		local ids
		mapfile -t ids < <(timeout 20 "$DOCKER" -H "unix://$DSOCK" ps -aq 2>/dev/null)
		[ ${#ids[@]} -gt 0 ] && timeout 60 "$DOCKER" -H "unix://$DSOCK" rm -f "${ids[@]}" >/dev/null 2>&1
	fi
	stop_pid "$dockerd_pid" 30
	stop_pid "$ctd_pid" 15
	# Anything still alive in our containers' cgroups, or naming our directory
	# (containerd shims), was started by this suite.
	local p f
	# cgroup v1: one tree per controller; v2: the unified tree
	for f in /sys/fs/cgroup/*"$CGROUP_PARENT"/*/cgroup.procs /sys/fs/cgroup"$CGROUP_PARENT"/*/cgroup.procs; do
		[ -r "$f" ] && while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$f"
	done
	grep -laFf <(echo "$d/") /proc/[0-9]*/cmdline 2>/dev/null | while read -r f; do
		p=${f#/proc/}; p=${p%/cmdline}
		[ "$p" = $$ ] || kill -KILL "$p" 2>/dev/null
	done
	sleep 0.2
	# Mounts dockerd left behind (overlays, shm, netns), deepest first.
	awk -v d="$d/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	for f in /sys/fs/cgroup/*"$CGROUP_PARENT" /sys/fs/cgroup"$CGROUP_PARENT"; do
		[ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	if [ "${RDD_DOCKER_KEEP:-0}" = 1 ]; then
		echo "# kept $d" >&4
	else
		rm -rf --one-file-system "$d"
	fi
}
trap cleanup EXIT
trap 'fail "interrupted"; finish; exit 130' INT TERM HUP

# D / B: the docker CLI straight at dockerd / through the bridge, bounded.
T=60
D() { timeout -k 5 "$T" "$DOCKER" -H "unix://$DSOCK" "$@"; }
B() { timeout -k 5 "$T" "$DOCKER" -H "unix://$BSOCK" "$@"; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds
wait_for() {
	local end=$(($(date +%s%N) + $1 * 1000000000)); shift
	until "$@"; do
		[ "$(date +%s%N)" -ge $end ] && return 1
		sleep 0.1
	done
}
now() { echo "$EPOCHREALTIME"; }
# secs A B: B - A in seconds with 2 decimals
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# ge X Y: X >= Y, decimals allowed
ge() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x >= y) }'; }

# run_both NAME ARGS...: run one docker command direct and through the bridge,
# stdin from $IN (default none); keep stdout, stderr and exit status of each.
run_both() {
	local name=$1; shift
	D "$@" <"${IN:-/dev/null}" >"$o/$name.d" 2>"$o/$name.d.err"; echo $? >"$o/$name.d.rc"
	B "$@" <"${IN:-/dev/null}" >"$o/$name.b" 2>"$o/$name.b.err"; echo $? >"$o/$name.b.rc"
}
# expect_same NAME RC [SED]: both exited RC and printed the same stdout and
# stderr, after SED removes what legitimately differs between two runs
# (ERR_FILTER, a sed script too, does the same for stderr).
expect_same() {
	local name=$1 rc=$2 filter=${3:-}
	local s why=''
	for s in d b; do
		sed -e "s#$DSOCK#SOCK#g; s#$BSOCK#SOCK#g" ${filter:+-e "$filter"} "$o/$name.$s" >"$o/$name.$s.f"
		sed -e "s#$DSOCK#SOCK#g; s#$BSOCK#SOCK#g" ${ERR_FILTER:+-e "$ERR_FILTER"} "$o/$name.$s.err" >"$o/$name.$s.err.f"
	done
	[ "$(cat "$o/$name.d.rc")" = "$rc" ] || why="direct exit $(cat "$o/$name.d.rc"), expected $rc"
	[ "$(cat "$o/$name.b.rc")" = "$rc" ] || why="${why:+$why; }bridge exit $(cat "$o/$name.b.rc"), expected $rc"
	cmp -s "$o/$name.d.f" "$o/$name.b.f" || why="${why:+$why; }stdout differs"
	cmp -s "$o/$name.d.err.f" "$o/$name.b.err.f" || why="${why:+$why; }stderr differs"
	[ -s "$o/$name.d.f" ] || [ "${EMPTY_OK:-0}" = 1 ] || why="${why:+$why; }no output"
	if [ -z "$why" ]; then
		pass "$name: same as direct"
		return 0
	fi
	fail "$name" "$why"
	{ diff -u "$o/$name.d.f" "$o/$name.b.f"; diff -u "$o/$name.d.err.f" "$o/$name.b.err.f"; } | head -30 | note
	return 1
}

# ------------------------------------------------------------------- set-up --
start_dockerd() {
	: >"$d/dockerd.log"
	"$DOCKERD" --config-file "$d/daemon.json" --containerd "$d/ctd.sock" \
		--data-root "$d/data" --exec-root "$d/exec" -H "unix://$DSOCK" \
		--pidfile "$d/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
		--cgroup-parent "$CGROUP_PARENT" --shutdown-timeout 2 \
		>>"$d/dockerd.log" 2>&1 &
	dockerd_pid=$!
	wait_for 60 D version >/dev/null 2>&1
}

start_bridge() {         # start_bridge [rdd-guest options]
	rdd_starts=$((rdd_starts + 1))
	rdd_log=$d/rdd.$rdd_starts.log
	rm -f "$BSOCK"
	if [ "$MODE" = socat ]; then
		/usr/bin/socat -t 86400 "UNIX-LISTEN:$BSOCK,fork,backlog=128" "UNIX-CONNECT:$DSOCK" 2>"$rdd_log" &
		bridge_pid=$!
		wait_for 10 test -S "$BSOCK"
	else
		"$RDD" --listen "unix:$BSOCK" --backend "$DSOCK" --drain-timeout "$DRAIN" \
			--log-level debug "$@" 2>"$rdd_log" &
		bridge_pid=$!
		wait_for 10 grep -qF "<6>listening on unix:$BSOCK" "$rdd_log"
	fi
}
rdd_starts=0

# Our own containerd, so that dockerd never picks up a system one and every
# process of this suite lives under $d.
cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/ctd/root"
state = "$d/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/ctd.sock"
[ttrpc]
  address = "$d/ctd.sock.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/ctd/opt"
EOF
echo '{}' >"$d/daemon.json"

t_start=$(now)
"$CONTAINERD" --config "$d/containerd.toml" >"$d/containerd.log" 2>&1 &
ctd_pid=$!
wait_for 30 test -S "$d/ctd.sock" || die_setup "containerd did not start" "$d/containerd.log"
start_dockerd || die_setup "dockerd did not answer within 60s" "$d/dockerd.log"

# The image: busybox-static and its applet links, nothing else.
mkdir -p "$d/rootfs/bin" "$d/rootfs/tmp" "$d/rootfs/etc" "$d/rootfs/proc" "$d/rootfs/sys" "$d/rootfs/dev"
cp "$BUSYBOX" "$d/rootfs/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[ "$a" = busybox ] || ln -s busybox "$d/rootfs/bin/$a"
done
tar -C "$d/rootfs" -c . | D import -c 'ENV PATH=/bin' - "$IMG" >/dev/null 2>"$d/import.err" ||
	die_setup "docker import of the busybox image failed" "$d/import.err"

start_bridge || die_setup "$MODE did not start listening on $BSOCK" "$rdd_log"
echo "# setup $(secs "$t_start" "$(now)")s, mode $MODE, dir $d" >&2

# --------------------------------------------------------------- scenarios --
# Each takes the copy mode as $1 ("" or "rw"), added to the check names.

api_calls() {
	run_both version version
	expect_same version 0

	# The counters are stable because nothing else uses this dockerd; the
	# runtimes come from a Go map, in any order.
	run_both info info
	expect_same info 0 '/^ Runtimes:/d'
}

# dockerd stopped: the CLI through the bridge fails fast with a connection
# error, rdd-guest stays up and serves again once dockerd is back. (Early in
# the run: a restarted dockerd spends half a second per container run so far.)
dockerd_down() {
	stop_pid "$dockerd_pid" 30
	local t0 rc el
	t0=$(now)
	T=20 B version >"$o/down.out" 2>&1; rc=$?
	el=$(secs "$t0" "$(now)")
	if [ $rc != 0 ] && ge 5 "$el" && grep -Eq 'Cannot connect to the Docker daemon|error during connect' "$o/down.out"; then
		pass "dockerd down: the CLI fails in ${el}s: $(grep -Eo 'Cannot connect to the Docker daemon|error during connect.*' "$o/down.out" | head -1 | sed "s#$d#TMP#g")"
	else
		fail "dockerd down: the CLI fails quickly with a connection error" "exit $rc after ${el}s"
		note <"$o/down.out"
	fi
	alive "$bridge_pid" && pass "dockerd down: $MODE is still running" || fail "dockerd down: $MODE is still running"
	if [ "$MODE" = rdd-guest ]; then
		grep -q '^<[34]>.*backend' "$rdd_log" && pass "dockerd down: rdd-guest logged it: $(grep '^<[34]>.*backend' "$rdd_log" | tail -1 | sed "s#$d#TMP#g")" ||
			fail "dockerd down: rdd-guest logged a warning about the backend"
	fi
	start_dockerd || die_setup "dockerd did not come back" "$d/dockerd.log"
	run_both back version
	expect_same back 0 && pass "dockerd back: the bridge serves again"
}

containers() {
	# A created-only container and a running one, so that ps and inspect have
	# something to show; "Up N seconds" is the only thing that moves.
	D create --name rdd-created --label rdd=1 "$IMG" echo never started >/dev/null
	D run -d --name rdd-sleeper "$IMG" sleep 600 >/dev/null
	run_both ps ps -a --no-trunc --format '{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Status}}\t{{.Names}}\t{{.Labels}}'
	expect_same ps 0 's/\tUp [^\t]*\t/\tUp\t/'

	run_both images images --no-trunc --digests --format '{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.Size}}'
	expect_same images 0

	run_both run-echo run --rm "$IMG" echo hello through the bridge
	expect_same run-echo 0 &&
		{ [ "$(cat "$o/run-echo.b")" = "hello through the bridge" ] && pass "run-echo: prints its words" ||
			fail "run-echo: prints its words" "got '$(cat "$o/run-echo.b")'"; }

	run_both run-exit-status run --rm "$IMG" sh -c 'echo to stdout; echo to stderr >&2; exit 7'
	expect_same run-exit-status 7

	run_both inspect-container inspect rdd-created
	expect_same inspect-container 0
	run_both inspect-image inspect "$IMG"
	expect_same inspect-image 0
}

# stdin ends at once; the container reads it only 2 s later and answers after
# that: the client's half-close must not end the connection.
half_close() {
	local n=half-close${1:+-$1}
	echo 'data sent before EOF' >"$d/halfclose.in"
	IN=$d/halfclose.in run_both "$n" run -i --rm "$IMG" sh -c 'sleep 2; cat; echo done'
	expect_same "$n" 0 &&
		{ [ "$(cat "$o/$n.b")" = "$(printf 'data sent before EOF\ndone')" ] &&
			pass "$n: data and done arrive after stdin closed" ||
			fail "$n: data and done arrive after stdin closed" "got '$(cat "$o/$n.b")'"; }

	# 16 MiB through stdin and a checksum back: the whole stream, then EOF.
	n=stdin-16m${1:+-$1}
	head -c 16M /dev/urandom >"$d/stdin.bin"
	local want
	want=$(sha256sum <"$d/stdin.bin" | cut -d' ' -f1)
	IN=$d/stdin.bin run_both "$n" run -i --rm "$IMG" sha256sum
	expect_same "$n" 0 &&
		{ [ "$(cut -d' ' -f1 "$o/$n.b")" = "$want" ] && pass "$n: checksum matches" ||
			fail "$n: checksum matches" "got $(cat "$o/$n.b")"; }
	rm -f "$d/stdin.bin"
}

exec_stdin() {
	local n=exec-stdin${1:+-$1}
	printf 'one\ntwo\n' >"$d/exec.in"
	IN=$d/exec.in run_both "$n" exec -i rdd-sleeper sh -c 'cat; echo end of exec'
	expect_same "$n" 0 &&
		{ [ "$(cat "$o/$n.b")" = "$(printf 'one\ntwo\nend of exec')" ] && pass "$n: piped input came back" ||
			fail "$n: piped input came back" "got '$(cat "$o/$n.b")'"; }

	n=exec-no-stdin${1:+-$1}
	run_both "$n" exec rdd-sleeper sh -c 'echo no stdin here; echo and stderr >&2; exit 3'
	expect_same "$n" 3
}

# The container waits for /tmp/go, which is made only once dockerd has seen the
# attach (its "attach" event), so everything it prints comes after attach.
attach_one() {     # attach_one NAME d|b
	local n=$1 via=$2 c=rdd-attach-$2 since apid
	since=$(date +%s)
	D run -d --name "$c" "$IMG" sh -c \
		'while [ ! -e /tmp/go ]; do sleep 0.1; done; echo printed after attach; echo second line >&2; exit 5' >/dev/null
	if [ "$via" = d ]; then D attach "$c"; else B attach "$c"; fi \
		>"$o/$n.$via" 2>"$o/$n.$via.err" </dev/null &
	apid=$!
	bg_pids+=("$apid")
	wait_for 20 sh -c "timeout 5 $DOCKER -H unix://$DSOCK events --since $since --until \$(date +%s.%N) \
		--filter container=$c --filter event=attach --format x | grep -q x"
	D exec "$c" touch /tmp/go
	wait "$apid"; echo $? >"$o/$n.$via.rc"
	D rm -f "$c" >/dev/null
}
attach() {
	local n=attach${1:+-$1}
	attach_one "$n" d
	attach_one "$n" b
	expect_same "$n" 5 &&
		{ [ "$(cat "$o/$n.b")" = "printed after attach" ] && grep -qx 'second line' "$o/$n.b.err" &&
			pass "$n: output printed after attach arrives, exit status carried" ||
			fail "$n: output printed after attach arrives" "got '$(cat "$o/$n.b")'"; }
}

# Two listeners, direct and bridged; once dockerd counts both, another command
# creates a container; both listeners must report it.
events() {
	local base fmt ev_d ev_b t0
	base=$(D info --format '{{.NEventsListener}}')
	fmt='{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'
	D events --filter container=rdd-evt --format "$fmt" >"$o/events.d" 2>"$o/events.d.err" &
	ev_d=$!; bg_pids+=("$ev_d")
	B events --filter container=rdd-evt --format "$fmt" >"$o/events.b" 2>"$o/events.b.err" &
	ev_b=$!; bg_pids+=("$ev_b")
	if wait_for 20 sh -c "[ \$(timeout 5 $DOCKER -H unix://$DSOCK info --format '{{.NEventsListener}}') -ge $((base + 2)) ]"; then
		D create --name rdd-evt "$IMG" true >/dev/null
		t0=$(now)
		if wait_for 10 grep -qx 'container create rdd-evt' "$o/events.b"; then
			pass "events: bridged listener got the create event after $(secs "$t0" "$(now)")s"
		else
			fail "events: bridged listener got the create event" "$(cat "$o/events.b" "$o/events.b.err")"
		fi
		wait_for 10 grep -qx 'container create rdd-evt' "$o/events.d"
	else
		fail "events: both listeners registered" "NEventsListener did not reach $((base + 2))"
	fi
	kill "$ev_d" "$ev_b" 2>/dev/null; wait "$ev_d" "$ev_b" 2>/dev/null
	cmp -s "$o/events.d" "$o/events.b" && [ -s "$o/events.b" ] && pass "events: same as direct" ||
		{ fail "events: same as direct"; diff -u "$o/events.d" "$o/events.b" | note; }
	D rm -f rdd-evt >/dev/null
}

# docker cp of a $BIG random file in and back out, through the bridge.
copy() {
	local n=cp${1:+-$1} want got t0 rc el T=180
	head -c "$BIG" /dev/urandom >"$d/big.bin"
	want=$(sha256sum <"$d/big.bin" | cut -d' ' -f1)
	t0=$(now)
	if B cp "$d/big.bin" rdd-sleeper:/tmp/big.bin 2>"$o/$n-in.err"; then
		pass "$n-in: $BIG into a container ($(secs "$t0" "$(now)")s)"
	else
		fail "$n-in: $BIG into a container" "$(cat "$o/$n-in.err")"
	fi
	got=$(D exec rdd-sleeper sha256sum /tmp/big.bin | cut -d' ' -f1)
	[ "$got" = "$want" ] && pass "$n-in: checksum inside the container matches" ||
		fail "$n-in: checksum inside the container matches" "got '$got'"
	t0=$(now)
	B cp rdd-sleeper:/tmp/big.bin "$d/big.out.b" 2>"$o/$n-out.err"; rc=$?
	el=$(secs "$t0" "$(now)")
	D cp rdd-sleeper:/tmp/big.bin "$d/big.out.d" 2>/dev/null
	got=$(sha256sum <"$d/big.out.b" 2>/dev/null | cut -d' ' -f1)
	[ $rc = 0 ] && [ "$got" = "$want" ] && cmp -s "$d/big.out.b" "$d/big.out.d" &&
		pass "$n-out: $BIG back out, checksum matches, same as direct (${el}s)" ||
		fail "$n-out: $BIG back out" "exit $rc, sha256 '$got' $(cat "$o/$n-out.err")"
	rm -f "$d/big.out.b" "$d/big.out.d"
	D exec rdd-sleeper rm -f /tmp/big.bin
}

# docker build with a $BIG context, with the classic builder and with BuildKit
# (BuildKit adds the /session and /grpc upgrades of the modern CLI).
build() {
	local builder bk via t0 el got got_d want T=180
	mkdir -p "$d/ctx"
	head -c "$BIG" /dev/urandom >"$d/ctx/big.bin"
	want=$(sha256sum <"$d/ctx/big.bin" | cut -d' ' -f1)
	printf 'FROM %s\nCOPY big.bin /big.bin\nRUN sha256sum /big.bin > /big.sum\n' "$IMG" >"$d/ctx/Dockerfile"
	for builder in classic buildkit; do
		bk=0; [ $builder = buildkit ] && bk=1
		for via in d b; do
			t0=$(now)
			if [ $via = d ]; then
				DOCKER_BUILDKIT=$bk D build --network none -q -t "rdd-big-$builder-$via" "$d/ctx"
			else
				DOCKER_BUILDKIT=$bk B build --network none -q -t "rdd-big-$builder-$via" "$d/ctx"
			fi >"$o/build-$builder.$via" 2>"$o/build-$builder.$via.err"
			echo $? >"$o/build-$builder.$via.rc"
			el=$(secs "$t0" "$(now)")
		done
		got=$(D run --rm "rdd-big-$builder-b" cat /big.sum 2>&1 | cut -d' ' -f1)
		got_d=$(D run --rm "rdd-big-$builder-d" cat /big.sum 2>&1 | cut -d' ' -f1)
		if [ "$(cat "$o/build-$builder.b.rc")" = 0 ] && [ "$got" = "$want" ] && [ "$got_d" = "$got" ]; then
			pass "build-$builder: $BIG context, file checksum in the image matches, same as direct (${el}s)"
		else
			fail "build-$builder: $BIG context" "exit $(cat "$o/build-$builder.b.rc"), sum '$got', direct '$got_d'"
			tail -5 "$o/build-$builder.b.err" | note
		fi
	done
	rm -rf "$d/ctx"
	D rmi rdd-big-classic-d rdd-big-buildkit-d rdd-big-buildkit-b >/dev/null 2>&1
}

# save | load of the image built above (busybox + a $BIG layer).
save_load() {
	local n=save${1:+-$1} simg=rdd-big-classic-b id_before id_after t0 el rc T=180
	id_before=$(D inspect --format '{{.Id}} {{.RootFS.Layers}}' "$simg")
	D save "$simg" | sha256sum | cut -d' ' -f1 >"$o/$n.d"
	t0=$(now)
	B save "$simg" 2>"$o/$n.b.err" | tee "$d/save.tar" | sha256sum | cut -d' ' -f1 >"$o/$n.b"
	el=$(secs "$t0" "$(now)")
	cmp -s "$o/$n.d" "$o/$n.b" && [ -s "$d/save.tar" ] &&
		pass "$n: $(du -m "$d/save.tar" | cut -f1) MiB archive, same sha256 as direct (${el}s)" ||
		fail "$n: same sha256 as direct" "direct $(cat "$o/$n.d"), bridge $(cat "$o/$n.b") $(cat "$o/$n.b.err")"
	n=load${1:+-$1}
	D rmi "$simg" >/dev/null 2>&1
	if D image inspect "$simg" >/dev/null 2>&1; then
		fail "$n: image removed before loading"
	else
		t0=$(now)
		B load <"$d/save.tar" >"$o/$n.b" 2>"$o/$n.b.err"; rc=$?
		el=$(secs "$t0" "$(now)")
		id_after=$(D inspect --format '{{.Id}} {{.RootFS.Layers}}' "$simg" 2>&1)
		[ $rc = 0 ] && [ "$id_after" = "$id_before" ] &&
			pass "$n: image back with the same ID and layer digests (${el}s)" ||
			fail "$n: image back with the same ID and layer digests" "exit $rc, '$id_after' vs '$id_before'"
	fi
	# Straight from save into load, both bridged, no file between.
	n=save-pipe-load${1:+-$1}
	B save "$simg" 2>/dev/null | B load >"$o/$n.b" 2>&1; rc=$?
	grep -qx "Loaded image: $simg:latest" "$o/$n.b" && [ $rc = 0 ] &&
		pass "$n: docker save | docker load, both through the bridge" ||
		fail "$n: docker save | docker load, both through the bridge" "exit $rc $(cat "$o/$n.b")"
	rm -f "$d/save.tar"
}

concurrent() {
	local t0 i bad=0 pids=()
	t0=$(now)
	for i in $(seq 1 20); do
		T=120 B run --rm "$IMG" sh -c "echo run $i" >"$o/conc.$i" 2>&1 &
		pids+=($!)
	done
	for i in $(seq 1 20); do
		wait "${pids[$((i - 1))]}" && [ "$(cat "$o/conc.$i")" = "run $i" ] || { bad=$((bad + 1)); head -3 "$o/conc.$i" | note; }
	done
	[ $bad = 0 ] && pass "concurrent: 20 docker run --rm at once all succeeded ($(secs "$t0" "$(now)")s)" ||
		fail "concurrent: 20 docker run --rm at once" "$bad failed"
}

# A container prints a line a second. Lines must arrive one by one as printed,
# not in a burst. Then SIGTERM to the bridge while the stream is open: the
# stream goes on during the drain, ends with EOF after it, docker exits
# without a connection reset, and new connections are refused meanwhile.
stamp() { while IFS= read -r l; do echo "$EPOCHREALTIME $l"; done; }
logs_and_drain() {
	local logs_pid t_term t0 rc el after
	# shellcheck disable=SC2016  # $i is the container shell's
	D run -d --name rdd-ticker "$IMG" sh -c 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done' >/dev/null
	(
		T=60 B logs -f rdd-ticker 2>"$o/logs.err"; echo $? >"$o/logs.rc"
	) | stamp >"$o/logs.b" &
	logs_pid=$!
	bg_pids+=("$logs_pid")
	wait_for 15 sh -c "[ \$(grep -c tick '$o/logs.b') -ge 6 ]"
	head -n 6 "$o/logs.b" >"$o/logs.b6"      # the stream goes on meanwhile
	# Arrival times of lines 3 to 6 (the first ones may have been printed before
	# the client came, and arrive together): each about a second after the last.
	if awk 'NR > 1 { n++; gap = $1 - prev; if (gap < 0.5 || gap > 1.6) bad++ } { prev = $1 }
		END { exit !(n == 3 && bad == 0) }' <(sed -n 3,6p "$o/logs.b6"); then
		pass "logs -f: lines arrive one a second as printed"
	else
		fail "logs -f: lines arrive one a second as printed"; note <"$o/logs.b6"
	fi
	D logs rdd-ticker 2>/dev/null | head -n 6 >"$o/logs.d6"
	[ "$(wc -l <"$o/logs.d6")" = 6 ] && cut -d' ' -f2- "$o/logs.b6" | cmp -s - "$o/logs.d6" &&
		pass "logs -f: same lines as direct docker logs" ||
		{ fail "logs -f: same lines as direct docker logs"; diff <(cut -d' ' -f2- "$o/logs.b6") "$o/logs.d6" | note; }

	if [ "$MODE" = socat ]; then
		skip "drain: SIGTERM during logs -f" "socat does not drain"
		kill "$logs_pid" 2>/dev/null; wait "$logs_pid" 2>/dev/null
		D rm -f rdd-ticker >/dev/null
		return
	fi
	t_term=$(now)
	kill -TERM "$bridge_pid"
	sleep 0.5
	# During the drain the listener is closed: a new client is refused at once.
	t0=$(now)
	T=10 B version >"$o/drain-new.out" 2>&1; rc=$?
	el=$(secs "$t0" "$(now)")
	[ $rc != 0 ] && grep -q 'Cannot connect to the Docker daemon' "$o/drain-new.out" && ge 2 "$el" &&
		pass "drain: a new client is refused while draining (${el}s)" ||
		fail "drain: a new client is refused while draining" "exit $rc after ${el}s: $(head -2 "$o/drain-new.out")"
	if wait_gone "$logs_pid" $((DRAIN + 10)); then
		el=$(secs "$t_term" "$(now)")
		after=$(awk -v t="$t_term" '$1 > t' "$o/logs.b" | wc -l)
		rc=$(cat "$o/logs.rc" 2>/dev/null)
		# The stream lives on through the drain and ends within a few seconds after.
		if ge "$el" $((DRAIN - 1)) && ge $((DRAIN + 3)) "$el" && [ "$after" -ge $((DRAIN - 1)) ]; then
			pass "drain: logs -f went on for the drain ($after lines) and ended after ${el}s"
		else
			fail "drain: logs -f went on for the drain and ended after it" "ended after ${el}s, $after lines during the drain"
		fi
		# The bridge ends the byte stream with EOF; the chunked HTTP body is cut
		# short, which the CLI reports as "unexpected EOF". A reset would be a bug.
		if grep -qi 'reset' "$o/logs.err"; then
			fail "drain: docker logs ends with EOF, not a connection reset" "exit $rc: $(cat "$o/logs.err")"
		else
			pass "drain: docker logs ends with EOF, not a connection reset (exit $rc${rc:+, }$(head -c 80 "$o/logs.err" | tr '\n' ' '))"
		fi
	else
		fail "drain: logs -f ended within $((DRAIN + 10))s of SIGTERM"
		kill "$logs_pid" 2>/dev/null
	fi
	if wait_gone "$bridge_pid" $((DRAIN + 5)); then
		wait "$bridge_pid"; rc=$?
		[ $rc = 0 ] && pass "drain: rdd-guest exited 0 after SIGTERM" ||
			fail "drain: rdd-guest exited 0 after SIGTERM" "exit $rc"
	else
		fail "drain: rdd-guest exited within $((DRAIN + 5))s of SIGTERM"
	fi
	D rm -f rdd-ticker >/dev/null
}

# A raw HTTP/1.1 upgrade (Upgrade: tcp on /containers/{id}/attach) carries data
# both ways after the 101 and a half-close, the same as direct.
raw_upgrade() {
	local n=upgrade${1:+-$1} via sock
	for via in d b; do
		sock=$DSOCK; [ $via = b ] && sock=$BSOCK
		timeout -k 5 60 "$PY" "$HERE/upgrade.py" "$sock" "$IMG" "rdd-$n-$via" >"$o/$n.$via" 2>"$o/$n.$via.err"
		echo $? >"$o/$n.$via.rc"
	done
	if [ "$(cat "$o/$n.b.rc")" = 0 ] && cmp -s "$o/$n.d" "$o/$n.b"; then
		pass "$n: raw Upgrade: tcp attach carries data both ways and a half-close, same as direct"
	else
		fail "$n: raw Upgrade: tcp attach" "exit $(cat "$o/$n.b.rc")"
		diff -u "$o/$n.d" "$o/$n.b" | note
		note <"$o/$n.b.err"
	fi
}

# A request with a 48 MiB body that dockerd rejects at its first bytes, sent
# raw (reject.py) with "Expect: 100-continue" as curl and Go clients do:
# dockerd sends "100 Continue", reads a few hundred KiB, answers its error and
# closes while the client is still sending. The error answer must arrive
# through the bridge as it does directly, ten times in ten. (The relay that
# ended the whole connection at the first EPIPE towards dockerd lost it.)
REJECT_SIZE=$((48 * 1024 * 1024))
reject_ends() {         # "8 EOF, 2 reset" from reject.py's stderr
	grep -o 'then [a-zA-Z]*$' "$1" | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $3 }'
}
reject_body() {
	local spec what method url ctype first n via sock t0 el
	for spec in 'create|POST|/containers/create|application/json' 'build|POST|/build|application/x-tar'; do
		IFS='|' read -r what method url ctype <<<"$spec"
		first='{not json, not a tar header'
		n=reject-$what${1:+-$1}
		for via in d b; do
			sock=$DSOCK; [ $via = b ] && sock=$BSOCK
			t0=$(now)
			timeout -k 5 120 "$PY" "$HERE/reject.py" "$sock" 10 "$method" "$url" "$ctype" \
				"$REJECT_SIZE" "$first" expect >"$o/$n.$via" 2>"$o/$n.$via.err"
			echo $? >"$o/$n.$via.rc"
			el=$(secs "$t0" "$(now)")
		done
		if [ "$MODE" = socat ] && ! cmp -s "$o/$n.d" "$o/$n.b"; then
			# socat ends the whole connection at the first failed write.
			skip "$n: same answer as direct 10 of 10" "socat: $(tail -1 "$o/$n.b.err")"
		elif [ "$(cat "$o/$n.d.rc")" = 0 ] && [ "$(cat "$o/$n.b.rc")" = 0 ] && cmp -s "$o/$n.d" "$o/$n.b"; then
			pass "$n: $method $url, 48 MiB body rejected at its first bytes: same answer as direct 10 of 10 ($(sed -n '1s/^try 1: //; 1s/ | {.*//p' "$o/$n.b"); ${el}s)"
		else
			fail "$n: $method $url, 48 MiB body rejected at its first bytes: same answer as direct 10 of 10" \
				"bridge: $(tail -1 "$o/$n.b.err"), direct: $(tail -1 "$o/$n.d.err")"
			diff "$o/$n.d" "$o/$n.b" | sed -n 's/^> //p' | head -4 | note
		fi
		# How each connection ended after the answer (EOF or a reset) is
		# logged, not compared.
		echo "# $n: connection end after the answer: direct $(reject_ends "$o/$n.d.err"), bridge $(reject_ends "$o/$n.b.err")" >&4
	done
}

# The regressions beside it: engine-side refusals through the docker CLI,
# each compared with the direct call.
refusals() {
	local n via
	# The command stops reading stdin after 8 MiB of 64, and the consumer
	# starts reading its output 2 s late. (Direct and bridged run at once.)
	n=exec-late${1:+-$1}
	[ -f "$d/zero64" ] || head -c 64M /dev/zero >"$d/zero64"
	for via in d b; do
		(
			if [ $via = d ]; then D exec -i rdd-sleeper head -c 8388608; else B exec -i rdd-sleeper head -c 8388608; fi \
				<"$d/zero64" 2>"$o/$n.$via.err" | (sleep 2; wc -c) >"$o/$n.$via"
			echo "${PIPESTATUS[0]}" >"$o/$n.$via.rc"
		) &
		bg_pids+=($!)
	done
	wait "${bg_pids[-1]}" "${bg_pids[-2]}"
	expect_same "$n" 0 &&
		{ [ "$(cat "$o/$n.b")" = 8388608 ] && pass "$n: exec -i head -c 8 MiB of 64, late reader: 8388608 bytes" ||
			fail "$n: exec -i head -c 8 MiB of 64, late reader" "got '$(cat "$o/$n.b")' bytes"; }

	# docker load of 32 MiB that is no archive: the same error both ways.
	n=load-bad${1:+-$1}
	[ -f "$d/rand32" ] || head -c 32M /dev/urandom >"$d/rand32"
	IN=$d/rand32 run_both "$n" load
	EMPTY_OK=1 expect_same "$n" 1 &&
		{ grep -q 'invalid tar header' "$o/$n.b.err" && pass "$n: $(head -1 "$o/$n.b.err")" ||
			fail "$n: the engine's error" "$(head -2 "$o/$n.b.err")"; }

	# docker cp of $BIG to a directory that does not exist: the CLI sends the
	# archive and dockerd refuses it. Whether the CLI's tar writer also logs
	# "read/write on closed pipe" is a race inside the CLI, either way.
	n=cp-missing${1:+-$1}
	[ -f "$d/big.bin" ] || head -c "$BIG" /dev/urandom >"$d/big.bin"
	run_both "$n" cp "$d/big.bin" rdd-sleeper:/missing/dir/
	EMPTY_OK=1 ERR_FILTER='/level=error msg="Can.t \(add file\|close tar writer\)/d' expect_same "$n" 1 &&
		pass "$n: $BIG to a missing directory: $(sed '/level=error/d' "$o/$n.b.err" | head -1)"
}

# Restarts under a parent that keeps the listening socket (keeper.py: what
# systemd's socket activation or descriptor store does): docker version in a
# loop through it, five restarts meanwhile, not one command may fail. A
# daemon that shut the inherited socket down at SIGTERM left it refusing
# every connect after the first restart.
LOOP_SECS=12
restart_kept() {
	if [ "$MODE" = socat ]; then
		skip "restart: five restarts under a parent that keeps the socket" "socat cannot take a socket passed in"
		return
	fi
	local ksock=$d/kept.sock keeper_pid loop_pid i n bad longest median served ok t_restart
	"$PY" "$HERE/keeper.py" "$ksock" "$d/keeper" -- "$RDD" --backend "$DSOCK" \
		--drain-timeout "$DRAIN" --log-level debug >"$d/keeper.out" 2>&1 &
	keeper_pid=$!
	bg_pids+=("$keeper_pid")
	if ! wait_for 10 grep -q '^<6>listening on' "$d/keeper.1.log" 2>/dev/null; then
		fail "restart: rdd-guest started by keeper.py" "$(cat "$d/keeper.out" "$d/keeper.1.log" 2>/dev/null | head -5)"
		stop_pid "$keeper_pid" 20
		return
	fi
	pass "restart: rdd-guest takes the socket passed in: $(head -1 "$d/keeper.1.log" | sed "s#$d#TMP#g; s/^<6>//")"

	# The loop: each command's start, end and exit status, one line each.
	: >"$o/restart.loop"
	(
		end=$((SECONDS + LOOP_SECS))
		while [ $SECONDS -lt $end ]; do
			t0=$EPOCHREALTIME
			timeout -k 5 20 "$DOCKER" -H "unix://$ksock" version >/dev/null 2>"$o/restart.err"
			rc=$?
			echo "$t0 $EPOCHREALTIME $rc $(head -c 200 "$o/restart.err" | tr '\n' ' ')" >>"$o/restart.loop"
		done
	) &
	loop_pid=$!
	bg_pids+=("$loop_pid")
	sleep 1
	for i in 1 2 3 4 5; do
		t_restart=$(now)
		kill -USR1 "$keeper_pid"
		wait_for 5 grep -q "^restart $i:" "$d/keeper.out" || break
		sleep "$(awk -v a="$t_restart" -v b="$(now)" 'BEGIN { s = 2 - (b - a); print (s > 0 ? s : 0) }')"
	done
	wait_gone "$loop_pid" $((LOOP_SECS + 30)) || { kill "$loop_pid" 2>/dev/null; wait_gone "$loop_pid" 5; }
	stop_pid "$keeper_pid" 20
	n=$(grep -c . "$o/restart.loop")
	bad=$(awk '$3 != 0' "$o/restart.loop" | wc -l)
	longest=$(awk '{ t = $2 - $1; if (t > m) m = t } END { printf "%.2f", m }' "$o/restart.loop")
	median=$(awk '{ printf "%.3f\n", $2 - $1 }' "$o/restart.loop" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	i=$(grep -c '^restart ' "$d/keeper.out")
	if [ "$i" = 5 ] && [ "$bad" = 0 ] && [ "$n" -ge 10 ]; then
		pass "restart: $n docker version through 5 restarts, 0 failed, longest ${longest}s (median ${median}s)"
	else
		fail "restart: docker version through 5 restarts, none failed" \
			"$i restarts, $bad of $n failed, longest ${longest}s"
		awk '$3 != 0' "$o/restart.loop" | cut -d' ' -f3- | sort | uniq -c | sed "s#$d#TMP#g" | head -5 | note
	fi
	# Each old instance drained and exited 0; each instance served.
	served='' ok=1
	for i in 1 2 3 4 5 6; do
		n=$(sed -n 's/^<6>counters: .* served=\([0-9]*\) .*/\1/p' "$d/keeper.$i.log" 2>/dev/null | tail -1)
		served="$served ${n:-?}"
		[ -n "$n" ] && [ "$n" -gt 0 ] || ok=0
	done
	grep -q '^keeper done' "$d/keeper.out" && [ "$(grep -c '^exited .* status 0 after' "$d/keeper.out")" = 6 ] || ok=0
	if [ $ok = 1 ]; then
		pass "restart: all 6 instances served and exited 0 (served:$served; old ones gone $(grep -o 'after [0-9.]* s' "$d/keeper.out" | head -5 | cut -d' ' -f2 | sort -n | tail -1) s after SIGTERM at most)"
	else
		fail "restart: all 6 instances served and exited 0" "served:$served"
		note <"$d/keeper.out"
	fi
}

closed_lines() {        # the per-connection debug line, one per relayed connection
	[ "$MODE" = rdd-guest ] || return 0
	local n
	n=$(grep -c '^<7>closed peer' "$rdd_log")
	[ "$n" -gt 0 ] && pass "rdd-guest log${1:+ ($1)}: a debug line per closed connection ($n)" ||
		fail "rdd-guest log${1:+ ($1)}: debug lines for closed connections" "none in $rdd_log"
}

# ------------------------------------------------------------------- run --
api_calls
dockerd_down
containers
half_close
exec_stdin
attach
events
copy
reject_body
refusals
build
save_load
concurrent
raw_upgrade
closed_lines
logs_and_drain

# The bytes-moving scenarios once more with rdd-guest copying with
# read/write only (the first pass used its default: bulk through splice).
if [ "$MODE" = rdd-guest ]; then
	start_bridge --no-splice || die_setup "rdd-guest --no-splice did not start" "$rdd_log"
	grep -q '^<6>listening on .*copy=rw' "$rdd_log" && pass "rw: rdd-guest --no-splice says it copies with read/write" ||
		fail "rw: rdd-guest --no-splice says it copies with read/write" "$(head -1 "$rdd_log")"
	half_close rw
	exec_stdin rw
	attach rw
	copy rw
	reject_body rw
	refusals rw
	save_load rw
	raw_upgrade rw
	closed_lines rw
	stop_pid "$bridge_pid" $((DRAIN + 5))
fi
restart_kept

echo "# total $(secs "$t_start" "$(now)")s" >&2
finish
