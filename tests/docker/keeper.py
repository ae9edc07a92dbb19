#!/usr/bin/python3
"""Keep a listening unix socket across restarts of the daemon it is passed to.

Usage: keeper.py SOCKET LOGPREFIX -- COMMAND [ARGS...]

Does for rdd-guest what systemd's socket activation or descriptor store does,
without systemd: binds and listens on SOCKET itself, then runs COMMAND with
that socket as descriptor 3 and LISTEN_FDS=1, LISTEN_PID=<the child's pid>,
LISTEN_FDNAMES=listener. Instance N's stderr goes to LOGPREFIX.N.log.

  SIGUSR1   restart: SIGTERM to the running instance and, at once, a new
            instance on the same socket (the old one drains on its own,
            while connects wait in the socket's backlog for the new one)
  SIGTERM   SIGTERM to every instance, wait for them (bounded), exit

Prints one line per event on stdout (flushed), for the caller to wait on:
  started 1 pid P
  restart N: SIGTERM to pid P, started N+1 pid Q in X ms
  exited pid P (instance N) status S after X s
and, at the end, "keeper done". Exit status 0 when every instance that was
asked to stop exited 0, 1 otherwise.
"""

import os
import signal
import socket
import subprocess
import sys
import time

STOP_WAIT = 15.0        # bound on waiting for the instances at the end

# The child's pid is known only once it runs: bash sets it, then becomes the
# command (same pid), with the listener moved to descriptor 3.
WRAP = 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=listener exec "$@"'
MOVE = ' 3<&{fd} {fd}<&-'


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path, prefix, cmd = sys.argv[1], sys.argv[2], sys.argv[4:]

    if os.path.exists(path):
        os.unlink(path)
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(socket.SOMAXCONN)
    fd = lsock.fileno()

    pending = []
    signal.signal(signal.SIGUSR1, lambda *_: pending.append("restart"))
    signal.signal(signal.SIGTERM, lambda *_: pending.append("stop"))
    signal.signal(signal.SIGINT, lambda *_: pending.append("stop"))

    procs = {}          # pid -> (instance number, Popen, time stopped or None)
    count = 0
    bad = 0

    def say(line):
        print(line, flush=True)

    def start():
        nonlocal count
        count += 1
        with open(f"{prefix}.{count}.log", "wb") as log:
            wrap = WRAP if fd == 3 else WRAP + MOVE.format(fd=fd)
            p = subprocess.Popen(["/bin/bash", "-c", wrap, "bash"] + cmd,
                                 pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=log)
        procs[p.pid] = (count, p, None)
        return p

    def reap():
        nonlocal bad
        for pid, (n, p, stopped) in list(procs.items()):
            rc = p.poll()
            if rc is None:
                continue
            del procs[pid]
            after = f" after {time.monotonic() - stopped:.2f} s" if stopped else " (not asked to stop)"
            say(f"exited pid {pid} (instance {n}) status {rc}{after}")
            if rc != 0 or stopped is None:
                bad += 1

    def term(pid):
        n, p, _ = procs[pid]
        procs[pid] = (n, p, time.monotonic())
        p.send_signal(signal.SIGTERM)

    current = start()
    say(f"started 1 pid {current.pid}")
    while True:
        while pending:
            what = pending.pop(0)
            if what == "restart":
                t0 = time.monotonic()
                old = current.pid
                if old in procs:
                    term(old)
                current = start()
                say(f"restart {count - 1}: SIGTERM to pid {old}, started {count} pid {current.pid} "
                    f"in {(time.monotonic() - t0) * 1000:.1f} ms")
            else:
                for pid, (_, _, stopped) in list(procs.items()):
                    if stopped is None:
                        term(pid)
                end = time.monotonic() + STOP_WAIT
                while procs and time.monotonic() < end:
                    reap()
                    time.sleep(0.05)
                for pid, (n, p, _) in procs.items():
                    say(f"killed pid {pid} (instance {n}): still running after {STOP_WAIT:.0f} s")
                    p.kill()
                    p.wait()
                    bad += 1
                lsock.close()
                os.unlink(path)
                say("keeper done")
                return 0 if bad == 0 else 1
        reap()
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
