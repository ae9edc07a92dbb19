#!/usr/bin/env python3
"""Is the unit's LimitNOFILE= enough for --max-connections splicing
connections at once?

    nofile_check.py DAEMON UNIT [--nofile N] [--size BYTES]

Reads LimitNOFILE= and ExecStart='s --max-connections M from UNIT, starts
DAEMON under `prlimit --nofile=N:N` (N from the unit unless --nofile) with
--log-level debug and --splice, on a Unix listener in front of a Unix echo
backend (a child process of this script that echoes as it reads). Then M
clients each send BYTES (default 1 MiB) and read them back while every
connection stays open, so every direction of every connection moves bulk
data (which makes it splice through a pipe of its own) at the same time.

What it measures, with all M connections open and their bytes echoed:
the pipe descriptors the daemon holds at or above FD_SETSIZE (where the
relay keeps them; select() never sees them) and wants 4 per connection;
then, once the clients close, the daemon's debug line "closed peer ...
copy=splice" for each of the M connections. A direction that finds no
free descriptor below the limit stays with read/write: fewer pipes, and a
connection with neither direction spliced logs copy=rw. Prints one figure
line; exit 0 only when every connection held its four pipes and logged
copy=splice, and the daemon then exited 0 on SIGTERM.

Run as root (or with CAP_SYS_RESOURCE): the per-user pipe budget
(/proc/sys/fs/pipe-user-pages-soft) is a separate limit, not measured here.
"""
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

FD_SETSIZE = 1024
PIPES_PER_CONNECTION = 4  # a pipe (two descriptors) per direction


def unit_settings(path):
    limit = max_conn = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            m = re.fullmatch(r"LimitNOFILE=(\d+)", line)
            if m:
                limit = int(m.group(1))
            if line.startswith("ExecStart=/"):
                m = re.search(r"--max-connections[= ](\d+)", line)
                if m:
                    max_conn = int(m.group(1))
    if limit is None or max_conn is None:
        sys.exit(f"{path}: no LimitNOFILE=N or no --max-connections in ExecStart=")
    return limit, max_conn


def backend(path):
    """Echo each connection's bytes as they come, until killed."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1024)
    srv.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    pending = {}
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is srv:
                c, _ = srv.accept()
                c.setblocking(False)
                pending[c] = bytearray()
                sel.register(c, selectors.EVENT_READ)
                continue
            buf = pending[s]
            try:
                if buf:
                    n = s.send(buf)
                    del buf[:n]
                else:
                    data = s.recv(1 << 20)
                    if not data:
                        sel.unregister(s)
                        s.close()
                        del pending[s]
                        continue
                    buf += data
            except BlockingIOError:
                continue
            except OSError:
                sel.unregister(s)
                s.close()
                del pending[s]
                continue
            sel.modify(s, selectors.EVENT_WRITE if buf else selectors.EVENT_READ)


def descriptors(pid):
    """(pipes at or above FD_SETSIZE, every descriptor, the highest)."""
    high_pipes = total = top = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        total += 1
        top = max(top, fd)
        if fd >= FD_SETSIZE and target.startswith("pipe:"):
            high_pipes += 1
    return high_pipes, total, top


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def main():
    args = sys.argv[1:]
    if args and args[0] == "--backend":
        backend(args[1])
        return 0
    if len(args) < 2:
        sys.exit(__doc__)
    daemon, unit = args[0], args[1]
    opts = dict(zip(args[2::2], args[3::2]))
    limit, max_conn = unit_settings(unit)
    unit_limit = limit
    limit = int(opts.get("--nofile", limit))
    size = int(opts.get("--size", 1 << 20))

    tmp = tempfile.mkdtemp(prefix="rdd-nofile.")
    listen, back, log_path = (os.path.join(tmp, n) for n in ("rdd.sock", "backend.sock", "daemon.log"))
    echo = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--backend", back])
    log = open(log_path, "w+")
    proc = None
    try:
        if not wait_for(lambda: os.path.exists(back), 10):
            print("the echo backend did not start")
            return 1
        proc = subprocess.Popen(
            ["prlimit", f"--nofile={limit}:{limit}", daemon, "--listen", f"unix:{listen}",
             "--backend", back, "--max-connections", str(max_conn), "--splice",
             "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def log_text():
            with open(log_path) as f:
                return f.read()

        if not wait_for(lambda: "listening on" in log_text(), 10):
            print("the daemon did not start:", log_text()[-500:])
            return 1

        payload = os.urandom(size)
        sel = selectors.DefaultSelector()
        conns = []
        for _ in range(max_conn):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(listen)
            c.setblocking(False)
            state = {"sent": 0, "got": 0, "bad": False}
            conns.append((c, state))
            sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE, state)
        done = 0
        deadline = time.monotonic() + 120
        while done < max_conn and time.monotonic() < deadline:
            for key, events in sel.select(timeout=1):
                c, st = key.fileobj, key.data
                if events & selectors.EVENT_WRITE and st["sent"] < size:
                    try:
                        st["sent"] += c.send(payload[st["sent"]:st["sent"] + (256 << 10)])
                    except BlockingIOError:
                        pass
                    if st["sent"] == size:
                        sel.modify(c, selectors.EVENT_READ, st)
                if events & selectors.EVENT_READ:
                    try:
                        data = c.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    if not data:
                        st["bad"] = True
                        sel.unregister(c)
                        done += 1
                        continue
                    if data != payload[st["got"]:st["got"] + len(data)]:
                        st["bad"] = True
                    st["got"] += len(data)
                    if st["got"] == size:
                        sel.unregister(c)
                        done += 1
        echoed = sum(1 for _, st in conns if st["got"] == size and not st["bad"])

        # Every connection open, every byte back: the descriptors now.
        high_pipes, total, top = descriptors(proc.pid)

        for c, _ in conns:
            c.close()
        closed = re.compile(r"closed peer .* copy=(\w+)")
        wait_for(lambda: len(closed.findall(log_text())) >= max_conn, 30)
        modes = closed.findall(log_text())
        spliced = modes.count("splice")

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
        want = PIPES_PER_CONNECTION * max_conn
        print(f"LimitNOFILE={limit}{'' if limit == unit_limit else f' (unit: {unit_limit})'} "
              f"--max-connections {max_conn}: {echoed}/{max_conn} echoed {size} bytes; "
              f"at the peak {total} descriptors (highest {top}), "
              f"{high_pipes} pipe ends at or above {FD_SETSIZE} (want {want}); "
              f"closed: copy=splice {spliced}, copy=rw {modes.count('rw')} of {max_conn}; "
              f"daemon exit {rc}")
        ok = echoed == max_conn and high_pipes == want and spliced == max_conn and rc == 0
        for line in log_text().splitlines():
            if "copy=rw" in line:
                print("first read/write connection:", line)
                break
        return 0 if ok else 1
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        echo.kill()
        echo.wait()
        log.close()
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
