#!/bin/busybox sh
# shellcheck shell=dash
# /init of the VM test guest (built into the initramfs by tests/vm/run.sh).
#
# Loads the vsock loopback transport, runs the scenarios named on the kernel
# command line (rdd_scenarios=a,b,...) and prints facts, never verdicts:
#   RESULT <name> role=client|backend|backend-summary|daemon|keeper|guest key=value ...
#   DLOG <name> <one line of the daemon's stderr>
# run.sh on the host parses these and asserts. The last line is GUEST-DONE;
# then the guest powers off. Every wait here is bounded, and run.sh bounds
# the whole boot with timeout(1) as well.

/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var/run /usr/bin /usr/sbin /sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox mount -t tmpfs tmpfs /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

echo "GUEST-START kernel=$(uname -r) cpus=$(nproc)"

while read -r m; do
	insmod "/lib/modules/$m" || echo "RESULT setup role=guest insmod=fail module=$m"
done </etc/vsock-modules

scenarios=$(sed -n 's/.*rdd_scenarios=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
DAEMON=/bin/rdd-guest
VMTOOL=/bin/vmtool

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# running PID: true while PID exists and is not a zombie
running() {
	[ -r "/proc/$1/stat" ] || return 1
	[ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s, at most SECONDS
wait_until() {
	limit=$(($1 * 10))
	shift
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ "$i" -ge "$limit" ] && return 1
		sleep 0.1
	done
	return 0
}

not_running() { ! running "$1"; }

# wait_exit PID SECONDS: wait for PID at most SECONDS, then kill it; sets
# rc to its exit status, or to "killed".
wait_exit() {
	if wait_until "$2" not_running "$1"; then
		wait "$1"
		rc=$?
	else
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		rc=killed
	fi
}

# reap NAME ROLE PID SECONDS: wait_exit, then print the exit status (or
# exit=killed) as a RESULT line.
reap() {
	wait_exit "$3" "$4"
	echo "RESULT $1 role=$2 exit=$rc"
}

# start_daemon NAME ARGS...: start rdd-guest, wait for its "listening on" line
start_daemon() {
	dname=$1
	shift
	"$DAEMON" "$@" 2>"/tmp/$dname.log" &
	DPID=$!
	if wait_until 20 grep -q '^<6>listening on' "/tmp/$dname.log"; then
		echo "RESULT $dname role=daemon started=1"
	else
		echo "RESULT $dname role=daemon started=0"
	fi
}

# stop_daemon NAME: SIGTERM, bounded wait, exit status, then its log
stop_daemon() {
	kill -TERM "$DPID" 2>/dev/null
	reap "$1" daemon "$DPID" 30
	sed "s/^/DLOG $1 /" "/tmp/$1.log"
}

# backend NAME ARGS...: start a vmtool backend on a unix socket in the background
backend() {
	bname=$1
	shift
	rm -f "/tmp/$bname.ready"
	"$VMTOOL" backend --name "$bname" --ready-file "/tmp/$bname.ready" "$@" &
	BPID=$!
	wait_until 10 test -e "/tmp/$bname.ready" || echo "RESULT $bname role=backend-summary ready=0"
}

# seconds_since T0: seconds of uptime since T0, two decimals
seconds_since() { echo "$1 $(uptime_s)" | awk '{printf "%.2f", $2 - $1}'; }

# long_transfer NAME PORT DRAIN SEED: a 64 MiB reply paced at about 3 MiB/s
# (far longer than any drain window here) from NAME-backend through
# NAME-daemon (--drain-timeout DRAIN) to the client NAME, whose pid is left
# in cpid; returns once the client has its first bytes.
long_transfer() {
	backend "$1-backend" --listen "unix:/run/$1.sock" --order after-eof --send 64M --seed "$4" \
		--chunk 64K --pace-ms 20 --timeout 120
	start_daemon "$1-daemon" --listen "vsock:$2" --backend "/run/$1.sock" --allow-cid 1 \
		--drain-timeout "$3" --log-level debug
	rm -f "/tmp/$1.started"
	"$VMTOOL" client --name "$1" --connect "vsock:1:$2" --send 1K --seed "$(($4 + 1))" \
		--started-file "/tmp/$1.started" --timeout 120 &
	cpid=$!
	wait_until 30 test -e "/tmp/$1.started" || echo "RESULT $1 role=client started=0"
}

# end_long_transfer NAME: after the daemon's exit, collect the client, the
# backend and the daemon's log.
end_long_transfer() {
	reap "$1-client" client-process "$cpid" 30
	kill -TERM "$BPID" 2>/dev/null
	reap "$1-backend" backend-process "$BPID" 30
	sed "s/^/DLOG $1-daemon /" "/tmp/$1-daemon.log"
}

# The kernel alone: a vsock listener in this guest, reached on CID 1, sees
# peer CID 1. Everything else depends on this.
scenario_kernel() {
	backend kernel-backend --listen vsock:7000 --order after-eof --send 64K --seed 11 --timeout 30
	"$VMTOOL" client --name kernel --connect vsock:1:7000 --send 4K --seed 12 --timeout 30
	reap kernel-backend backend-process "$BPID" 10
}

# 1. Default policy (only CID 2): a CID-1 peer is refused before the backend
#    is dialled.
scenario_refuse() {
	backend refuse-backend --listen unix:/run/refuse.sock --send 4K --timeout 60
	start_daemon refuse-daemon --listen vsock:6661 --backend /run/refuse.sock --log-level debug
	# The peer sends nothing: it waits for the daemon's verdict (EOF or reset).
	"$VMTOOL" client --name refuse --connect vsock:1:6661 --order after-eof --send 0 --timeout 20
	# The backend never sees a connection; give a wrongly relayed one time to arrive.
	sleep 1
	kill -TERM "$BPID"
	reap refuse-backend backend-process "$BPID" 10
	stop_daemon refuse-daemon
}

# 2. --allow-cid 1: relayed, with half-close in both directions.
scenario_relay() {
	start_daemon relay-daemon --listen vsock:6662 --backend /run/relay.sock --allow-cid 1 --log-level debug
	# a: the client shuts write first; the backend replies only after that EOF.
	backend relay-a-backend --listen unix:/run/relay.sock --order after-eof --send 4M --seed 21 --timeout 120
	"$VMTOOL" client --name relay-a --connect vsock:1:6662 --send 256K --seed 22 --timeout 120
	reap relay-a-backend backend-process "$BPID" 20
	# b: the backend sends its reply and shuts write first; the client sends
	#    only after the reply's EOF.
	backend relay-b-backend --listen unix:/run/relay.sock --send 2M --seed 23 --timeout 120
	"$VMTOOL" client --name relay-b --connect vsock:1:6662 --order after-eof --send 1M --seed 24 --timeout 120
	reap relay-b-backend backend-process "$BPID" 20
	stop_daemon relay-daemon
}

# 3. SIGTERM while a transfer is in flight: it completes within the drain
#    window and the daemon exits 0.
scenario_drain() {
	backend drain-backend --listen unix:/run/drain.sock --order after-eof --send 16M --seed 31 \
		--chunk 64K --pace-ms 20 --timeout 120
	start_daemon drain-daemon --listen vsock:6663 --backend /run/drain.sock --allow-cid 1 \
		--drain-timeout 30 --log-level debug
	rm -f /tmp/drain.started
	"$VMTOOL" client --name drain --connect vsock:1:6663 --send 1K --seed 32 \
		--started-file /tmp/drain.started --timeout 120 &
	cpid=$!
	wait_until 30 test -e /tmp/drain.started || echo "RESULT drain role=client started=0"
	t0=$(uptime_s)
	kill -TERM "$DPID"
	if running "$cpid"; then inflight=1; else inflight=0; fi
	# The listener is closed once the signal is handled: a new peer is not served.
	sleep 1
	"$VMTOOL" client --name drain-late --connect vsock:1:6663 --send 1K --seed 33 --timeout 10
	wait_exit "$DPID" 60
	echo "RESULT drain role=daemon exit=$rc inflight_at_sigterm=$inflight drain_timeout=30" \
		"seconds_to_exit=$(seconds_since "$t0")"
	reap drain-client client-process "$cpid" 30
	reap drain-backend backend-process "$BPID" 30
	sed "s/^/DLOG drain-daemon /" /tmp/drain-daemon.log
}

# 3b. SIGTERM with a transfer longer than the drain window: the daemon
#     ends it with EOF when the window closes and still exits 0.
scenario_cut() {
	long_transfer cut 6664 2 35
	t0=$(uptime_s)
	kill -TERM "$DPID"
	wait_exit "$DPID" 30
	echo "RESULT cut role=daemon exit=$rc drain_timeout=2 seconds_to_exit=$(seconds_since "$t0")"
	end_long_transfer cut
}

# 3c. A second SIGTERM while draining ends the rest at once: the daemon
#     exits 0 long before its 60 s window, and the peer reads EOF.
scenario_term2() {
	long_transfer term2 6667 60 37
	kill -TERM "$DPID"
	sleep 1
	if running "$DPID"; then draining=1; else draining=0; fi
	t0=$(uptime_s)
	kill -TERM "$DPID"
	wait_exit "$DPID" 30
	echo "RESULT term2 role=daemon exit=$rc draining_after_first=$draining drain_timeout=60" \
		"seconds_after_second=$(seconds_since "$t0")"
	end_long_transfer term2
}

# 3d. The connection limit: with --max-connections 1 a second host peer
#     waits in the listener's backlog (no accept-then-reset) while the
#     first holds the slot, then is relayed intact once it frees.
scenario_limit() {
	backend limit-backend --listen unix:/run/limit.sock --order after-eof --send 64K --seed 61 \
		--count 2 --timeout 60
	start_daemon limit-daemon --listen vsock:6668 --backend /run/limit.sock --allow-cid 1 \
		--max-connections 1 --log-level debug
	# A holds the slot for about 3 s: 1 MiB sent 64 KiB every 0.2 s.
	"$VMTOOL" client --name limit-a --connect vsock:1:6668 --send 1M --chunk 64K --pace-ms 200 \
		--seed 62 --timeout 60 &
	apid=$!
	sleep 1
	"$VMTOOL" client --name limit-b --connect vsock:1:6668 --send 64K --seed 63 --timeout 60 &
	bpid=$!
	sleep 1
	# The counters while A is relayed and B waits (SIGUSR1 logs them).
	if running "$apid"; then a_running=1; else a_running=0; fi
	if running "$bpid"; then b_waiting=1; else b_waiting=0; fi
	kill -USR1 "$DPID"
	wait_until 5 grep -q '^<6>counters:' /tmp/limit-daemon.log
	echo "RESULT limit role=daemon a_running=$a_running b_waiting=$b_waiting"
	reap limit-a client-process "$apid" 30
	reap limit-b client-process "$bpid" 30
	reap limit-backend backend-process "$BPID" 20
	stop_daemon limit-daemon
}

# 3e. The pipe budget: an unprivileged daemon whose user's pipes pass
#     /proc/sys/fs/pipe-user-pages-soft gets 2-page pipes, so a bulk
#     transfer stays with read/write (copy=rw) instead of splicing through
#     8 KiB; with the budget intact the same daemon splices (copy=splice).
scenario_budget() {
	mkdir -p /tmp/budget
	chmod 0777 /tmp/budget
	backend budget-backend --listen unix:/tmp/budget/b.sock --order after-eof --send 16M --seed 81 \
		--chunk 256K --count 2 --timeout 120
	chmod 0666 /tmp/budget/b.sock
	soft=$(cat /proc/sys/fs/pipe-user-pages-soft)
	# su execs the shell, and the shell execs the daemon: DPID is the daemon.
	su -s /bin/sh nobody -c "exec $DAEMON --listen vsock:6669 --backend /tmp/budget/b.sock \
		--allow-cid 1 --splice --log-level debug" 2>/tmp/budget-daemon.log &
	DPID=$!
	if wait_until 20 grep -q '^<6>listening on' /tmp/budget-daemon.log; then started=1; else started=0; fi
	echo "RESULT budget-daemon role=daemon started=$started"
	echo "RESULT budget role=guest daemon_uid=$(awk '/^Uid:/ {print $2}' "/proc/$DPID/status")"
	"$VMTOOL" client --name budget-a --connect vsock:1:6669 --send 64 --seed 82 --timeout 120
	echo 1 >/proc/sys/fs/pipe-user-pages-soft
	"$VMTOOL" client --name budget-b --connect vsock:1:6669 --send 64 --seed 83 --timeout 120
	echo "$soft" >/proc/sys/fs/pipe-user-pages-soft
	reap budget-backend backend-process "$BPID" 30
	stop_daemon budget-daemon
}

# end_backend NAME SECONDS: a backend that has served its --count exits by
# itself; give it SECONDS, then SIGTERM (it prints its summary either way).
end_backend() {
	wait_until "$2" not_running "$BPID" || kill -TERM "$BPID" 2>/dev/null
	reap "$1" backend-process "$BPID" 10
}

# queued_client NAME PORT SEED: a peer that connects, sends a 4 KiB request,
# shuts write and reads the reply, in the background (pid appended to
# qpids); waits at most 10 s for its write side to be shut, i.e. for the
# request to be in the kernel on the listener's side.
queued_client() {
	rm -f "/tmp/$1.shut"
	"$VMTOOL" client --name "$1" --connect "vsock:1:$2" --send 4K --seed "$3" \
		--shut-file "/tmp/$1.shut" --timeout 60 &
	qpids="$qpids $!"
	wait_until 10 test -e "/tmp/$1.shut" || echo "RESULT $1 role=client shut_in_time=0"
}

# held_client NAME PORT SEED: a peer that holds the daemon's one slot for
# about 3 s (1 MiB sent 64 KiB every 0.2 s, then the reply), in the
# background (pid in hpid); returns once it is connected.
held_client() {
	rm -f "/tmp/$1.connected"
	"$VMTOOL" client --name "$1" --connect "vsock:1:$2" --send 1M --chunk 64K --pace-ms 200 \
		--seed "$3" --connected-file "/tmp/$1.connected" --timeout 60 &
	hpid=$!
	wait_until 10 test -e "/tmp/$1.connected" || echo "RESULT $1 role=client connected_in_time=0"
}

# count_running PID...: how many of the PIDs are still running
count_running() {
	n=0
	for p in "$@"; do running "$p" && n=$((n + 1)); done
	echo "$n"
}

# 3f. Peers waiting in the AF_VSOCK backlog at SIGTERM, the daemon's own
#     listener: with --max-connections 1 and one peer holding the slot,
#     three more connect, send their request, shut write and wait
#     unaccepted. At SIGTERM the daemon takes them and relays each under
#     the drain deadline; none sees EOF without its reply.
scenario_backlog() {
	backend backlog-backend --listen unix:/run/backlog.sock --order after-eof --send 256K --seed 91 \
		--count 4 --timeout 60
	start_daemon backlog-daemon --listen vsock:6680 --backend /run/backlog.sock --allow-cid 1 \
		--max-connections 1 --drain-timeout 20 --log-level debug
	held_client backlog-held 6680 92
	qpids=
	for q in 1 2 3; do queued_client "backlog-q$q" 6680 $((92 + q)); done
	kill -USR1 "$DPID"
	wait_until 5 grep -q '^<6>counters:' /tmp/backlog-daemon.log
	if running "$hpid"; then held=1; else held=0; fi
	# shellcheck disable=SC2086
	waiting=$(count_running $qpids)
	t0=$(uptime_s)
	kill -TERM "$DPID"
	wait_exit "$DPID" 30
	echo "RESULT backlog role=daemon exit=$rc held_at_sigterm=$held waiting_at_sigterm=$waiting" \
		"drain_timeout=20 seconds_to_exit=$(seconds_since "$t0")"
	reap backlog-held client-process "$hpid" 10
	for p in $qpids; do reap backlog-q client-process "$p" 10; done
	end_backend backlog-backend 5
	sed "s/^/DLOG backlog-daemon /" /tmp/backlog-daemon.log
}

# 3g. The listener handed on (a parent keeps it, as systemd's descriptor
#     store or a socket unit does): vmtool keep holds vsock:6681 and runs
#     the daemon with it as fd 3 (LISTEN_FDS=1, LISTEN_PID through the
#     shell's exec); SIGUSR1 to the keeper starts the next instance on the
#     same socket. Peers arrive at each moment of a restart: q1 waits in the
#     backlog at SIGTERM (the one slot is held), q2 connects while the first
#     instance drains, q3 while no instance runs; late connects after the
#     second start. The second instance relays q1, q2, q3 and late.
scenario_handoff() {
	backend handoff-backend --listen unix:/run/handoff.sock --order after-eof --send 256K --seed 101 \
		--count 5 --timeout 60
	rm -f /tmp/handoff.pid.* /tmp/handoff-daemon-*.log
	# shellcheck disable=SC2016
	"$VMTOOL" keep --name handoff-keeper --listen vsock:6681 --pid-file /tmp/handoff.pid --timeout 90 -- \
		sh -c 'exec "$0" "$@" 2>"/tmp/handoff-daemon-$KEEP_CHILD.log"' "$DAEMON" --listen vsock:6681 \
		--backend /run/handoff.sock --allow-cid 1 --max-connections 1 --drain-timeout 20 --log-level debug &
	kpid=$!
	if wait_until 20 grep -q '^<6>listening on' /tmp/handoff-daemon-1.log; then s1=1; else s1=0; fi
	first=$(cat /tmp/handoff.pid.1 2>/dev/null)
	echo "RESULT handoff-daemon-1 role=daemon started=$s1"
	held_client handoff-held 6681 102
	qpids=
	queued_client handoff-q1 6681 103
	kill -USR1 "$first"
	wait_until 5 grep -q '^<6>counters:' /tmp/handoff-daemon-1.log
	if running "$hpid"; then held=1; else held=0; fi
	# shellcheck disable=SC2086
	waiting=$(count_running $qpids)
	t0=$(uptime_s)
	kill -TERM "$first"
	wait_until 5 grep -q '^<6>stopping:' /tmp/handoff-daemon-1.log
	queued_client handoff-q2 6681 104
	if running "$first"; then draining=1; else draining=0; fi
	wait_until 30 not_running "$first" || kill -KILL "$first"
	gone=$(seconds_since "$t0")
	# shellcheck disable=SC2086
	waiting_gone=$(count_running $qpids)
	queued_client handoff-q3 6681 105
	sleep 0.5
	# shellcheck disable=SC2086
	waiting_before_second=$(count_running $qpids)
	t1=$(uptime_s)
	kill -USR1 "$kpid"
	if wait_until 20 grep -q '^<6>listening on' /tmp/handoff-daemon-2.log; then s2=1; else s2=0; fi
	echo "RESULT handoff-daemon-2 role=daemon started=$s2"
	"$VMTOOL" client --name handoff-late --connect vsock:1:6681 --send 4K --seed 106 --timeout 30
	echo "RESULT handoff role=guest held_at_first_sigterm=$held q1_waiting_at_first_sigterm=$waiting" \
		"first_draining_at_q2=$draining first_gone_after=$gone waiting_when_first_gone=$waiting_gone" \
		"waiting_before_second=$waiting_before_second second_after_stop=$(seconds_since "$t0")" \
		"late_relayed_after_second_start=$(seconds_since "$t1")"
	reap handoff-held client-process "$hpid" 10
	for p in $qpids; do reap handoff-q client-process "$p" 20; done
	end_backend handoff-backend 5
	kill -TERM "$kpid"
	reap handoff-keeper keeper-process "$kpid" 30
	sed "s/^/DLOG handoff-daemon-1 /" /tmp/handoff-daemon-1.log
	sed "s/^/DLOG handoff-daemon-2 /" /tmp/handoff-daemon-2.log 2>/dev/null
}

# 4. No --listen: the daemon binds VMADDR_CID_ANY port 6660.
scenario_default() {
	backend default-backend --listen unix:/run/default.sock --order after-eof --send 1M --seed 41 --timeout 60
	start_daemon default-daemon --backend /run/default.sock --allow-cid 1 --log-level debug
	"$VMTOOL" client --name default --connect vsock:1:6660 --send 64K --seed 42 --timeout 60
	reap default-backend backend-process "$BPID" 20
	stop_daemon default-daemon
}

# 5. Throughput of 256 MiB each way (down: backend -> peer, like docker
#    save; up: peer -> backend, like a build context), with splice and with
#    read/write, and the kernel's own vsock loopback without the daemon for
#    comparison.
scenario_throughput() {
	size=${THROUGHPUT_SIZE:-256M}
	port=6670
	for way in down up; do
		if [ "$way" = down ]; then bsend=$size csend=64; else bsend=64 csend=$size; fi
		n=tp-$way-direct
		backend "$n-backend" --listen "vsock:$port" --order after-eof --send "$bsend" --seed 51 \
			--chunk 256K --timeout 300
		"$VMTOOL" client --name "$n" --connect "vsock:1:$port" --send "$csend" --seed 52 \
			--chunk 256K --timeout 300
		reap "$n-backend" backend-process "$BPID" 30
		port=$((port + 1))
		for mode in splice no-splice; do
			n=tp-$way-$mode
			backend "$n-backend" --listen "unix:/run/$n.sock" --order after-eof \
				--send "$bsend" --seed 51 --chunk 256K --timeout 300
			start_daemon "$n-daemon" --listen "vsock:$port" --backend "/run/$n.sock" \
				--allow-cid 1 --"$mode" --log-level debug
			"$VMTOOL" client --name "$n" --connect "vsock:1:$port" --send "$csend" --seed 52 \
				--chunk 256K --timeout 300
			reap "$n-backend" backend-process "$BPID" 30
			stop_daemon "$n-daemon"
			port=$((port + 1))
		done
	done
}

for s in $scenarios; do
	echo "SCENARIO $s begin t=$(uptime_s)"
	"scenario_$s"
	echo "SCENARIO $s end t=$(uptime_s)"
done

echo GUEST-DONE
sync
poweroff -f
