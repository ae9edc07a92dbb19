"""Fixtures for the integration tests: the real rdd-guest binary against a
real unix-socket backend run by the test, every wait bounded.

RDD_GUEST names the binary; RDD_VALGRIND=1 runs it under valgrind's memcheck
and fails a test whose daemon reports an error or a leak."""

import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import procfs  # noqa: E402 - tests/lib, shared with the stress suite

BINARY = os.environ.get("RDD_GUEST", os.path.join(os.path.dirname(__file__), "../../build/rdd-guest"))
VALGRIND = os.environ.get("RDD_VALGRIND") == "1"
# Under valgrind or a sanitizer, memory figures are the instrumentation's.
INSTRUMENTED = VALGRIND or os.environ.get("RDD_SANITIZED") == "1"
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
# Valgrind runs the daemon some tens of times slower: waits stretch with it.
SLOW = 10 if VALGRIND else 1
VALGRIND_ERROR = 99


def wait_for(predicate, timeout, what):
    """Polls predicate until true; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout * SLOW}s waiting for {what}")


class Daemon:
    """One rdd-guest process with its stderr captured in a file."""

    def __init__(self, workdir, args, env=None, preexec_fn=None, wrapper=None, ready=True, pass_fds=()):
        self.log_path = os.path.join(workdir, f"rdd-{time.monotonic_ns()}.log")
        self.log_file = open(self.log_path, "wb")
        cmd = [BINARY] + list(args)
        if VALGRIND and wrapper is None:
            cmd = ["valgrind", "-q", f"--error-exitcode={VALGRIND_ERROR}", "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                   "--track-fds=no"] + cmd
        if wrapper:
            cmd = list(wrapper) + cmd
        full_env = dict(os.environ)
        for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
            full_env.pop(key, None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=self.log_file, env=full_env, preexec_fn=preexec_fn,
                                     pass_fds=pass_fds)
        if ready:
            wait_for(lambda: "listening on" in self.log() or self.proc.poll() is not None,
                     10, "the daemon to listen")
            assert self.proc.poll() is None, f"daemon exited early:\n{self.log()}"

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_lines(self, text):
        return [line for line in self.log().splitlines() if text in line]

    def signal(self, signo):
        self.proc.send_signal(signo)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon did not exit within {timeout * SLOW}s:\n{self.log()[-3000:]}")

    def stop(self, timeout=15):
        """SIGTERM and wait: the exit status must be 0 (and valgrind clean)."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        assert rc == 0, f"daemon exit status {rc}:\n{self.log()[-5000:]}"
        return rc

    def cpu_seconds(self):
        return procfs.cpu_seconds(self.pid)

    def rss_kib(self):
        return procfs.rss_kib(self.pid)

    def fd_count(self):
        return procfs.fd_count(self.pid)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log_file.close()


class Backend:
    """A unix-socket server run by the test. `handler(conn, index)` serves
    each connection in its own thread; `accepted` counts connections."""

    def __init__(self, path, handler):
        self.path = path
        self.handler = handler
        self.accepted = 0
        self.errors = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.running = True
        self.threads = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            index = self.accepted
            self.accepted += 1
            t = threading.Thread(target=self._run, args=(conn, index), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, conn, index):
        try:
            conn.settimeout(60 * SLOW)
            self.handler(conn, index)
        except Exception as e:  # noqa: BLE001 - recorded for the test to assert
            self.errors.append(e)
        finally:
            conn.close()

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def workdir():
    # Short: unix socket paths must fit in 108 bytes.
    path = tempfile.mkdtemp(prefix="rdd-it-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run(workdir):
    """run(args, ...) starts a daemon; all are stopped at the end, and under
    valgrind each one's exit status (errors, leaks) is checked."""
    daemons = []

    def start(args, **kwargs):
        d = Daemon(workdir, args, **kwargs)
        daemons.append(d)
        return d

    yield start
    for d in daemons:
        still_running = d.proc.poll() is None
        if still_running:
            d.signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=15 * SLOW)
            except subprocess.TimeoutExpired:
                pass
        rc = d.proc.poll()
        d.kill()
        if VALGRIND and rc == VALGRIND_ERROR:
            pytest.fail(f"valgrind reported errors:\n{d.log()[-5000:]}")
        if any(report in d.log() for report in SANITIZER_REPORTS):
            pytest.fail(f"sanitizer report:\n{d.log()[-5000:]}")


@pytest.fixture
def backends():
    made = []

    def make(path, handler):
        b = Backend(path, handler)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    s.connect(path)
    return s


def recv_all(sock, limit=None):
    """Reads until EOF; returns the bytes (raises on reset or timeout)."""
    chunks = []
    total = 0
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
        if limit is not None and total > limit:
            raise AssertionError("more bytes than expected")


class Stream:
    """A deterministic pseudo-random byte stream, sent in random-size
    writes, with the SHA-256 of what was sent."""

    def __init__(self, total, seed):
        rnd = random.Random(seed)
        self.block = rnd.randbytes(1 << 20) * 2
        self.total = total
        self.rnd = rnd

    def send(self, sock, max_write=256 * 1024, pause=0.0):
        digest = hashlib.sha256()
        sent = 0
        while sent < self.total:
            n = min(self.rnd.randint(1, max_write), self.total - sent)
            offset = (sent * 7) % (1 << 20)
            chunk = self.block[offset:offset + n] if n <= (1 << 20) else self.block[:n]
            sock.sendall(chunk)
            digest.update(chunk)
            sent += n
            if pause:
                time.sleep(pause)
        return digest.hexdigest()


def receive_digest(sock, read_size=1 << 20, pause=0.0):
    digest = hashlib.sha256()
    total = 0
    while True:
        data = sock.recv(read_size)
        if not data:
            return total, digest.hexdigest()
        digest.update(data)
        total += len(data)
        if pause:
            time.sleep(pause)
