#!/usr/bin/python3
"""rdd-guest soak, stress and fault-injection suite (issue 6).

    stress.py BINARY TOOLS_DIR [SCENARIO...]      (tests/stress/run.sh builds
                                                 TOOLS_DIR and calls this)

Drives the real daemon (BINARY) against the real peers of TOOLS_DIR/stressor
(backend, load generator, hostile clients). Each scenario prints one line,
"ok   NAME: figures", "skip NAME: why" or "FAIL NAME: figures -- why", and
the last line is "N passed, N failed[, N skipped]".

Scenarios: soak (20 000 exchanges, leak check), soak-splice-aborts (splice
copy, every 5th client aborting, leak check), descriptor-exhaustion
(RLIMIT_NOFILE 32), enfile-like-pressure (accept4 failing with ENFILE,
ENOBUFS, ENOMEM by LD_PRELOAD injection), refused-peer-flood (uid 65534 on a
--allow-uid 0 listener, against the same flood at a twin daemon; -max:
uncapped),
stuck-reader (1 GiB to a client not reading),
mute-backend (backend connections never answered), backend-faults (replaced,
removed, killed, back), shutdown-under-load, shutdown-backlog (queued clients
relayed at SIGTERM), accept-eperm (accept4 failing EPERM/EINVAL backs off),
live-socket-theft (an unprobeable live socket is left alone), backend-eagain
(a backend's full backlog is waited out for about 1 s), fdsetsize-net
(descriptors forced above FD_SETSIZE), signal-storm,
bad-input (one check per malformed command line or environment),
valgrind-soak (memcheck under load), fuzz-options (libFuzzer).

Environment:
  RDD_STRESS_SCALE  multiplies connection counts and echo sizes (default 1;
                    the ASan build is fast enough for 1 here; lower it on a
                    slower machine)
  RDD_FUZZ_SECS     libFuzzer time budget (default 60)
  RDD_STRESS_KEEP   keep the temp directories (logs) of failed scenarios
"""

import errno
import hashlib
import os
import re
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BINARY = os.path.abspath(sys.argv[1])
TOOLS = os.path.abspath(sys.argv[2])
ONLY = sys.argv[3:]
STRESSOR = os.path.join(TOOLS, "stressor")
FAULTINJECT = os.path.join(TOOLS, "faultinject.so")
FUZZER = os.path.join(TOOLS, "fuzz_options")
HERE = os.path.dirname(os.path.abspath(__file__))

with open(BINARY, "rb") as f:
    SANITIZED = b"__asan_init" in f.read()
SCALE = float(os.environ.get("RDD_STRESS_SCALE", "1"))
FUZZ_SECS = int(os.environ.get("RDD_FUZZ_SECS", "60"))
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
# ASan's quarantine and shadow memory make RSS the sanitizer's, not the
# daemon's: memory bounds are asserted on the plain build only.
RSS_TOLERANCE_KIB = 1024
# An established connection under a condition keeps at least this share of
# its rate. Asserted on the plain build; under ASan the daemon's costs are
# the sanitizer's (every large pending buffer is an mmap'd, poisoned,
# quarantined allocation), so the ratios are printed, not asserted.
RATE_FLOOR = 0.8
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import procfs  # noqa: E402 - tests/lib, shared with the integration tests
MIB = 1 << 20

HDR = struct.Struct("<IBBHQQQ")
MODE_XCHG, MODE_ECHO, MODE_SOURCE, MODE_STALL = 1, 2, 3, 4


def header(mode, seed=0, req=0, rep=0, order=0, pace=0):
    return HDR.pack(0x53444452, mode, order, pace, seed, req, rep)


def scaled(n, minimum=1):
    return max(minimum, int(n * SCALE))


class Failed(Exception):
    pass


class Skipped(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def wait_for(pred, timeout, what, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise Failed(f"timed out after {timeout}s waiting for {what}")


def kv(line):
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def ints(d):
    out = {}
    for k, v in d.items():
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


class Proc:
    """A child whose stdout lines are read with a timeout."""

    def __init__(self, argv, **kw):
        self.p = subprocess.Popen(argv, stdin=kw.pop("stdin", subprocess.DEVNULL),
                                  stdout=subprocess.PIPE, bufsize=0, **kw)
        self.buf = b""

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"no output from {self.p.args[:2]} within {timeout}s")
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise Failed(f"{self.p.args[:2]} exited (status {self.p.poll()})")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
        return self.p.returncode


class Backend(Proc):
    def __init__(self, path, *extra):
        super().__init__([STRESSOR, "backend", path, *extra])
        line = self.readline(10)
        check("listening" in line, f"backend did not start: {line}")
        self.path = path

    def stats(self):
        self.p.send_signal(signal.SIGUSR1)
        line = self.readline(10)
        check(line.startswith("backend "), f"unexpected backend output {line}")
        return ints(kv(line))

    def wait_idle(self, timeout=10):
        """The stats once no connection is open here: a client can finish
        before the backend does (the client's EOF, or the close after it,
        is still on its way through the daemon)."""
        stats = {}

        def idle():
            stats.update(self.stats())
            return stats["active"] == 0
        wait_for(idle, timeout, "the backend's connections to end")
        return stats

    def close(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        out = b""
        try:
            out, _ = self.p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
        lines = (self.buf + out).decode().splitlines()
        finals = [line for line in lines if line.startswith("backend ")]
        return ints(kv(finals[-1])) if finals else {}


class Daemon:
    def __init__(self, workdir, args, env=None, preexec_fn=None, ready=True, pass_fds=(),
                 wrapper=(), ready_timeout=10):
        self.log_path = os.path.join(workdir, f"daemon-{time.monotonic_ns()}.log")
        self.log_file = open(self.log_path, "wb")
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                                 "WATCHDOG_USEC", "WATCHDOG_PID")}
        full_env.update(env or {})
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*wrapper, BINARY, *args], stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=self.log_file, env=full_env,
                                     preexec_fn=preexec_fn, pass_fds=pass_fds)
        self.pid = self.proc.pid
        if ready:
            wait_for(lambda: "listening on" in self.log() or self.proc.poll() is not None,
                     ready_timeout, "the daemon to listen")
            check(self.proc.poll() is None, f"daemon exited early: {self.log()[-500:]}")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def lines(self):
        return self.log().splitlines()

    def grep(self, text):
        return [line for line in self.lines() if text in line]

    def cpu(self):
        return procfs.cpu_seconds(self.pid)

    def rss_kib(self):
        return procfs.rss_kib(self.pid)

    def fds(self):
        return procfs.fd_count(self.pid)

    def alive(self):
        return self.proc.poll() is None

    def counters(self):
        """SIGUSR1, then the counters line it logs."""
        before = len(self.grep("counters:"))
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: len(self.grep("counters:")) > before, 10, "the counters line")
        return ints(kv(self.grep("counters:")[-1]))

    def wait_idle(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.counters()
            if c["active"] == 0:
                return c
            time.sleep(0.05)
        raise Failed("the daemon still has active connections")

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise Failed(f"daemon did not exit within {timeout}s of SIGTERM")
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log_file.close()

    def sanitizer_report(self):
        text = self.log()
        return any(r in text for r in SANITIZER_REPORTS)


def soak(path, run_timeout=300, **opts):
    argv = [STRESSOR, "soak", path]
    for k, v in opts.items():
        argv.append("--" + k.replace("_", "-"))
        if v is not True:
            argv.append(str(v))
    out = subprocess.run(argv, capture_output=True, timeout=run_timeout)
    line = out.stdout.decode().strip().splitlines()
    check(out.returncode == 0 and line, f"soak failed: {out.stderr.decode()[-500:]}")
    return ints(kv(line[-1]))


def soak_bg(path, **opts):
    argv = [STRESSOR, "soak", path]
    for k, v in opts.items():
        argv.append("--" + k.replace("_", "-"))
        if v is not True:
            argv.append(str(v))
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def soak_result(proc, timeout=300):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise Failed("the load generator did not finish")
    lines = out.decode().strip().splitlines()
    check(proc.returncode == 0 and lines, f"soak failed: {err.decode()[-500:]}")
    return ints(kv(lines[-1]))


class EchoRate:
    """One established connection to an echo; rate(bytes) in MB/s."""

    def __init__(self, path):
        self.p = Proc([STRESSOR, "echo-rate", path], stdin=subprocess.PIPE)
        check(self.p.readline(10) == "connected", "echo-rate did not connect")

    def rate(self, nbytes, timeout=60):
        self.p.p.stdin.write(f"{nbytes}\n".encode())
        self.p.p.stdin.flush()
        r = ints(kv(self.p.readline(timeout)))
        check(r["corrupt"] == 0, f"echo corrupted {r['corrupt']} bytes")
        return r["rate_mbps"]

    def best(self, nbytes, tries=5):
        return max(self.rate(nbytes) for _ in range(tries))

    def during(self, nbytes, before, rounds=5):
        """The best of up to `rounds` rounds of best(), taken while a
        condition holds, stopping once it reaches 80% of `before`: the
        machine is shared, and other tenants only ever lower a rate (CI
        saw 83% where quiet runs give 100%). A slowdown the daemon causes
        lasts as long as the condition, through every round."""
        rate = self.best(nbytes)
        for _ in range(rounds - 1):
            if rate >= RATE_FLOOR * before:
                break
            rate = max(rate, self.best(nbytes))
        return rate

    def close(self):
        try:
            self.p.p.stdin.write(b"q\n")
            self.p.p.stdin.flush()
            line = self.p.readline(15)
        finally:
            self.p.stop()
        check(line == "closed eof", f"echo connection ended with '{line}'")


UNASSERTED = []


def check_rate(ratio, what):
    if SANITIZED:
        UNASSERTED.append(what)
    else:
        check(ratio >= RATE_FLOOR, f"{what} below {RATE_FLOOR:.0%} of its baseline rate")


def bracketed(before, during, after):
    """The rate under a condition against the baselines taken before and
    after it: other tenants of the machine only ever lower a rate, and a
    slowdown that brackets the condition is the machine's, not the
    daemon's; one that the daemon causes shows against both."""
    return during / min(before, after)


def fmt_mb(n):
    if n < 10e6:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1e6:.0f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


# --------------------------------------------------------------- scenarios

class Scenario:
    def __init__(self, name):
        self.name = name
        self.workdir = tempfile.mkdtemp(prefix="rdd-st-", dir="/tmp")
        self.daemons = []
        self.backends = []
        self.procs = []
        self.closers = []  # in-process peers (threads, sockets): called at the end
        self.fig = ""

    def path(self, name):
        return os.path.join(self.workdir, name)

    def daemon(self, args, **kw):
        d = Daemon(self.workdir, args, **kw)
        self.daemons.append(d)
        return d

    def backend(self, name="b.sock", *extra):
        b = Backend(self.path(name), *extra)
        self.backends.append(b)
        return b

    def cleanup(self, failed):
        for close in self.closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        for b in self.backends:
            if b.p.poll() is None:
                b.p.kill()
                b.p.wait(5)
        reports = [d for d in self.daemons if d.sanitizer_report()]
        for d in self.daemons:
            d.close()
        if failed and os.environ.get("RDD_STRESS_KEEP"):
            print(f"     (logs kept in {self.workdir})")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return reports


def daemon_args(sc, *extra):
    return ["--listen", f"unix:{sc.path('l.sock')}", "--backend", sc.path("b.sock"), *extra]


def soak_leak_check(sc, n, copy, abort_every=0):
    """n request/reply exchanges at concurrency 64 with random sizes up to
    1 MiB, random chunking and random half-close order, every byte checked
    at both ends; no failure, no leak: RSS and descriptors after == after
    the warm-up. With abort_every, every Kth client closes abruptly at a
    random point: the error paths must not leak either."""
    b = sc.backend()
    d = sc.daemon(daemon_args(sc, copy))
    listen = sc.path("l.sock")
    warm = soak(listen, conns=1000, concurrency=64, seed=7, abort_every=abort_every)
    check(warm["ok"] + warm["aborted"] == 1000 and warm["failed"] == 0, f"warm-up: {warm}")

    def settle():
        # One lone exchange, so that the spare backend socket the daemon
        # makes before accept() is there at both measurements (a round that
        # ends at its 16-accept budget leaves none).
        check(soak(listen, conns=1, concurrency=1, seed=8)["ok"] == 1, "settling exchange")
        return d.wait_idle()

    settle()
    rss0, fds0, cpu0 = d.rss_kib(), d.fds(), d.cpu()
    r = soak(listen, conns=n, concurrency=64, seed=1, run_timeout=600, abort_every=abort_every)
    c = settle()
    rss1, fds1, cpu1 = d.rss_kib(), d.fds(), d.cpu()
    bs = b.wait_idle()
    total = r["bytes_up"] + r["bytes_down"]
    sc.fig = (f"{r['ok']}/{n} exchanges ok"
              + (f" + {r['aborted']} aborted by their client" if abort_every else "")
              + f" at concurrency 64 ({copy[2:]}) in {r['secs']:.1f} s "
              f"({n / r['secs']:.0f} conn/s, {fmt_mb(total)}, {total / r['secs'] / 1e6:.0f} MB/s), "
              f"corrupt bytes client {r['corrupt_bytes']} backend {bs['corrupt_bytes']}; "
              f"daemon RSS {rss0}->{rss1} KiB, fds {fds0}->{fds1}, CPU {cpu1 - cpu0:.1f} s")
    check(r["ok"] + r["aborted"] == n and r["failed"] == 0, f"{r['failed']} failed: {r}")
    check(r["corrupt_bytes"] == 0 and bs["corrupt_bytes"] == 0, "corrupted bytes")
    check(bs["ok"] + bs["aborted"] == n + 1002 and bs["short"] == 0 and bs["errors"] == 0
          and bs["overrun"] == 0, f"backend saw {bs}")
    check(c["served"] == n + 1002, f"daemon counters {c}")
    if not abort_every:
        check(c["failed"] == 0, f"daemon counters {c}")
        check(c["bytes_in"] >= r["bytes_up"] + warm["bytes_up"] + 32 * (n + 1000),
              f"daemon counted {c['bytes_in']} bytes in")
    check(fds1 == fds0, f"descriptors {fds0} -> {fds1}")
    if not SANITIZED:
        check(rss1 - rss0 <= RSS_TOLERANCE_KIB, f"RSS grew {rss1 - rss0} KiB")
    rc = d.stop()
    check(rc == 0, f"exit status {rc}")
    return sc.fig + (f" (RSS tolerance {RSS_TOLERANCE_KIB} KiB)" if not SANITIZED else
                     " (RSS not asserted under ASan)")


def s_soak(sc):
    return soak_leak_check(sc, scaled(20000, 500), "--no-splice")


def s_soak_splice_aborts(sc):
    return soak_leak_check(sc, scaled(10000, 500), "--splice", abort_every=5)


VALGRIND_ERROR = 99


def s_valgrind_soak(sc):
    """The daemon under valgrind's memcheck through exchanges with aborting
    clients in both copy modes: no error, no definite or indirect leak."""
    if SANITIZED:
        raise Skipped("ASan and valgrind do not mix (the plain build's run covers it)")
    check(shutil.which("valgrind"), "valgrind not installed")
    b = sc.backend()
    listen = sc.path("l.sock")
    figs = []
    for copy in ("--splice", "--no-splice"):
        d = sc.daemon(daemon_args(sc, copy), ready_timeout=60,
                      wrapper=["valgrind", "-q", f"--error-exitcode={VALGRIND_ERROR}",
                               "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                               "--show-leak-kinds=definite,indirect", "--track-fds=no"])
        n = scaled(1500, 300)
        r = soak(listen, conns=n, concurrency=32, seed=71, abort_every=4, timeout=60,
                 run_timeout=300)
        c = d.counters()
        rc = d.stop(60)
        figs.append(f"{copy[2:]}: {r['ok']} ok + {r['aborted']} aborted in {r['secs']:.1f} s, "
                    f"exit {rc}")
        sc.fig = "memcheck, " + "; ".join(figs)
        check(r["ok"] + r["aborted"] == n and r["failed"] == 0 and r["corrupt_bytes"] == 0,
              f"{copy}: {r}")
        check(c["served"] == n, f"{copy}: counters {c}")
        check(rc == 0, f"{copy}: exit status {rc}" +
              (" (valgrind errors or leaks):\n" + d.log()[-3000:] if rc == VALGRIND_ERROR else ""))
    check(b.stats()["corrupt_bytes"] == 0, "backend saw corrupted bytes")
    return sc.fig


def hold_connections(path, count):
    """Connections to the daemon that sit idle (the backend echoes)."""
    held = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            break
        s.setblocking(True)
        s.settimeout(10)
        s.sendall(header(MODE_ECHO, seed=5))
        held.append(s)
    return held


def s_exhaustion(sc):
    """RLIMIT_NOFILE 32: accepts fail with EMFILE while 100 clients wait.
    The daemon idles, logs a bounded number of lines, an established
    connection keeps its speed, and all 100 are served once fds free."""
    b = sc.backend()
    limit = 32

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    d = sc.daemon(daemon_args(sc), preexec_fn=low)
    listen = sc.path("l.sock")
    echo = EchoRate(listen)
    size = scaled(128 * MIB, 32 * MIB)
    before = echo.best(size)
    held = hold_connections(listen, 20)
    wait_for(lambda: d.grep("accept paused"), 10, "accept to fail (EMFILE)")
    check("Too many open files" in d.grep("accept paused")[0], d.grep("accept paused")[0])
    clients = soak_bg(listen, conns=100, concurrency=100, max_size=65536, timeout=120,
                      deadline=120, seed=3)
    sc.procs.append(clients)
    time.sleep(0.5)  # all 100 connected, in the daemon's backlog
    lines0, cpu0, t0 = len(d.lines()), d.cpu(), time.monotonic()
    time.sleep(3)
    cpu = (d.cpu() - cpu0) / (time.monotonic() - t0)
    growth = len(d.lines()) - lines0
    during = echo.during(size, before)
    check(clients.poll() is None, "the clients finished while descriptors were exhausted?")
    released = time.monotonic()
    for s in held:
        s.close()
    r = soak_result(clients, 150)
    served_in = time.monotonic() - released
    after = echo.best(size)
    echo.close()
    bs = b.stats()
    ratio = bracketed(before, during, after)
    sc.fig = fig = (f"NOFILE {limit}, {len(held)} held + 100 clients waiting: daemon CPU "
           f"{cpu * 100:.1f}% of a core over 3 s, log +{growth} lines, established echo "
           f"{before:.0f}/{during:.0f}/{after:.0f} MB/s before/during/after ({ratio * 100:.0f}%), "
           f"{r['ok']}/100 served {served_in:.1f} s after release")
    check(cpu < 0.05, "CPU over 5% of a core")
    check(growth <= 6, "log grew by more than 6 lines in 3 s")
    check_rate(ratio, "established connection")
    check(r["ok"] == 100 and r["corrupt_bytes"] == 0, f"clients: {r}")
    check(bs["corrupt_bytes"] == 0, "backend saw corrupted bytes")
    check(d.stop() == 0, "exit status")
    return fig


def s_enfile(sc):
    """ENFILE-like pressure: accept4() fails with ENFILE, ENOBUFS, ENOMEM
    (LD_PRELOAD shim) while 30 clients wait: same bounds as EMFILE."""
    check(os.path.exists(FAULTINJECT), "faultinject.so not built")
    b = sc.backend()
    fault, count = sc.path("fault"), sc.path("count")
    env = {"LD_PRELOAD": FAULTINJECT, "RDD_FAULT_FILE": fault, "RDD_FAULT_COUNT": count,
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    d = sc.daemon(daemon_args(sc), env=env)
    listen = sc.path("l.sock")
    echo = EchoRate(listen)
    size = scaled(128 * MIB, 32 * MIB)
    figs = []
    for err in ("ENFILE", "ENOBUFS", "ENOMEM"):
        before = echo.best(size)
        if os.path.exists(count):
            os.unlink(count)
        with open(fault, "w") as f:
            f.write(err)
        clients = soak_bg(listen, conns=30, concurrency=30, max_size=65536, timeout=60,
                          deadline=90, seed=11)
        sc.procs.append(clients)
        wait_for(lambda: os.path.exists(count), 10, f"an injected {err}")
        time.sleep(0.3)
        lines0, cpu0, t0 = len(d.lines()), d.cpu(), time.monotonic()
        time.sleep(2)
        cpu = (d.cpu() - cpu0) / (time.monotonic() - t0)
        growth = len(d.lines()) - lines0
        during = echo.during(size, before)
        attempts = int(open(count).read())
        os.unlink(fault)
        r = soak_result(clients, 90)
        after = echo.best(size)
        ratio = bracketed(before, during, after)
        figs.append(f"{err}: {attempts} failed accepts, {cpu * 100:.1f}% CPU, +{growth} lines, "
                    f"echo {before:.0f}/{during:.0f}/{after:.0f} MB/s ({ratio * 100:.0f}%), "
                    f"{r['ok']}/30 served")
        sc.fig = "accept4 failing by injection (LD_PRELOAD): " + "; ".join(figs)
        check(r["ok"] == 30 and r["corrupt_bytes"] == 0, f"{err}: clients {r}")
        check(any(os.strerror(getattr(errno, err)) in line for line in d.grep("accept paused")),
              f"no 'accept paused' line for {err}")
        check(cpu < 0.05, f"{err}: CPU over 5% of a core")
        check(growth <= 5, f"{err}: log grew by more than 5 lines in 2 s")
        check_rate(ratio, f"{err}: established connection")
    echo.close()
    check(b.stats()["corrupt_bytes"] == 0, "backend saw corrupted bytes")
    check(d.stop() == 0, "exit status")
    return sc.fig


FLOOD_RATE = 10000
MAX_FLOOD_FLOOR = 0.25


def start_flood(sc, target, rate):
    flood = Proc([STRESSOR, "flood", target, "--secs", "30", "--concurrency", "16",
                  "--rate", str(rate), "--uid", "65534"])
    sc.procs.append(flood.p)
    flood.started = time.monotonic()
    time.sleep(0.5)
    return flood


def end_flood(flood, min_secs=0):
    time.sleep(max(0.0, flood.started + min_secs - time.monotonic()))
    flood.p.send_signal(signal.SIGTERM)
    f = ints(kv(flood.readline(10)))
    flood.p.wait(5)
    check(f["uid"] == 65534, "the flood did not run as uid 65534")
    check(f["served"] == 0, f"{f['served']} refused peers got bytes back")
    return f


def flood_setup(sc):
    """The backend, the daemon under test (--allow-uid 0 on l.sock), its
    twin, and the allowed client's echo connection to the daemon. The twin
    is a second daemon of the same build and policy on twin.sock, in front
    of the same backend: a flood aimed at it costs the machine what a flood
    costs (the flooder's own CPU on two shared cores) and costs the daemon
    under test nothing, so the allowed client's rate beside it is the
    control that separates the two."""
    os.chmod(sc.workdir, 0o711)  # uid 65534 reaches the socket files...
    b = sc.backend()
    # ...and may connect to them (the daemons' umask is 0): the policy, not
    # the file mode, must refuse it.
    d = sc.daemon(daemon_args(sc, "--allow-uid", "0"), preexec_fn=lambda: os.umask(0))
    twin = sc.daemon(["--listen", f"unix:{sc.path('twin.sock')}", "--backend", sc.path("b.sock"),
                      "--allow-uid", "0"], preexec_fn=lambda: os.umask(0))
    return b, d, twin, EchoRate(sc.path("l.sock"))


# Up to five alternations: on this 2-core machine one round of either the
# old or the new daemon measured 71-79% of its control where quiet rounds
# give 87-118% (paired runs, same machine, minutes apart).
FLOOD_ROUNDS = 5


def flood_rounds(sc, d, echo, size, rate, min_secs=0):
    """The allowed client's best rate beside a flood at the twin daemon
    (the control: what the flood costs the machine) and beside the same
    flood at d, the two alternating up to FLOOD_ROUNDS times each so that a
    neighbour's burst lands on both alike, until the second reaches
    RATE_FLOOR of the first. Also the totals of the floods at d and at the
    twin (refused connects, seconds) and d's CPU use during its floods
    (share of a core)."""
    r = {"control": 0.0, "loaded": 0.0, "refused": 0, "secs": 0.0, "twin_refused": 0,
         "twin_secs": 0.0}
    cpu = cpu_secs = 0.0
    for _ in range(FLOOD_ROUNDS):
        for target in ("twin", "self"):
            flood = start_flood(sc, sc.path("twin.sock" if target == "twin" else "l.sock"), rate)
            cpu0, t0 = d.cpu(), time.monotonic()
            rate_now = echo.best(size)
            f = end_flood(flood, min_secs if target == "self" else 0)
            secs = time.monotonic() - flood.started
            if target == "twin":
                r["control"] = max(r["control"], rate_now)
                r["twin_refused"] += f["refused"]
                r["twin_secs"] += secs
            else:
                r["loaded"] = max(r["loaded"], rate_now)
                cpu += d.cpu() - cpu0
                cpu_secs += time.monotonic() - t0
                r["refused"] += f["refused"]
                r["secs"] += secs
        if r["loaded"] >= RATE_FLOOR * r["control"]:
            break
    r["cpu"] = cpu / cpu_secs
    return r


def flood_run(sc, rate, min_secs=0):
    """A whole flood measurement: flood_setup, the allowed client's rate
    unflooded, flood_rounds, its rate after, and what the daemon's log and
    the backend saw. Returns the daemon, its twin and flood_rounds' figures
    plus "unflooded", "after", "growth" (log lines) and "backend" (stats)."""
    b, d, twin, echo = flood_setup(sc)
    size = scaled(128 * MIB, 32 * MIB)
    unflooded = echo.best(size)
    lines0 = len(d.lines())
    r = flood_rounds(sc, d, echo, size, rate, min_secs)
    r["growth"] = len(d.lines()) - lines0
    r["unflooded"] = unflooded
    r["after"] = echo.best(size)
    echo.close()
    r["backend"] = b.stats()
    return d, twin, r


def s_refused_flood(sc):
    """Thousands of connects from uid 65534 on a --allow-uid 0 listener
    (FLOOD_RATE a second) while an allowed client transfers: >= 80% of its
    rate with the same flood aimed at a twin daemon instead (the flooder's
    own share of the two cores taken out; the rate without any flood is
    printed beside it), log bounded, no refused byte reaches the backend."""
    d, twin, r = flood_run(sc, FLOOD_RATE, min_secs=5)
    unloaded, after, growth, bs = r["unflooded"], r["after"], r["growth"], r["backend"]
    refused_lines = d.grep("refused peer uid=65534")
    c = d.counters()
    ratio = r["loaded"] / r["control"]
    sc.fig = (f"{r['refused']} refused connects from uid 65534 in {r['secs']:.1f} s "
              f"(capped at {FLOOD_RATE}/s), allowed echo {unloaded:.0f} MB/s unflooded, "
              f"{r['control']:.0f} with the flood at a twin, {r['loaded']:.0f} with it at this "
              f"daemon ({ratio * 100:.0f}% of the control, "
              f"{r['loaded'] / unloaded * 100:.0f}% of unflooded, daemon CPU {r['cpu'] * 100:.0f}%), "
              f"{after:.0f} after; log +{growth} lines, daemon refused={c['refused']}, "
              f"backend saw {bs['accepted']} connection(s)")
    check(r["refused"] >= 20000, "fewer than 20 000 refused connects")
    check(bs["accepted"] == 1, "a refused peer reached the backend")
    check(c["refused"] >= r["refused"], "daemon counted fewer refusals than the flood saw")
    check_rate(ratio, "allowed throughput")
    check(growth <= r["secs"] + 3 and len(refused_lines) <= r["secs"] + 2, "log not bounded")
    check(d.stop() == 0 and twin.stop() == 0, "exit status")
    return sc.fig


def s_refused_flood_max(sc):
    """The flood as fast as the flooder goes. On two cores the flooder
    alone takes a core, so the control is the same flood aimed at a twin
    daemon (same build, same policy) while the allowed client keeps using
    the first: what the flood costs the machine. Aimed at the daemon that
    relays, the rest is the daemon's own share: its one thread spends up to
    16 accepts on refused peers per round of relaying. The figure is
    printed; what is asserted is no starvation (MAX_FLOOD_FLOOR of the
    control), because on two shared cores it varies from run to run
    (39-87% seen at the same build): the 80% criterion is asserted by
    refused-peer-flood, at FLOOD_RATE."""
    d, twin, r = flood_run(sc, 0)
    before, after, growth, bs = r["unflooded"], r["after"], r["growth"], r["backend"]
    ratio = r["loaded"] / r["control"]
    sc.fig = (f"uncapped flood, {r['twin_refused'] / r['twin_secs']:.0f} refused/s at a twin "
              f"daemon vs {r['refused'] / r['secs']:.0f}/s at the relaying one: allowed echo "
              f"{before:.0f} MB/s unflooded, {r['control']:.0f} twin flooded (the machine's "
              f"share), {r['loaded']:.0f} flooded itself ({ratio * 100:.0f}% of the control, "
              f"daemon CPU {r['cpu'] * 100:.0f}%), {after:.0f} after; log +{growth} lines")
    check(bs["accepted"] == 1, "a refused peer reached the backend")
    check(growth <= r["secs"] + 3, "log not bounded")
    if not SANITIZED:
        check(ratio >= MAX_FLOOD_FLOOR, f"the allowed connection starved: below "
              f"{MAX_FLOOD_FLOOR:.0%} of the control")
    else:
        UNASSERTED.append("ratio")
    check(d.stop() == 0 and twin.stop() == 0, "exit status")
    return sc.fig


def s_stuck_reader(sc):
    """A client that does not read while the backend streams 1 GiB: the
    daemon's memory stays bounded and another connection keeps its speed;
    then the client reads all of it, intact."""
    b = sc.backend()
    d = sc.daemon(daemon_args(sc))
    listen = sc.path("l.sock")
    echo = EchoRate(listen)
    size = scaled(128 * MIB, 32 * MIB)
    before = echo.best(size)
    total = 1 << 30
    rss0 = d.rss_kib()
    out0 = b.stats()["bytes_out"]
    stuck = Proc([STRESSOR, "stuck", listen, str(total)], stdin=subprocess.PIPE)
    sc.procs.append(stuck.p)
    check(stuck.readline(10) == "connected", "stuck client did not connect")
    peak = rss0
    t_end = time.monotonic() + 2
    while time.monotonic() < t_end:
        peak = max(peak, d.rss_kib())
        time.sleep(0.05)
    held = b.stats()["bytes_out"] - out0
    during = echo.during(size, before)
    peak = max(peak, d.rss_kib())
    stuck.p.stdin.write(b"go\n")
    stuck.p.stdin.flush()
    r = ints(kv(stuck.readline(120)))
    after = echo.best(size)
    echo.close()
    ratio = bracketed(before, during, after)
    sc.fig = fig = (f"1 GiB to a client that stopped reading: {fmt_mb(held)} left the backend while "
           f"stuck, daemon RSS {rss0}->{peak} KiB peak, other connection "
           f"{before:.0f}/{during:.0f}/{after:.0f} MB/s before/during/after ({ratio * 100:.0f}%); then read {fmt_mb(r['got'])} intact at "
           f"{r['rate_mbps']:.0f} MB/s")
    check(r["got"] == total and r["corrupt"] == 0 and r["end"] == "eof", f"stuck client: {r}")
    if not SANITIZED:
        check(peak - rss0 <= 4096, "RSS grew more than 4 MiB")
    check(held < 64 * MIB, "the backend could push far more than socket buffers hold")
    check_rate(ratio, "other connection")
    check(d.stop() == 0, "exit status")
    return fig


def s_mute_backend(sc):
    """Backend connections that are accepted and never answered (16 of them,
    their clients pushing data): other connections are unaffected."""
    b = sc.backend()
    d = sc.daemon(daemon_args(sc))
    listen = sc.path("l.sock")
    echo = EchoRate(listen)
    size = scaled(128 * MIB, 32 * MIB)
    before = echo.best(size)
    n = scaled(2000, 300)
    clean = soak(listen, conns=n, concurrency=32, seed=21)
    rss0 = d.rss_kib()
    mute = []
    pushed = 0
    for i in range(16):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(listen)
        s.sendall(header(MODE_STALL, seed=i))
        s.setblocking(False)
        chunk = b"m" * 65536
        for _ in range(256):  # up to 16 MiB each, until the buffers fill
            try:
                pushed += s.send(chunk)
            except BlockingIOError:
                break
        mute.append(s)
    wait_for(lambda: b.stats()["stall"] == 16, 10, "16 stalled backend connections")
    loaded = soak(listen, conns=n, concurrency=32, seed=22)
    during = echo.during(size, before)
    rss1 = d.rss_kib()
    b.p.send_signal(signal.SIGUSR2)  # the backend closes them at last
    for s in mute:
        s.close()
    wait_for(lambda: b.stats()["active"] == 1, 10, "the mute connections to close")
    after = echo.best(size)
    clean2 = soak(listen, conns=n, concurrency=32, seed=23)
    echo.close()
    bs = b.stats()
    ratio = bracketed(before, during, after)
    speed = loaded["secs"] / max(clean["secs"], clean2["secs"])
    sc.fig = fig = (f"16 mute backend connections holding {fmt_mb(pushed)} of client data: "
           f"{loaded['ok']}/{n} exchanges ok in {loaded['secs']:.2f} s vs {clean['secs']:.2f}/"
           f"{clean2['secs']:.2f} s before/after, echo {before:.0f}/{during:.0f}/{after:.0f} MB/s "
           f"({ratio * 100:.0f}%), "
           f"daemon RSS {rss0}->{rss1} KiB")
    check(loaded["ok"] == n and loaded["corrupt_bytes"] == 0, f"exchanges {loaded}")
    check(clean["ok"] == n and clean2["ok"] == n, f"exchanges {clean} {clean2}")
    check(bs["corrupt_bytes"] == 0 and bs["errors"] == 0, f"backend {bs}")
    check_rate(ratio, "echo")
    if not SANITIZED:
        check(speed <= 2, "exchanges took twice as long")
    if not SANITIZED:
        check(rss1 - rss0 <= 16 * 128 + RSS_TOLERANCE_KIB,
              "RSS grew by more than one read buffer per mute connection")
    check(d.stop() == 0, "exit status")
    return fig


def s_backend_faults(sc):
    """The backend is replaced, removed, killed mid-transfer and brought
    back: failures end promptly, later connections succeed, the daemon
    stays up."""
    bpath = sc.path("b.sock")
    a = sc.backend()
    d = sc.daemon(daemon_args(sc))
    listen = sc.path("l.sock")
    n = scaled(1000, 200)
    r1 = soak(listen, conns=n, concurrency=32, seed=31)
    check(r1["ok"] == n, f"phase 1: {r1}")
    # Replaced by a new listener mid-run, atomically (rename over the old
    # socket file): in-flight exchanges stay with the old process, new ones
    # reach the new one, none fails.
    bg = soak_bg(listen, secs=2, concurrency=32, seed=32, pace_every=10, pace_ms=10,
                 max_size=256 * 1024)
    sc.procs.append(bg)
    time.sleep(0.7)
    bb = sc.backend("b2.sock")
    os.rename(sc.path("b2.sock"), bpath)
    r2 = soak_result(bg)
    sa, sb = a.close(), bb.stats()
    check(bg.returncode == 0 and r2["ok"] == r2["conns"] and r2["corrupt_bytes"] == 0,
          f"replaced: {r2}")
    check(sa["ok"] > n and sb["ok"] > 0 and sa["corrupt_bytes"] + sb["corrupt_bytes"] == 0,
          f"replaced: old {sa} new {sb}")
    # Removed (the process still runs).
    os.unlink(bpath)
    m = scaled(300, 100)
    r3 = soak(listen, conns=m, concurrency=16, seed=33, min_size=1, timeout=10, run_timeout=60)
    check(r3["ok"] == 0 and r3["timeout"] == 0, f"removed: {r3}")
    check(r3["max_fail_stall_ms"] < 1000, f"removed: a failure took {r3['max_fail_stall_ms']} ms")
    bb.close()
    # Killed mid-transfer.
    c = sc.backend()
    bg = soak_bg(listen, conns=n, concurrency=32, seed=34, pace_every=4, pace_ms=5, timeout=20)
    sc.procs.append(bg)
    time.sleep(0.5)
    c.p.kill()
    c.p.wait(5)
    r4 = soak_result(bg)
    check(r4["timeout"] == 0 and r4["corrupt_bytes"] == 0 and r4["long"] == 0, f"killed: {r4}")
    check(r4["ok"] > 0 and r4["failed"] > 0, f"killed: expected some of each: {r4}")
    check(r4["max_fail_stall_ms"] < 1000, f"killed: a failure took {r4['max_fail_stall_ms']} ms")
    # Back.
    os.unlink(bpath)
    e = sc.backend()
    r5 = soak(listen, conns=n, concurrency=32, seed=35)
    se = e.stats()
    check(r5["ok"] == n and se["ok"] == n and se["corrupt_bytes"] == 0, f"back: {r5} {se}")
    check(d.alive(), "the daemon exited")
    dial = d.grep("cannot reach the backend")
    cnt = d.counters()
    sc.fig = fig = (f"replaced mid-run {r2['ok']}/{r2['conns']} ok (old backend finished {sa['ok'] - n}, new took {sb['ok']}); removed "
           f"{m}/{m} failed, slowest noticed in {r3['max_fail_stall_ms']:.0f} ms; killed "
           f"mid-transfer {r4['ok']} ok + {r4['failed']} failed ({r4['short']} EOF, "
           f"{r4['reset']} reset, {r4['epipe']} EPIPE, {r4['connect_fail']} connect), slowest "
           f"noticed in {r4['max_fail_stall_ms']:.0f} ms; back {r5['ok']}/{n} ok; daemon up, "
           f"failed={cnt['failed']}, {len(dial)} dial-failure log lines")
    check(len(dial) <= 10, "dial failures not rate-limited")
    check(d.stop() == 0, "exit status")
    return fig


def s_shutdown(sc):
    """SIGTERM during the soak: transfers that finish in the drain window are
    intact, the rest end with EOF, exit 0 within drain + 1 s, and a restart
    serves at once."""
    drain = 2
    b = sc.backend()
    d = sc.daemon(daemon_args(sc, "--drain-timeout", str(drain)))
    listen = sc.path("l.sock")
    bg = soak_bg(listen, secs=30, concurrency=64, seed=41, pace_every=8, pace_ms=20,
                 stop_on_connect_fail=True, timeout=15)
    sc.procs.append(bg)
    time.sleep(2)
    active = d.counters()["active"]
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(drain + 5)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    r = soak_result(bg, 60)
    # Restart at once: the first exchange is served.
    t1 = time.monotonic()
    d2 = sc.daemon(daemon_args(sc, "--drain-timeout", str(drain)))
    first = soak(listen, conns=1, concurrency=1, seed=42)
    restart = time.monotonic() - t1
    bs = b.stats()
    sc.fig = fig = (f"SIGTERM with {active} in flight (drain {drain} s): exit {rc} after {took:.2f} s; "
           f"{r['ok']} finished intact, {r['short']} cut with EOF, {r['reset']} reset, "
           f"{r['epipe']} EPIPE, {r['timeout']} hung, {r['corrupt_bytes']} corrupt bytes "
           f"(backend: {bs['corrupt_bytes']} corrupt, {bs['short']} requests cut short, "
           f"{bs['errors']} errors); restart served in {restart * 1000:.0f} ms")
    check(rc == 0, f"exit status {rc}")
    check(took <= drain + 1, "exit later than drain + 1 s")
    check(r["corrupt_bytes"] == 0 and bs["corrupt_bytes"] == 0 and r["long"] == 0, "corruption")
    check(r["reset"] == 0 and r["other"] == 0, "a connection was reset instead of ended with EOF")
    check(r["timeout"] == 0, "a connection hung")
    check(r["ok"] > 0 and r["short"] > 0, "expected both finished and cut transfers")
    check(first["ok"] == 1, f"restart did not serve: {first}")
    check(restart < 1.5, "restart took too long")
    check(d2.stop() == 0, "restarted daemon exit status")
    return fig


REPLY_BODY = 256 * 1024


def answer_for(request):
    """The whole reply an AnsweringBackend gives to `request`: a status
    line, the request's SHA-256, and REPLY_BODY bytes derived from it, so
    a client knows every byte to expect and the backend proves it got the
    request whole."""
    digest = hashlib.sha256(request).digest()
    body = digest * (REPLY_BODY // len(digest))
    return (b"HTTP/1.1 200 OK\r\nX-Request-Sha256: %s\r\nContent-Length: %d\r\n\r\n"
            % (digest.hex().encode(), len(body)) + body)


def http_request(tag, body=b""):
    return (b"POST /%s HTTP/1.1\r\nHost: docker\r\nContent-Length: %d\r\n\r\n"
            % (tag.encode(), len(body)) + body)


class AnsweringBackend:
    """A backend in this process: a unix listener with the given backlog
    that accepts once `accepting` is set (at once by default), reads each
    connection's request (headers up to the blank line, then Content-Length
    bytes), records it, answers answer_for(request) and closes. A thread
    per connection, every wait bounded."""

    def __init__(self, path, backlog=8, accepting=True):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(backlog)
        self.sock.settimeout(0.02)
        self.accepting = threading.Event()
        if accepting:
            self.accepting.set()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests = []
        self.accepted = 0
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            if not self.accepting.wait(0.02):
                continue
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(15)
        req = b""
        try:
            while b"\r\n\r\n" not in req:
                chunk = c.recv(65536)
                if not chunk:
                    return
                req += chunk
            head = req.split(b"\r\n\r\n", 1)[0]
            m = re.search(rb"Content-Length: (\d+)", head)
            want = len(head) + 4 + (int(m.group(1)) if m else 0)
            while len(req) < want:
                chunk = c.recv(min(1 << 20, want - len(req)))
                if not chunk:
                    return
                req += chunk
            with self.lock:
                self.requests.append(req)
            c.sendall(answer_for(req))
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def read_to_end(s, timeout=10):
    """Everything s receives up to EOF, and how it ended: "EOF", "reset"
    or "hung" (nothing for `timeout` seconds)."""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            return data, "reset"
        except socket.timeout:
            return data, "hung"
        if not chunk:
            return data, "EOF"
        data += chunk


def describe_end(data, end, expected):
    if data == expected and end == "EOF":
        return f"full reply ({len(data)} B)"
    if not data:
        return end
    return f"{len(data)} of {len(expected)} B then {end}" + ("" if expected.startswith(data)
                                                            else " (corrupt)")


def s_shutdown_backlog(sc):
    """Clients the kernel queued in the listen backlog (connect() succeeded,
    request sent) when SIGTERM comes to a daemon whose listener is its own:
    each is relayed under the drain deadline (the backend gets its request
    whole, the client its whole reply), and the connection the daemon was
    already relaying, idle, ends with EOF at the deadline; exit 0."""
    b = AnsweringBackend(sc.path("b.sock"))
    sc.closers.append(b.close)
    d = sc.daemon(daemon_args(sc, "--max-connections", "1", "--drain-timeout", "1"))
    listen = sc.path("l.sock")
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.settimeout(10)
    first.connect(listen)
    wait_for(lambda: b.accepted == 1, 10, "the first connection to reach the backend")
    queued, requests = [], []
    for i in range(3):
        q = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        q.settimeout(10)
        q.connect(listen)  # queued: the daemon is at --max-connections 1
        requests.append(http_request(f"queued-{i}", os.urandom(1000 * (i + 1))))
        q.sendall(requests[-1])
        queued.append(q)
    time.sleep(0.3)
    check(b.accepted == 1, "a queued client reached the backend before SIGTERM")
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    ends, intact = [], 0
    for q, req in zip(queued, requests):
        data, end = read_to_end(q)
        ends.append(describe_end(data, end, answer_for(req)))
        intact += data == answer_for(req) and end == "EOF"
    first_data, first_end = read_to_end(first)
    if first_data:
        first_end = f"{len(first_data)} bytes then {first_end}"
    try:
        rc = d.proc.wait(5)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    for x in queued + [first]:
        x.close()
    with b.lock:
        got = sum(1 for r in requests if r in b.requests)
    taken = d.grep("waiting to be accepted taken")
    sc.fig = (f"SIGTERM with 1 connection relayed and 3 queued in the backlog: relayed one "
              f"ended with {first_end}, queued ones with {', '.join(ends)}; backend got "
              f"{got}/3 requests whole; exit {rc} after {took:.2f} s")
    check(got == 3 and intact == 3,
          "DAEMON FINDING: connections queued in the backlog at SIGTERM were not relayed "
          "(their connect() completed and their request was sent)")
    check(first_end == "EOF", "the relayed connection was not ended with EOF")
    check(rc == 0, "exit status")
    check(took <= 1 + 1, "exit later than drain + 1 s")
    check(taken and "stopping: 3 connection(s)" in taken[0], f"log: {taken}")
    return sc.fig


def faultinject_env(sc, **controls):
    """The environment that preloads faultinject.so, with its control files
    (RDD_FAULT_<NAME> = a path in the scenario's directory) and its count."""
    check(os.path.exists(FAULTINJECT), "faultinject.so not built")
    env = {"LD_PRELOAD": FAULTINJECT, "RDD_FAULT_COUNT": sc.path("count"),
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    for name, path in controls.items():
        env["RDD_FAULT_" + name.upper()] = path
    return env


def fault_count(sc):
    try:
        return int(open(sc.path("count")).read())
    except (OSError, ValueError):
        return 0


def s_accept_eperm(sc):
    """accept4() failing with an error that is not a resource shortage
    (EPERM from an LSM, EINVAL from a broken inherited socket) while 30
    clients wait: the daemon backs off as it does for EMFILE (under 5% of
    a core, at most 10 log lines over 3 s) instead of retrying at once,
    and serves all 30 once the fault is gone."""
    b = sc.backend()
    fault = sc.path("fault")
    d = sc.daemon(daemon_args(sc), env=faultinject_env(sc, file=fault))
    listen = sc.path("l.sock")
    figs = []
    for err in ("EPERM", "EINVAL"):
        count0 = fault_count(sc)
        with open(fault, "w") as f:
            f.write(err)
        clients = soak_bg(listen, conns=30, concurrency=30, max_size=65536, timeout=60,
                          deadline=90, seed=81)
        sc.procs.append(clients)
        wait_for(lambda: fault_count(sc) > count0, 10, f"an injected {err}")
        time.sleep(0.3)
        lines0, cpu0, count1, t0 = len(d.lines()), d.cpu(), fault_count(sc), time.monotonic()
        time.sleep(3)
        secs = time.monotonic() - t0
        cpu = (d.cpu() - cpu0) / secs
        growth = len(d.lines()) - lines0
        attempts = fault_count(sc) - count1
        check(clients.poll() is None, f"{err}: the clients finished while accept4 failed?")
        removed = time.monotonic()
        os.unlink(fault)
        r = soak_result(clients, 90)
        served_in = time.monotonic() - removed
        figs.append(f"{err}: {attempts} failed accepts in {secs:.1f} s, {cpu * 100:.1f}% CPU, "
                    f"+{growth} log lines, {r['ok']}/30 served {served_in:.1f} s after removal")
        sc.fig = "accept4 failing by injection (LD_PRELOAD): " + "; ".join(figs)
        check(cpu < 0.05, f"{err}: CPU over 5% of a core (the accept loop spins)")
        check(growth <= 10, f"{err}: log grew by more than 10 lines in 3 s")
        check(any(os.strerror(getattr(errno, err)) in line for line in d.grep("accept paused")),
              f"no 'accept paused' line for {err}")
        check(r["ok"] == 30 and r["corrupt_bytes"] == 0, f"{err}: clients {r}")
    check(b.stats()["corrupt_bytes"] == 0, "backend saw corrupted bytes")
    check(d.stop() == 0, "exit status")
    return sc.fig


def s_live_socket_theft(sc):
    """--listen unix:PATH as uid 65534 where a live root-owned 0700 socket
    is (in a world-writable directory, so that unlinking it is possible):
    the probe gets EACCES, which proves nothing, so the daemon exits 1 with
    one line and leaves the socket alone (same inode, its listener still
    reached by root). And a daemon whose own socket file was replaced by
    another's leaves that one in place at exit."""
    if os.geteuid() != 0:
        raise Skipped("needs root (a root-owned socket and a daemon run as uid 65534)")
    os.chmod(sc.workdir, 0o711)
    shared = sc.path("shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)  # world-writable, no sticky bit: anyone may unlink in it
    path = os.path.join(shared, "docker.sock")
    live = listening_unix(path)
    sc.closers.append(live.close)
    os.chmod(path, 0o700)
    ino0 = os.lstat(path).st_ino

    def nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    d = sc.daemon(["--listen", f"unix:{path}", "--backend", sc.path("b.sock")],
                  preexec_fn=nobody, ready=False)
    try:
        rc = d.proc.wait(5)
    except subprocess.TimeoutExpired:
        rc = None
        d.stop()  # the old daemon: its exit deletes the path too
    lines = d.log().strip().splitlines()
    st = os.lstat(path) if os.path.lexists(path) else None
    state = ("gone" if st is None else "same inode" if st.st_ino == ino0 and
             stat.S_ISSOCK(st.st_mode) else "replaced")
    reached = "no"
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect(path)
        live.settimeout(5)
        a, _ = live.accept()
        c.sendall(b"ping")
        reached = "yes" if a.recv(4) == b"ping" else "wrong bytes"
        a.close()
        c.close()
    except OSError as e:
        reached = f"no ({e.__class__.__name__})"

    # Part two: the daemon's own socket replaced under it (rename over)
    # before SIGTERM: the newcomer's socket stays.
    os.chmod(shared, 0o755)
    own = sc.path("l.sock")
    d2 = sc.daemon(["--listen", f"unix:{own}", "--backend", sc.path("b.sock")])
    other = listening_unix(sc.path("other.sock"))
    sc.closers.append(other.close)
    os.rename(sc.path("other.sock"), own)
    ino_other = os.lstat(own).st_ino
    rc2 = d2.stop()
    survived = os.path.lexists(own) and os.lstat(own).st_ino == ino_other

    sc.fig = (f"uid 65534 --listen on a live root-owned 0700 socket: "
              + (f"exit {rc}" if rc is not None else "still running after 5 s (listening)")
              + f", {len(lines)} log line(s): {lines[0][:200] if lines else ''!r}; socket file "
              f"{state}, root's connect reached the live listener: {reached}; a socket that "
              f"replaced the daemon's own at its path {'survived' if survived else 'was removed by'}"
              f" its exit (exit {rc2})")
    check(rc == 1, "DAEMON FINDING: the daemon did not refuse to take over a socket it could "
          "not probe (EACCES)")
    check(len(lines) == 1 and "may be live" in lines[0] and "Permission denied" in lines[0],
          "not one clear error line")
    check(state == "same inode", f"the live socket file was {state}")
    check(reached == "yes", "the live listener is no longer reached through its path")
    check(rc2 == 0, "exit status of the second daemon")
    check(survived, "DAEMON FINDING: the daemon unlinked a socket that was not its own at exit")
    return sc.fig


def s_backend_eagain(sc):
    """A backend whose listen backlog is full (listen(0), a filler queued
    in it, nothing accepted): connect() answers EAGAIN. When it stays full,
    the client gets EOF after about 1 s (the daemon retried, not hung) and
    one log line says why; when the backend starts accepting 300 ms after
    the client connected, the client is relayed intact, as a direct client
    waiting in a blocking connect() would have been."""
    bpath = sc.path("b.sock")
    b = AnsweringBackend(bpath, backlog=0, accepting=False)
    sc.closers.append(b.close)
    fillers = []
    for _ in range(64):
        f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        f.setblocking(False)
        fillers.append(f)
        sc.closers.append(f.close)
        if f.connect_ex(bpath) != 0:
            break
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    full = probe.connect_ex(bpath)
    probe.close()
    check(full == errno.EAGAIN, f"the backend's backlog is not full: connect gave {full}")
    d = sc.daemon(daemon_args(sc))
    listen = sc.path("l.sock")

    # Stays full: EOF after the daemon's patience.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    t0 = time.monotonic()
    c.connect(listen)
    c.sendall(http_request("stays-full"))
    data, end = read_to_end(c, 10)
    stayed = time.monotonic() - t0
    c.close()
    time.sleep(0.1)
    full_lines = d.grep("its listen backlog stayed full")
    dial_lines = d.grep("cannot reach the backend")

    # Frees a slot 300 ms after the client connected: relayed intact.
    body = os.urandom(1 << 20)
    req = http_request("frees-up", body)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    t1 = time.monotonic()
    c.connect(listen)
    timer = threading.Timer(0.3, b.accepting.set)
    timer.start()
    sc.closers.append(timer.cancel)
    try:
        c.sendall(req)  # blocks until the daemon relays: nobody reads it before
        data2, end2 = read_to_end(c, 10)
    except OSError as e:
        data2, end2 = b"", f"{errno.errorcode.get(e.errno, e)} sending the request"
    timer.join(1)
    waited = time.monotonic() - t1
    c.close()
    with b.lock:
        got = req in b.requests
    expected = answer_for(req)
    intact = data2 == expected and end2 == "EOF"
    c_ = d.counters()
    sc.fig = (f"backend backlog full (listen(0), {len(fillers)} filler(s)): stayed full -> "
              f"client got {end}{f' with {len(data)} B' if data else ''} after {stayed * 1000:.0f} ms, "
              f"{len(full_lines)} 'backlog stayed full' line(s) of {len(dial_lines)} dial "
              f"failure line(s); freed after 300 ms -> 1 MiB request "
              f"{'received whole' if got else 'NOT received whole'}, reply "
              f"{describe_end(data2, end2, expected)}{' (sha256 checked)' if intact else ''} after "
              f"{waited * 1000:.0f} "
              f"ms; daemon served={c_['served']} failed={c_['failed']}")
    check(data == b"" and end == "EOF", f"stays full: the client got {end} with {len(data)} B")
    check(0.8 <= stayed <= 2.0,
          f"DAEMON FINDING: the client was failed after {stayed * 1000:.0f} ms, not after "
          f"about 1 s of retrying a backend whose backlog is full")
    check(len(full_lines) == 1 and len(dial_lines) == 1, f"log: {dial_lines}")
    check(got and intact, "the client whose backend freed a slot was not relayed intact")
    check(0.3 <= waited <= 1.5, f"relayed after {waited:.2f} s")
    check(d.stop() == 0, "exit status")
    return sc.fig


def s_fdsetsize_net(sc):
    """The FD_SETSIZE safety net, forced (faultinject.so moves descriptors
    above 1023; the daemon runs with RLIMIT_NOFILE 4096). Three spare
    backend sockets in a row land above FD_SETSIZE: each is closed and
    accept backs off, the peer waiting is not taken meanwhile, and then it
    and every later peer is served. Then one accepted peer lands above: it
    is ended with EOF, and every later peer is served. No descriptor leaks."""
    b = sc.backend()
    sock_high, accept_high = sc.path("socket-high"), sc.path("accept-high")
    env = faultinject_env(sc, socket_high=sock_high, accept_high=accept_high)

    def nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))

    d = sc.daemon(daemon_args(sc), env=env, preexec_fn=nofile)
    listen = sc.path("l.sock")

    def settle():
        # One lone exchange: the daemon then holds its spare backend socket.
        check(soak(listen, conns=1, concurrency=1, seed=91)["ok"] == 1, "settling exchange")
        return d.wait_idle()

    settle()
    fds0 = d.fds()
    paused0 = len(d.grep("accept paused"))
    with open(sock_high, "w") as f:
        f.write("3\n")
    n = 40
    r1 = soak(listen, conns=n, concurrency=4, seed=92, max_size=65536, timeout=10, deadline=30,
              run_timeout=60)
    spare_faults = fault_count(sc)
    paused = d.grep("accept paused")[paused0:]
    left = open(sock_high).read().strip()

    with open(accept_high, "w") as f:
        f.write("1\n")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    t0 = time.monotonic()
    c.connect(listen)
    c.sendall(header(MODE_XCHG, seed=93, req=100, rep=100) + b"x" * 100)
    data, end = read_to_end(c, 10)
    ended = time.monotonic() - t0
    c.close()
    peer_faults = fault_count(sc) - spare_faults
    r2 = soak(listen, conns=n, concurrency=4, seed=94, max_size=65536, timeout=10, deadline=30,
              run_timeout=60)
    fds1 = "?"
    if soak(listen, conns=1, concurrency=1, seed=95, timeout=10)["ok"] == 1:
        d.wait_idle()
        fds1 = d.fds()
    bs = b.stats()
    sc.fig = (f"3 spare backend sockets forced above FD_SETSIZE ({spare_faults} injected, "
              f"{left or '?'} left): {r1['ok']}/{n} exchanges ok ({r1['failed']} failed, "
              f"slowest {r1['max_ok_ms']:.0f} ms), {len(paused)} 'accept paused' line(s)"
              f"{': ' + repr(paused[0][-60:]) if paused else ''}; 1 peer forced above "
              f"({peer_faults} injected): it got {end} after {ended * 1000:.0f} ms"
              f"{' with ' + str(len(data)) + ' B' if data else ''}, then {r2['ok']}/{n} ok; "
              f"daemon fds {fds0}->{fds1}")
    check(spare_faults >= 1, "the shim moved no socket (RLIMIT_NOFILE?)")
    check(r1["ok"] == n and r1["corrupt_bytes"] == 0,
          "DAEMON FINDING: peers were dropped while (or after) the spare backend socket was "
          f"above FD_SETSIZE: {r1}")
    check(spare_faults == 3 and left == "0",
          "the daemon did not make a new spare socket after each one above FD_SETSIZE")
    check(paused and "select() cannot watch" in paused[0], "no 'accept paused' line naming the FD_SETSIZE net")
    check(peer_faults == 1, "the shim did not move the accepted peer")
    check(data == b"" and end == "EOF", f"the peer above FD_SETSIZE got {end} with {len(data)} B")
    check(r2["ok"] == n and r2["corrupt_bytes"] == 0, f"after the peer above: {r2}")
    check(bs["corrupt_bytes"] == 0 and bs["errors"] == 0, f"backend {bs}")
    check(fds1 == fds0, f"descriptors {fds0} -> {fds1}")
    check(d.stop() == 0, "exit status")
    return sc.fig


def s_signal_storm(sc):
    """SIGUSR1 and SIGHUP at a high rate during transfers (splice copy):
    every byte unchanged."""
    b = sc.backend()
    d = sc.daemon(daemon_args(sc, "--splice"))
    listen = sc.path("l.sock")
    secs = max(2.0, 5 * SCALE)
    bg = soak_bg(listen, secs=secs, concurrency=64, seed=51, timeout=30)
    sc.procs.append(bg)
    sig = subprocess.run([STRESSOR, "signals", str(d.pid), str(secs), "10000"],
                         capture_output=True, timeout=secs + 30)
    r = soak_result(bg, 120)
    s = ints(kv(sig.stdout.decode()))
    check(d.alive(), "the daemon died in the storm")
    counters_lines = len(d.grep("counters:"))
    c = d.wait_idle()
    bs = b.wait_idle()
    sc.fig = fig = (f"{s.get('sent', 0)} signals (USR1/HUP alternating) in {s.get('secs', 0):.1f} s over "
           f"{r['ok']} exchanges ({fmt_mb(r['bytes_up'] + r['bytes_down'])}, splice): "
           f"{r['failed']} failed, {r['corrupt_bytes']}+{bs['corrupt_bytes']} corrupt bytes, "
           f"{counters_lines} counters lines")
    check(sig.returncode == 0 and s["sent"] > 1000, f"signal sender: {sig.stdout!r}")
    check(r["failed"] == 0 and r["corrupt_bytes"] == 0 and r["ok"] > 0, f"exchanges {r}")
    check(bs["ok"] == r["ok"] and bs["corrupt_bytes"] == 0, f"backend {bs}")
    check(c["bytes_in"] == r["bytes_up"] + 32 * r["ok"], "daemon byte count differs")
    check(counters_lines <= s["sent"] // 2 + 1, "more counters lines than SIGUSR1s")
    check(d.stop() == 0, "exit status")
    return fig


# ------------------------------------------------------------- bad input

def listening_unix(path, kind=socket.SOCK_STREAM, listen=True):
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(path)
    if listen and kind == socket.SOCK_STREAM:
        s.listen(8)
    return s


def bad_input_cases(sc):
    """(name, argv, env, fd3-maker or None, expect, pattern, preexec)
    expect: "error" (exit 1 or 2, a clear line on stderr) or "serves"
    (listens and relays; the pattern, if any, is in the log)."""
    w = sc.workdir
    L = f"unix:{w}/l.sock"
    B = f"{w}/b.sock"
    long_name = "x" * (107 - len(w) - 1)
    cases = [
        ("LISTEN_FDS with fd 3 closed", [], {"LISTEN_FDS": "1", "LISTEN_PID": "self"},
         None, "error", "socket activation"),
        ("LISTEN_FDS with fd 3 a regular file", [], {"LISTEN_FDS": "1", "LISTEN_PID": "self"},
         "file", "error", "socket activation"),
        ("LISTEN_FDS with fd 3 a datagram socket", [], {"LISTEN_FDS": "1", "LISTEN_PID": "self"},
         "dgram", "error", "socket activation"),
        ("LISTEN_FDS with fd 3 an unlistened stream socket", [],
         {"LISTEN_FDS": "1", "LISTEN_PID": "self"}, "unlistened", "error", "socket activation"),
        ("LISTEN_FDS for another pid", [], {"LISTEN_FDS": "1", "LISTEN_PID": "1"}, None,
         "serves", None),
        ("LISTEN_FDS=0", [], {"LISTEN_FDS": "0", "LISTEN_PID": "self"}, None, "error",
         "socket activation"),
        ("LISTEN_FDS=-1", [], {"LISTEN_FDS": "-1", "LISTEN_PID": "self"}, None, "error",
         "socket activation"),
        ("LISTEN_FDS=99999999999", [], {"LISTEN_FDS": "99999999999", "LISTEN_PID": "self"},
         None, "error", "socket activation"),
        ("LISTEN_FDS empty", [], {"LISTEN_FDS": "", "LISTEN_PID": "self"}, None, "error",
         "socket activation"),
        ("LISTEN_PID garbage", [], {"LISTEN_FDS": "1", "LISTEN_PID": "12x"}, None, "error",
         "socket activation"),
        ("LISTEN_FDS fine, LISTEN_FDNAMES garbage", [],
         {"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": "\x01 x/y"}, "listener",
         "serves", None),
        # Four names for one socket: libsystemd's sd_listen_fds_with_names()
        # calls that invalid (EINVAL); refusing to start with one clear line
        # is as good as ignoring the names.
        ("LISTEN_FDS fine, LISTEN_FDNAMES naming 4", [],
         {"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": ":::\x01"}, "listener",
         "error-or-serves", None),
        ("NOTIFY_SOCKET abstract, nobody there", [], {"NOTIFY_SOCKET": "@rdd-nowhere-%d" % os.getpid()},
         None, "serves", "cannot notify systemd"),
        ("NOTIFY_SOCKET relative path", [], {"NOTIFY_SOCKET": "relative/sock"}, None, "serves",
         "cannot notify systemd"),
        ("NOTIFY_SOCKET too long", [], {"NOTIFY_SOCKET": "/" + "n" * 300}, None, "serves",
         "cannot notify systemd"),
        ("NOTIFY_SOCKET a regular file", [], {"NOTIFY_SOCKET": f"{w}/notify-file"}, None,
         "serves", "cannot notify systemd"),
        ("NOTIFY_SOCKET a stream listener", [], {"NOTIFY_SOCKET": f"{w}/notify-stream"}, None,
         "serves", "cannot notify systemd"),
        ("NOTIFY_SOCKET empty", [], {"NOTIFY_SOCKET": ""}, None, "serves", None),
        ("WATCHDOG_USEC garbage", [], {"NOTIFY_SOCKET": f"{w}/nowhere", "WATCHDOG_USEC": "soon"},
         None, "serves", None),
        ("WATCHDOG_USEC=1", [], {"NOTIFY_SOCKET": f"{w}/nowhere", "WATCHDOG_USEC": "1"}, None,
         "serves", None),
        ("empty environment", [], "EMPTY", None, "serves", None),
        ("backend a FIFO", [], {}, None, "backend-fails", "cannot reach the backend"),
        ("backend a dangling symlink", [], {}, None, "backend-fails", "cannot reach the backend"),
        ("backend a symlink loop", [], {}, None, "backend-fails", "cannot reach the backend"),
        ("backend in a missing directory", ["--backend", f"{w}/missing/b.sock"], {}, None,
         "backend-fails", "cannot reach the backend"),
        ("listen in a missing directory", ["--listen", f"unix:{w}/missing/l.sock"], {}, None,
         "error", "cannot listen"),
        ("listen under a regular file", ["--listen", f"unix:{w}/afile/l.sock"], {}, None,
         "error", "cannot listen"),
        ("listen path a directory", ["--listen", f"unix:{w}/adir"], {}, None, "error",
         "not a socket"),
        ("listen path of 107 bytes", ["--listen", f"unix:{w}/{long_name}"], {}, None, "serves",
         None),
        ("--listen=VALUE form and --back abbreviation", [f"--listen={L}", "--back", B], {}, None,
         "serves", None),
        ("100 KB argument", ["--backend", "b" * 100000], {}, None, "error", "too long"),
        ("300 --allow-uid", sum((["--allow-uid", str(i)] for i in range(300)), []), {}, None,
         "error", "at most"),
        ("non-UTF-8 bytes", ["--log-level", b"\xff\xfe".decode("latin-1")], {}, None, "error",
         "--log-level"),
        ("empty argument", [""], {}, None, "error", "unexpected argument"),
        ("newline in an argument", ["--log-level", "debug\n<3>forged line"], {}, None,
         "error", "--log-level"),
        ("--", ["--"], {}, None, "serves", None),
        ("NOFILE 4", [], {}, None, "error", "Too many open files"),
        ("NOFILE 5", [], {}, None, "error", "Too many open files"),
        ("stdin, stdout, stderr closed", ["--log-level", "debug"], {}, None, "serves-closed-stdio",
         None),
        # Then the inherited listener is fd 3 and the first free number, 2,
        # goes to a socket: log lines must not end up in a relayed stream.
        ("socket activation, stdin, stdout, stderr closed", ["--log-level", "debug"],
         {"LISTEN_FDS": "1", "LISTEN_PID": "self", "RDD_CLOSE_STDIO": "1"}, "listener",
         "serves-closed-stdio", None),
        # Sockets numbered above FD_SETSIZE cannot go into select(): the
        # daemon must either say so or cope, not listen and never accept.
        ("1100 inherited descriptors", [], {}, None, "error-or-serves", None),
    ]
    return cases


LISTEN_WRAPPER = """
import os, sys
fd = int(sys.argv[1])
if fd >= 0:
    if fd != 3:
        os.dup2(fd, 3)
        os.close(fd)
    os.set_inheritable(3, True)
else:
    try:
        os.close(3)
    except OSError:
        pass
if os.environ.get("LISTEN_PID") == "self":
    os.environ["LISTEN_PID"] = str(os.getpid())
if os.environ.pop("RDD_CLOSE_STDIO", None):
    for std in (0, 1, 2):
        os.close(std)
os.execv(sys.argv[2], sys.argv[2:])
"""


def run_bad_case(sc, name, extra, env, fd3, expect, pattern):
    w = sc.workdir
    listen = f"{w}/l.sock"
    bpath = f"{w}/b.sock"
    for p in (listen, bpath):
        if os.path.lexists(p):
            os.unlink(p)
    args = ["--listen", f"unix:{listen}", "--backend", bpath] + extra
    keep = []
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                             "WATCHDOG_USEC", "WATCHDOG_PID")}
    if env == "EMPTY":
        full_env = {}
    else:
        full_env.update(env)
    if name.startswith("NOFILE ") and SANITIZED:
        # LeakSanitizer needs descriptors of its own at exit.
        full_env["ASAN_OPTIONS"] = full_env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    backend = None
    if expect in ("serves", "serves-closed-stdio", "error-or-serves"):
        backend = Backend(bpath)
    if name == "backend a FIFO":
        os.mkfifo(bpath)
    elif name == "backend a dangling symlink":
        os.symlink(f"{w}/nothing-here", bpath)
    elif name == "backend a symlink loop":
        os.symlink(bpath, bpath)
    elif name.startswith("listen under a regular file"):
        open(f"{w}/afile", "w").close()
    elif name == "listen path a directory":
        os.makedirs(f"{w}/adir", exist_ok=True)
    elif name.startswith("listen path of 107"):
        listen = extra[1][5:]
    elif name.startswith("NOTIFY_SOCKET a regular file"):
        open(f"{w}/notify-file", "w").close()
    elif name.startswith("NOTIFY_SOCKET a stream listener"):
        if not os.path.exists(f"{w}/notify-stream"):
            keep.append(listening_unix(f"{w}/notify-stream"))
    if name == "--listen=VALUE form and --back abbreviation":
        args = extra
    # fd 3 for socket activation
    fd3 = {"file": lambda: open(f"{w}/fd3-file", "w"),
           "dgram": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM),
           "unlistened": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
           "listener": lambda: listening_unix(listen)}.get(fd3)
    obj = fd3() if fd3 else None
    if obj is not None:
        keep.append(obj)
    inherit = []
    if name == "1100 inherited descriptors":
        inherit = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]

    def pre():
        # close_fds=False below: Python's own descriptors are close-on-exec,
        # and this runs before subprocess would close the ones made here.
        if name.startswith("NOFILE "):
            n = int(name.split()[1])
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        if name == "stdin, stdout, stderr closed":
            for fd in (0, 1, 2):
                os.close(fd)
        if name == "1100 inherited descriptors":
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
            for fd in inherit:
                os.set_inheritable(fd, True)

    logp = os.path.join(w, "bad.log")
    cmd = [BINARY, *args]
    popen_fds = {"close_fds": False}
    if isinstance(env, dict) and "LISTEN_FDS" in env:
        # Socket activation as systemd does it: fd 3 (or nothing there) and
        # LISTEN_PID the daemon's own pid, set by an exec wrapper.
        src = obj.fileno() if obj is not None else -1
        cmd = [sys.executable, "-c", LISTEN_WRAPPER, str(src), BINARY, *args]
        popen_fds = {"pass_fds": (src,) if src >= 0 else ()}
    with open(logp, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=full_env, preexec_fn=pre, **popen_fds)
    for fd in inherit:
        os.close(fd)
    outcome = ""
    try:
        if expect == "error-or-serves":
            expect = "serves"
            if not wait_for(lambda: "listening on" in open(logp, errors="replace").read()
                            or proc.poll() is not None, 10, "the daemon to listen or exit") \
                    or proc.poll() is not None:
                expect = "error"
        if expect == "error":
            try:
                rc = proc.wait(5)
            except subprocess.TimeoutExpired:
                raise Failed("still running after 5 s; expected a clear error")
            text = open(logp, errors="replace").read()
            check(rc in (1, 2), f"exit status {rc}: {text[-300:]}")
            lines = text.strip().splitlines()
            check(len(lines) == 1, f"{len(lines)} lines for one error: {text[-300:]!r}")
            check(lines and all(l.startswith(("<3>", "<4>", "rdd-guest: ")) for l in lines),
                  f"unclear error output: {text[-300:]!r}")
            if pattern:
                check(pattern in text, f"'{pattern}' not in {text[-300:]!r}")
            outcome = f"exit {rc}: {lines[0][:70]}"
        else:
            if expect == "serves-closed-stdio":
                # no log to wait on: wait for the socket
                wait_for(lambda: os.path.exists(listen) or proc.poll() is not None, 10, "listen")
            else:
                wait_for(lambda: "listening on" in open(logp, errors="replace").read()
                         or proc.poll() is not None, 10, "the daemon to listen")
            check(proc.poll() is None, f"exited {proc.returncode}: "
                  f"{open(logp, errors='replace').read()[-300:]}")
            if expect == "backend-fails":
                r = soak(listen, conns=20, concurrency=4, seed=61, min_size=1, timeout=5,
                         deadline=15)
                check(r["ok"] == 0 and r["timeout"] == 0 and r["max_fail_stall_ms"] < 1000,
                      f"clients: {r}")
                check(proc.poll() is None, "the daemon exited")
                outcome = f"daemon up, 20/20 clients closed within {r['max_fail_stall_ms']:.0f} ms"
            else:
                r = soak(listen, conns=50, concurrency=8, seed=62, timeout=4, deadline=8)
                if "inherited" in name:
                    why = ("DAEMON FINDING: its sockets are numbered above FD_SETSIZE and "
                           "never enter select()")
                elif expect == "serves-closed-stdio":
                    why = ("DAEMON FINDING: stderr (fd 2) was closed, a relayed socket got "
                           "number 2, and log lines were written into the relayed stream")
                else:
                    why = "relay broken"
                check(r["ok"] == 50 and r["corrupt_bytes"] == 0,
                      f"{r['ok']}/50 exchanges ok: {r['timeout']} timed out, {r['long']} got "
                      f"extra bytes, {r['corrupt_bytes']} corrupt bytes ({why})")
                if expect == "serves-closed-stdio":
                    # Served once, so the handlers are in: a counters line
                    # goes to whatever fd 2 is now, then more exchanges.
                    proc.send_signal(signal.SIGUSR1)
                    time.sleep(0.1)
                    r2 = soak(listen, conns=50, concurrency=8, seed=63, timeout=4, deadline=8)
                    check(r2["ok"] == 50 and r2["corrupt_bytes"] == 0, f"relay: {r2}")
                bst = backend.stats()
                check(bst["corrupt_bytes"] == 0 and bst["overrun"] == 0 and bst["bad_header"] == 0
                      and bst["errors"] == 0, f"the backend received foreign bytes: {bst}")
                outcome = f"served {bst['ok']} exchanges intact at both ends"
            if pattern:
                check(pattern in open(logp, errors="replace").read(), f"no '{pattern}' in the log")
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(10)
            except subprocess.TimeoutExpired:
                raise Failed("did not exit on SIGTERM")
            check(rc == 0, f"exit status {rc} after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for o in keep:
            o.close()
        if backend:
            backend.close()
        text = open(logp, errors="replace").read()
        for p in (f"{w}/notify-stream",):
            if os.path.exists(p):
                os.unlink(p)
    check(proc.returncode >= 0, f"killed by signal {-proc.returncode}")
    check(not any(r in text for r in SANITIZER_REPORTS), "sanitizer report")
    return outcome


# ----------------------------------------------------------------- fuzzing

def s_fuzz(sc):
    """The libFuzzer target for options_parse, for a bounded time."""
    check(os.path.exists(FUZZER), "fuzz_options not built (clang's libFuzzer missing?)")
    corpus = sc.path("corpus")
    shutil.copytree(os.path.join(HERE, "..", "fuzz", "corpus"), corpus)
    seeds = len(os.listdir(corpus))
    out = subprocess.run([FUZZER, f"-max_total_time={FUZZ_SECS}", "-timeout=10",
                          "-rss_limit_mb=2048", "-max_len=4096", "-print_final_stats=1",
                          f"-artifact_prefix={sc.workdir}/", corpus],
                         capture_output=True, timeout=FUZZ_SECS + 120, cwd=sc.workdir)
    text = out.stderr.decode(errors="replace")
    runs = re.search(r"Done (\d+) runs in (\d+) second", text)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", text)
    crashes = [f for f in os.listdir(sc.workdir) if f.startswith(("crash-", "leak-", "timeout-", "oom-"))]
    sc.fig = fig = (f"options_parse fuzzed {runs.group(1) if runs else '?'} runs in "
           f"{runs.group(2) if runs else '?'} s from {seeds} seeds, coverage "
           f"{cov[-1][0] if cov else '?'} edges / {cov[-1][1] if cov else '?'} features, "
           f"corpus {len(os.listdir(corpus))}, {len(crashes)} crashes")
    if crashes or out.returncode != 0:
        tail = "\n".join(text.splitlines()[-30:])
        raise Failed(f"{fig} -- exit {out.returncode}, {crashes}\n{tail}")
    check(runs is not None, "libFuzzer did not report its runs")
    return fig


SCENARIOS = [
    ("soak", s_soak),
    ("soak-splice-aborts", s_soak_splice_aborts),
    ("descriptor-exhaustion", s_exhaustion),
    ("enfile-like-pressure", s_enfile),
    ("refused-peer-flood", s_refused_flood),
    ("refused-peer-flood-max", s_refused_flood_max),
    ("stuck-reader", s_stuck_reader),
    ("mute-backend", s_mute_backend),
    ("backend-faults", s_backend_faults),
    ("shutdown-under-load", s_shutdown),
    ("shutdown-backlog", s_shutdown_backlog),
    ("accept-eperm", s_accept_eperm),
    ("live-socket-theft", s_live_socket_theft),
    ("backend-eagain", s_backend_eagain),
    ("fdsetsize-net", s_fdsetsize_net),
    ("signal-storm", s_signal_storm),
    ("bad-input", None),
    ("valgrind-soak", s_valgrind_soak),
    ("fuzz-options", s_fuzz),
]


def main():
    passed = failed = skipped = 0
    t_all = time.monotonic()
    print(f"# rdd-guest stress suite: {BINARY}"
          f"{' (sanitized)' if SANITIZED else ''}, scale {SCALE:g}", flush=True)

    def report(name, ok, text, secs):
        nonlocal passed, failed, skipped
        if ok is None:
            skipped += 1
            print(f"skip {name}: {text}", flush=True)
        elif ok:
            passed += 1
            print(f"ok   {name}: {text} [{secs:.1f}s]", flush=True)
        else:
            failed += 1
            print(f"FAIL {name}: {text} [{secs:.1f}s]", flush=True)

    for name, fn in SCENARIOS:
        if ONLY and name not in ONLY:
            continue
        if fn is None:  # bad input: one check per case
            sc = Scenario(name)
            try:
                for case in bad_input_cases(sc):
                    t0 = time.monotonic()
                    try:
                        text = run_bad_case(sc, *case)
                        report(f"bad-input {case[0]}", True, text, time.monotonic() - t0)
                    except Failed as e:
                        report(f"bad-input {case[0]}", False, f"-- {e}", time.monotonic() - t0)
                    except Exception:  # noqa: BLE001
                        report(f"bad-input {case[0]}", False, "-- " + traceback.format_exc(limit=3),
                               time.monotonic() - t0)
            finally:
                sc.cleanup(False)
            continue
        sc = Scenario(name)
        t0 = time.monotonic()
        ok, text = True, ""
        try:
            text = fn(sc)
        except Skipped as e:
            ok, text = None, str(e)
        except Failed as e:
            ok, text = False, f"{sc.fig} -- {e}"
        except Exception:  # noqa: BLE001 - a broken scenario is a failed one
            ok, text = False, f"{sc.fig} -- " + traceback.format_exc(limit=4)
        if ok and UNASSERTED:
            text += " (rates printed, not asserted, under ASan)"
        UNASSERTED.clear()
        reports = sc.cleanup(ok is False)
        if reports:
            ok = False
            text += " -- SANITIZER REPORT:\n" + reports[0].log()[-3000:]
        report(name, ok, text, time.monotonic() - t0)
    print(f"# total {time.monotonic() - t_all:.0f} s", flush=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
