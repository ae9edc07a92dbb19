#!/bin/bash
# VM test: rdd-guest on a real Linux kernel's AF_VSOCK.
#
# usage: tests/vm/run.sh [PATH-TO-rdd-guest]     (default build/rdd-guest)
#
# Boots Debian's kernel under qemu (KVM or TCG) with an initramfs made here:
# busybox-static, the vsock loopback modules, the daemon with the shared
# libraries it needs, vmtool (tests/vm/vmtool.c, built static) and
# tests/vm/guest-init.sh as /init. Inside the guest a connection to CID 1
# (VMADDR_CID_LOCAL) loops back to a listener in the same guest, which sees
# peer CID 1. The guest prints facts; this script asserts them, one line per
# check, and ends with "N passed, N failed".
#
# Environment:
#   RDD_VM_SCENARIOS   comma list, default kernel,refuse,relay,drain,cut,term2,limit,backlog,
#                      handoff,budget,default,throughput
#   RDD_VM_TIMEOUT     seconds for the whole guest run (default 600)
#   RDD_VM_KERNEL      kernel image (default: newest /boot/vmlinuz-*)
#   RDD_VM_THROUGHPUT_SIZE  bytes for scenario 5 (default 256M)
#   RDD_VM_ACCEL       qemu accelerator: kvm or tcg forces one, no fallback. Default:
#                      kvm if /dev/kvm is read-write and the guest prints within
#                      RDD_VM_KVM_PROBE s, else tcg (one "vm: ... falling back" line)
#   RDD_VM_KVM_PROBE   seconds a KVM guest gets to print its first byte (default 5)
#   RDD_VM_BUSYBOX     static busybox to use (default /bin/busybox)
#   RDD_VM_KEEP        keep the work directory (console log, initramfs)
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/vm
DAEMON=${1:-build/rdd-guest}
case $DAEMON in /*) ;; *) DAEMON=$ROOT/$DAEMON ;; esac
SCENARIOS=${RDD_VM_SCENARIOS:-kernel,refuse,relay,drain,cut,term2,limit,backlog,handoff,budget,default,throughput}
VM_TIMEOUT=${RDD_VM_TIMEOUT:-600}
TP_SIZE=${RDD_VM_THROUGHPUT_SIZE:-256M}

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
summary() { echo "$passed passed, $failed failed"; }

# A setup failure is one failed check, then the summary.
die() {
	fail "$*"
	summary
	exit 1
}

for tool in qemu-system-x86_64 cpio "${CC:-gcc}" timeout ldd; do
	command -v "$tool" >/dev/null || die "setup: $tool not found (see tests/vm/packages.txt)"
done
[ -x "$DAEMON" ] || die "setup: daemon binary $DAEMON not found or not executable (run make)"

KERNEL=${RDD_VM_KERNEL:-$(printf '%s\n' /boot/vmlinuz-* | sort -V | tail -n 1)}
[ -r "$KERNEL" ] || die "setup: no readable kernel image in /boot (install linux-image-amd64)"
KVER=${KERNEL##*/vmlinuz-}
MODDIR=/lib/modules/$KVER
[ -r "$MODDIR/modules.dep" ] || die "setup: $MODDIR/modules.dep missing"
BUSYBOX=${RDD_VM_BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || die "setup: $BUSYBOX missing (install busybox-static)"
# the guest has no libraries for busybox: it must be the static build
ldd "$BUSYBOX" >/dev/null 2>&1 && die "setup: $BUSYBOX is dynamically linked (install busybox-static)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rdd-vm.XXXXXX")
cleanup() {
	if [ -n "${RDD_VM_KEEP:-}" ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- vmtool -------------------------------------------------------------
VMTOOL=$WORK/vmtool
"${CC:-gcc}" -std=c11 -O2 -Wall -Wextra -Werror -static -o "$VMTOOL" "$HERE/vmtool.c" ||
	die "setup: building vmtool"

# --- initramfs ----------------------------------------------------------
R=$WORK/root
mkdir -p "$R/bin" "$R/etc" "$R/lib/modules" "$R/dev" "$R/proc" "$R/sys" "$R/tmp" "$R/run"
cp "$BUSYBOX" "$R/bin/busybox"
cp "$VMTOOL" "$R/bin/vmtool"
cp "$DAEMON" "$R/bin/rdd-guest"
cp "$HERE/guest-init.sh" "$R/init"
chmod 755 "$R/init" "$R/bin/"*

# The daemon's shared libraries and loader, at the paths ldd names.
libs=$(ldd "$DAEMON" 2>/dev/null | awk '/=>/ { print $3 } /^[[:space:]]*\// { print $1 }')
for lib in $libs; do
	[ -e "$lib" ] || continue
	mkdir -p "$R$(dirname "$lib")"
	cp -L "$lib" "$R$lib"
done

# vsock_loopback and what it depends on. modules.dep lists a module's whole
# dependency chain, each entry depending only on entries after it, so the
# load order is that line reversed.
dep=$(grep -E '(^|/)vsock_loopback\.ko[^:]*:' "$MODDIR/modules.dep") ||
	die "setup: vsock_loopback not in $MODDIR/modules.dep"
: >"$R/etc/vsock-modules"
for m in $(echo "${dep%%:*} ${dep#*:}" | tr ' ' '\n' | grep . | tac); do
	base=$(basename "$m")
	case $base in
	*.ko.xz) xz -dc "$MODDIR/$m" >"$R/lib/modules/${base%.xz}" ;;
	*.ko.zst) zstd -qdc "$MODDIR/$m" >"$R/lib/modules/${base%.zst}" ;;
	*.ko.gz) gzip -dc "$MODDIR/$m" >"$R/lib/modules/${base%.gz}" ;;
	*) cp "$MODDIR/$m" "$R/lib/modules/$base" ;;
	esac || die "setup: copying module $m"
	echo "${base%.ko*}.ko" >>"$R/etc/vsock-modules"
done

# An unprivileged user for the pipe-budget scenario (su from busybox).
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"

(cd "$R" && find . | cpio -o -H newc --quiet) >"$WORK/initramfs.cpio" || die "setup: cpio"

# --- boot ---------------------------------------------------------------
CONSOLE=$WORK/console.log
# KVM_PROBE: seconds a KVM guest gets to print its first console byte. With
# "quiet" the first byte is normally guest-init.sh's GUEST-START line, which
# a working KVM reaches in a second or two (TCG in a few). Some hosts have a
# read-write /dev/kvm that cannot run this guest (a PVM-only kvm module, a
# broken nested setup): qemu starts, spins at 100% CPU and the guest never
# prints anything. The probe is the real boot: when the guest speaks in
# time, the same qemu goes on with the scenarios, so a working KVM costs
# nothing; when it does not, qemu is stopped after KVM_PROBE seconds and the
# run starts again under TCG.
KVM_PROBE=${RDD_VM_KVM_PROBE:-5}
case $KVM_PROBE in '' | *[!0-9]* | 0) die "setup: RDD_VM_KVM_PROBE must be a positive number of seconds" ;; esac

# boot ACCEL [PROBE]: start qemu in the background (bounded by VM_TIMEOUT)
# with a fresh console log; sets qpid. With PROBE, wait at most PROBE seconds
# for the first console byte and return 1, qemu stopped, if none came; then
# why is "exited" (qemu ended by itself: KVM could not start) or "silent".
qpid=
why=
boot() {
	: >"$CONSOLE"
	timeout -k 5 "$VM_TIMEOUT" qemu-system-x86_64 \
		-accel "$1" -m 1024 -smp 2 -nodefaults -no-user-config -display none \
		-serial "file:$CONSOLE" -no-reboot \
		-kernel "$KERNEL" -initrd "$WORK/initramfs.cpio" \
		-append "console=ttyS0 panic=-1 quiet loglevel=4 rdd_scenarios=$SCENARIOS THROUGHPUT_SIZE=$TP_SIZE" \
		</dev/null >"$WORK/qemu.out" 2>&1 &
	qpid=$!
	[ -n "${2:-}" ] || return 0
	local i=0
	while [ ! -s "$CONSOLE" ]; do
		if ! kill -0 "$qpid" 2>/dev/null; then
			[ -s "$CONSOLE" ] && return 0
			wait "$qpid"
			qpid=
			why=exited
			return 1
		fi
		if [ $i -ge $(($2 * 10)) ]; then
			stop_qemu
			why=silent
			return 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

# stop_qemu: end the running qemu, if any; bounded by timeout's -k 5
stop_qemu() {
	[ -n "$qpid" ] || return 0
	kill -TERM "$qpid" 2>/dev/null
	wait "$qpid" 2>/dev/null
	qpid=
}

# timeout(1) puts qemu in its own process group, so a ^C or a TERM to this
# script would not reach it: stop it here, whatever ends the script.
trap 'stop_qemu; cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# qemu_error: qemu's own complaint (its first lines, joined), for the messages below
qemu_error() { grep -v 'warning:' "$WORK/qemu.out" | head -n 3 | paste -sd ' '; }

ACCEL=${RDD_VM_ACCEL:-}
t0=$(date +%s)
case $ACCEL in
'')
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		echo "booting $KERNEL (kvm, probing for ${KVM_PROBE} s; RDD_VM_ACCEL=tcg skips the probe) with scenarios: $SCENARIOS"
		if boot kvm "$KVM_PROBE"; then
			ACCEL=kvm
		else
			if [ "$why" = exited ]; then
				echo "vm: KVM present but qemu could not use it ($(qemu_error)); falling back to TCG"
			else
				echo "vm: KVM present but the guest printed nothing in $KVM_PROBE s; falling back to TCG"
			fi
			ACCEL=tcg
			t0=$(date +%s)
			boot tcg
		fi
	else
		ACCEL=tcg
		echo "booting $KERNEL (tcg: /dev/kvm not usable) with scenarios: $SCENARIOS"
		boot tcg
	fi
	;;
kvm)
	# forced: no fallback, and a guest that never speaks fails fast
	echo "booting $KERNEL (kvm, forced by RDD_VM_ACCEL) with scenarios: $SCENARIOS"
	if ! boot kvm "$KVM_PROBE"; then
		[ "$why" = exited ] && die "RDD_VM_ACCEL=kvm: qemu could not use KVM: $(qemu_error)"
		die "RDD_VM_ACCEL=kvm: the guest printed nothing in $KVM_PROBE s under KVM" \
			"(KVM present but not running this guest; unset RDD_VM_ACCEL to fall back to TCG," \
			"or raise RDD_VM_KVM_PROBE)"
	fi
	;;
*)
	echo "booting $KERNEL ($ACCEL, set by RDD_VM_ACCEL) with scenarios: $SCENARIOS"
	boot "$ACCEL"
	;;
esac
wait "$qpid"
qrc=$?
qpid=
t1=$(date +%s)
echo "guest ran $((t1 - t0)) s under $ACCEL, qemu exit $qrc"

if ! grep -q '^GUEST-DONE' "$CONSOLE" 2>/dev/null; then
	echo "---- guest console log ----"
	cat "$CONSOLE" 2>/dev/null
	echo "---- qemu output ----"
	cat "$WORK/qemu.out"
	echo "----"
	if [ "$qrc" = 124 ]; then die "guest did not finish within $VM_TIMEOUT s"; fi
	die "guest did not finish (qemu exit $qrc)"
fi
tr -d '\r' <"$CONSOLE" >"$WORK/console.txt"

# --- checks -------------------------------------------------------------
C=$WORK/console.txt

# get NAME[#N] ROLE KEY: KEY's value on the first "RESULT NAME role=ROLE"
# line (with #N: the one for the backend's Nth connection, conn=N)
get() {
	awk -v n="${1%%#*}" -v c="conn=${1#*#}" -v one="$1" -v r="role=$2" -v k="$3" '
		$1 == "RESULT" && $2 == n && $3 == r && (one == n || $4 == c) {
			for (i = 4; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
		}' "$C"
}
has() { grep -q "^RESULT $1 role=$2 " "$C"; }

# check DESCRIPTION ACTUAL OP EXPECTED   (OP: = != -gt -le ...)
check() {
	local what=$1 actual=$2 op=$3 expected=$4 ok=1
	case $op in
	=) [ "$actual" = "$expected" ] || ok=0 ;;
	!=) [ "$actual" != "$expected" ] || ok=0 ;;
	*) [ -n "$actual" ] && test "$actual" "$op" "$expected" 2>/dev/null || ok=0 ;;
	esac
	if [ $ok = 1 ]; then pass "$what"; else fail "$what (got '${actual}', want $op '$expected')"; fi
}

# check_relay DESC PEER BACKEND: the bytes each side sent are the bytes the
# other received, in count and checksum, and both saw a clean end.
check_relay() {
	local desc=$1 p=$2 b=$3
	check "$desc: peer connected" "$(get "$p" client connect)" = ok
	check "$desc: peer->backend bytes" "$(get "$b" backend recv)" = "$(get "$p" client sent)"
	check "$desc: peer->backend checksum" "$(get "$b" backend recv_sum)" = "$(get "$p" client sent_sum)"
	check "$desc: backend->peer bytes" "$(get "$p" client recv)" = "$(get "$b" backend sent)"
	check "$desc: backend->peer checksum" "$(get "$p" client recv_sum)" = "$(get "$b" backend sent_sum)"
	check "$desc: peer saw clean EOF" "$(get "$p" client end)" = eof
	check "$desc: backend saw clean EOF" "$(get "$b" backend end)" = eof
}

# conn_of BACKEND PEER: the backend's connection number (conn=N) that
# received what PEER sent (its recv_sum is PEER's sent_sum), for peers the
# backend may serve in any order; empty if none did.
conn_of() {
	local sum
	sum=$(get "$2" client sent_sum)
	[ -n "$sum" ] || return 0
	awk -v n="$1" -v s="recv_sum=$sum" '
		$1 == "RESULT" && $2 == n && $3 == "role=backend" {
			for (i = 4; i <= NF; i++) if ($i == s) { sub(/^conn=/, "", $4); print $4; exit }
		}' "$C"
}

# check_queued DESC PEER BACKEND DAEMON-LOG-NAME: PEER (a 4 KiB request,
# then the 256 KiB reply) was relayed intact, by the daemon whose log is
# DAEMON-LOG-NAME; it did not see EOF without its reply.
check_queued() {
	local desc=$1 p=$2 b=$3 d=$4 port
	check "$desc: got its whole 256 KiB reply, not EOF without one" "$(get "$p" client recv)" = 262144
	check_relay "$desc" "$p" "$b#$(conn_of "$b" "$p")"
	port=$(get "$p" client local_port)
	check "$desc: relayed by $d (its 'closed peer cid=1 port=$port: in=4096 out=262144' line)" \
		"$(dlog "$d" | grep -c "^<7>closed peer cid=1 port=$port: in=4096 out=262144 .* end=finished$")" = 1
}

# dlog NAME: the daemon log lines of one scenario, prefix removed
dlog() { sed -n "s/^DLOG $1 //p" "$C"; }

# daemon_ok NAME: started, and exited 0 on SIGTERM
check_daemon() {
	check "$1: daemon started and logged 'listening on'" "$(get "$1" daemon started)" = 1
	check "$1: daemon exited 0 on SIGTERM" "$(get "$1" daemon exit)" = 0
}

# check_cut NAME: the peer of a 64 MiB long_transfer that the daemon ended
# saw EOF, not a reset, after part of the reply
check_cut() {
	local recv
	check "$1: peer saw EOF, not a reset" "$(get "$1" client end)" = eof
	recv=$(get "$1" client recv)
	check "$1: peer got part of the 64 MiB reply, not all of it (${recv} bytes)" \
		"$(awk -v r="$recv" 'BEGIN { print (r != "" && r > 0 && r < 67108864) ? 1 : 0 }')" = 1
}

mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
size_bytes() {
	case $1 in
	*M) echo $((${1%M} * 1048576)) ;;
	*K) echo $((${1%K} * 1024)) ;;
	*) echo "$1" ;;
	esac
}

grep -q '^RESULT setup role=guest insmod=fail' "$C" &&
	fail "guest: loading vsock modules: $(grep '^RESULT setup' "$C" | tr '\n' ' ')"

for s in $(echo "$SCENARIOS" | tr , ' '); do
	case $s in
	kernel)
		check "kernel: listener in the guest sees peer CID 1 (VMADDR_CID_LOCAL)" \
			"$(get kernel-backend backend peer_cid)" = 1
		check "kernel: peer port seen by listener is the client's local port" \
			"$(get kernel-backend backend peer_port)" = "$(get kernel client local_port)"
		check_relay "kernel: vsock loopback without the daemon" kernel kernel-backend
		;;
	refuse)
		port=$(get refuse client local_port)
		check "refuse: CID-1 peer's connect completes" "$(get refuse client connect)" = ok
		check "refuse: CID-1 peer receives no data" "$(get refuse client recv)" = 0
		end=$(get refuse client end)
		case $end in eof | reset) pass "refuse: CID-1 peer sees the connection closed ($end)" ;;
		*) fail "refuse: CID-1 peer sees the connection closed (got end='$end')" ;; esac
		check "refuse: backend saw no connection" "$(get refuse-backend backend-summary accepted)" = 0
		if dlog refuse-daemon | grep -qxF "<4>refused peer cid=1 port=$port: not in allow-list"; then
			pass "refuse: daemon logged '<4>refused peer cid=1 port=$port: not in allow-list'"
		else
			fail "refuse: daemon logged '<4>refused peer cid=1 port=$port: not in allow-list'; its log:"
			dlog refuse-daemon | sed 's/^/    /'
		fi
		check_daemon refuse-daemon
		;;
	relay)
		check_relay "relay-a (--allow-cid 1, peer shuts write first)" relay-a relay-a-backend
		check "relay-a: 4 MiB reply" "$(get relay-a client recv)" = 4194304
		check "relay-a: peer shut write before any reply byte arrived" \
			"$(get relay-a client recv_at_shut)" = 0
		check "relay-a: backend saw the peer's EOF (it replies only after it)" \
			"$(get relay-a-backend backend recv_at_shut)" = 262144
		check_relay "relay-b (backend shuts write first)" relay-b relay-b-backend
		check "relay-b: backend shut write before any peer byte arrived" \
			"$(get relay-b-backend backend recv_at_shut)" = 0
		check "relay-b: peer sent its 1 MiB only after the reply's EOF" \
			"$(get relay-b client recv_at_shut)" = 2097152
		port=$(get relay-a client local_port)
		if dlog relay-daemon | grep -q "^<7>closed peer cid=1 port=$port: in=262144 out=4194304"; then
			pass "relay: daemon logged 'closed peer cid=1 port=$port: in=262144 out=4194304'"
		else
			fail "relay: daemon logged 'closed peer cid=1 port=$port: in=262144 out=4194304'; its log:"
			dlog relay-daemon | sed 's/^/    /'
		fi
		check_daemon relay-daemon
		;;
	drain)
		check "drain: transfer in flight when SIGTERM was sent" \
			"$(get drain daemon inflight_at_sigterm)" = 1
		check_relay "drain (16 MiB, SIGTERM mid-transfer)" drain drain-backend
		check "drain: all 16 MiB arrived" "$(get drain client recv)" = 16777216
		check "drain: daemon exited 0" "$(get drain daemon exit)" = 0
		secs=$(get drain daemon seconds_to_exit)
		check "drain: daemon exited within the 30 s drain window (${secs} s)" \
			"$(awk -v s="$secs" 'BEGIN { print (s != "" && s < 30) ? 1 : 0 }')" = 1
		late=$(get drain-late client connect)
		if [ "$late" = fail ]; then
			pass "drain: listener closed after SIGTERM (late peer's connect failed, errno $(get drain-late client errno))"
		elif [ "$late" = ok ] && [ "$(get drain-late client recv)" = 0 ]; then
			pass "drain: listener closed after SIGTERM (late peer got no data)"
		else
			fail "drain: listener closed after SIGTERM (late peer: connect='$late' recv='$(get drain-late client recv)')"
		fi
		;;
	cut)
		check "cut: daemon exited 0 when the 2 s drain window closed" "$(get cut daemon exit)" = 0
		secs=$(get cut daemon seconds_to_exit)
		check "cut: daemon exited after the drain window, not before and not much later (${secs} s)" \
			"$(awk -v s="$secs" 'BEGIN { print (s != "" && s >= 1.5 && s < 8) ? 1 : 0 }')" = 1
		check_cut cut
		;;
	term2)
		check "term2: still draining 1 s after the first SIGTERM (60 s window)" \
			"$(get term2 daemon draining_after_first)" = 1
		check "term2: daemon exited 0 on the second SIGTERM" "$(get term2 daemon exit)" = 0
		secs=$(get term2 daemon seconds_after_second)
		check "term2: daemon exited within 5 s of the second SIGTERM (${secs} s)" \
			"$(awk -v s="$secs" 'BEGIN { print (s != "" && s < 5) ? 1 : 0 }')" = 1
		check "term2: daemon logged 'second stop signal: ending 1 connection(s) now'" \
			"$(dlog term2-daemon | grep -c '^<6>second stop signal: ending 1 connection(s) now$')" = 1
		check_cut term2
		;;
	limit)
		check "limit: the first peer held the slot when the counters were taken" \
			"$(get limit daemon a_running)" = 1
		check "limit: the second peer was connected and waiting then" \
			"$(get limit daemon b_waiting)" = 1
		counters=$(dlog limit-daemon | grep -m1 '^<6>counters:')
		check "limit: the daemon had accepted one peer while the other waited ($counters)" \
			"$(echo "$counters" | grep -c ' active=1 served=1 ')" = 1
		check_relay "limit: first peer (held the slot)" limit-a "limit-backend#1"
		check_relay "limit: second peer (waited in the backlog, then relayed)" limit-b "limit-backend#2"
		check "limit: the backend served both, one after the other" \
			"$(get limit-backend backend-summary accepted)" = 2
		check_daemon limit-daemon
		;;
	backlog)
		check "backlog: daemon started and logged 'listening on'" "$(get backlog-daemon daemon started)" = 1
		check "backlog: the held peer was in flight at SIGTERM" "$(get backlog daemon held_at_sigterm)" = 1
		check "backlog: the three queued peers had sent their request and were waiting at SIGTERM" \
			"$(get backlog daemon waiting_at_sigterm)" = 3
		counters=$(dlog backlog-daemon | grep -m1 '^<6>counters:')
		check "backlog: only the held peer was accepted before SIGTERM ($counters)" \
			"$(echo "$counters" | grep -c ' active=1 served=1 ')" = 1
		check "backlog: daemon logged 'stopping: 3 connection(s) waiting to be accepted taken'" \
			"$(dlog backlog-daemon | grep -c '^<6>stopping: 3 connection(s) waiting to be accepted taken$')" = 1
		check_relay "backlog: held peer (drained)" backlog-held \
			"backlog-backend#$(conn_of backlog-backend backlog-held)"
		for q in 1 2 3; do
			check_queued "backlog: q$q (in the backlog at SIGTERM)" "backlog-q$q" backlog-backend backlog-daemon
		done
		check "backlog: the backend served all four" "$(get backlog-backend backend-summary accepted)" = 4
		check "backlog: daemon exited 0 on SIGTERM" "$(get backlog daemon exit)" = 0
		secs=$(get backlog daemon seconds_to_exit)
		check "backlog: daemon exited within its 20 s drain window (${secs} s)" \
			"$(awk -v s="$secs" 'BEGIN { print (s != "" && s < 20) ? 1 : 0 }')" = 1
		full=0
		for q in 1 2 3; do [ "$(get "backlog-q$q" client recv)" = 262144 ] && full=$((full + 1)); done
		echo "FIGURE backlog: $full of 3 peers waiting in the AF_VSOCK backlog at SIGTERM got their reply;" \
			"daemon exited ${secs} s after SIGTERM"
		;;
	handoff)
		keeper=$(grep -m1 '^RESULT handoff-keeper role=keeper ' "$C")
		check "handoff: the keeper ran two instances on its socket, both exited 0 ($keeper)" \
			"$(get handoff-keeper keeper children)/$(get handoff-keeper keeper child1_exit)/$(get handoff-keeper keeper child2_exit)" = 2/0/0
		# The keeper holds vsock:6681 bound: a daemon could listen there
		# only through the socket passed as fd 3.
		check "handoff: first instance listening on the passed socket" \
			"$(get handoff-daemon-1 daemon started)/$(dlog handoff-daemon-1 | grep -c '^<6>listening on vsock:6681')" = 1/1
		check "handoff: second instance listening on the passed socket" \
			"$(get handoff-daemon-2 daemon started)/$(dlog handoff-daemon-2 | grep -c '^<6>listening on vsock:6681')" = 1/1
		check "handoff: the held peer was in flight at the first SIGTERM" \
			"$(get handoff guest held_at_first_sigterm)" = 1
		check "handoff: q1 had sent its request and was waiting at the first SIGTERM" \
			"$(get handoff guest q1_waiting_at_first_sigterm)" = 1
		counters=$(dlog handoff-daemon-1 | grep -m1 '^<6>counters:')
		check "handoff: the first instance had accepted only the held peer ($counters)" \
			"$(echo "$counters" | grep -c ' active=1 served=1 ')" = 1
		check "handoff: first instance logged 'stopping: the listener stays open for the next instance'" \
			"$(dlog handoff-daemon-1 | grep -c '^<6>stopping: the listener stays open for the next instance$')" = 1
		check "handoff: first instance took nothing from the backlog at SIGTERM" \
			"$(dlog handoff-daemon-1 | grep -c 'waiting to be accepted')" = 0
		check "handoff: q2 connected while the first instance was draining" \
			"$(get handoff guest first_draining_at_q2)" = 1
		check "handoff: q1, q2 and q3 still waiting, none ended, when the second instance started" \
			"$(get handoff guest waiting_before_second)" = 3
		check_relay "handoff: held peer (drained by the first instance)" handoff-held \
			"handoff-backend#$(conn_of handoff-backend handoff-held)"
		port=$(get handoff-held client local_port)
		check "handoff: held peer relayed by the first instance" \
			"$(dlog handoff-daemon-1 | grep -c "^<7>closed peer cid=1 port=$port: .* end=finished$")" = 1
		check_queued "handoff: q1 (in the backlog at SIGTERM)" handoff-q1 handoff-backend handoff-daemon-2
		check_queued "handoff: q2 (connected during the drain)" handoff-q2 handoff-backend handoff-daemon-2
		check_queued "handoff: q3 (connected with no instance running)" handoff-q3 handoff-backend handoff-daemon-2
		check_queued "handoff: late (connected after the second start)" handoff-late handoff-backend handoff-daemon-2
		check "handoff: the backend served all five" "$(get handoff-backend backend-summary accepted)" = 5
		full=0
		waits=
		for q in q1 q2 q3 late; do
			[ "$(get "handoff-$q" client recv)" = 262144 ] && full=$((full + 1))
			waits="$waits $q=$(get "handoff-$q" client seconds)"
		done
		echo "FIGURE handoff: $full of 4 peers arriving around the restart got their reply;" \
			"first instance gone $(get handoff guest first_gone_after) s after its SIGTERM, the last peer ended" \
			"$(get handoff guest second_after_stop) s after it ($(get handoff guest late_relayed_after_second_start) s" \
			"after the second start); each peer's connect-to-reply time, s:$waits"
		;;
	budget)
		check "budget: daemon started as uid 65534 (no CAP_SYS_RESOURCE)" \
			"$(get budget-daemon daemon started)/$(get budget guest daemon_uid)" = 1/65534
		check_relay "budget: 16 MiB with the pipe budget intact" budget-a "budget-backend#1"
		check_relay "budget: 16 MiB with the pipe budget spent" budget-b "budget-backend#2"
		for c in a:splice b:rw; do
			port=$(get "budget-${c%%:*}" client local_port)
			check "budget: ${c%%:*}'s closed line says copy=${c#*:}" \
				"$(dlog budget-daemon | grep -c "^<7>closed peer cid=1 port=$port: .* copy=${c#*:} end=finished$")" = 1
		done
		echo "FIGURE budget: 16 MiB relayed in" \
			"$(dlog budget-daemon | sed -n 's/^<7>closed peer .* time=\([0-9.]*s\) copy=\([a-z]*\) .*/\1 (\2)/p' | paste -sd' ' | sed 's/) /), then /')"
		check_daemon budget-daemon
		;;
	default)
		check "default: daemon logged '<6>listening on vsock:6660'" \
			"$(dlog default-daemon | grep -cE '^<6>listening on vsock:6660(,|$)')" = 1
		check_relay "default (no --listen, peer dials CID 1 port 6660)" default default-backend
		check_daemon default-daemon
		;;
	throughput)
		want=$(size_bytes "$TP_SIZE")
		for way in down up; do
			[ "$way" = down ] && side=recv || side=sent
			for m in direct splice no-splice; do
				n=tp-$way-$m
				check_relay "throughput $way $m: $(mib "$want") MiB" "$n" "$n-backend"
				check "throughput $way $m: all bytes arrived" "$(get "$n" client "$side")" = "$want"
			done
			for m in splice no-splice; do
				n=tp-$way-$m
				copy=$(dlog "$n-daemon" | sed -n 's/^<7>closed peer .*copy=\([a-z]*\).*/\1/p' | head -n 1)
				echo "FIGURE throughput $way --$m: $(mib "$want") MiB in $(get "$n" client seconds) s =" \
					"$(get "$n" client mibps) MiB/s, carried by copy=${copy:-unknown}"
			done
			echo "FIGURE throughput $way, kernel vsock loopback without the daemon:" \
				"$(get "tp-$way-direct" client mibps) MiB/s"
		done
		;;
	*) fail "unknown scenario $s" ;;
	esac
done

if [ $failed -gt 0 ]; then
	echo "---- guest console ----"
	cat "$C"
	echo "----"
fi
summary
[ $failed -eq 0 ]
