"""Bytes through the real daemon: half-close both ways, bulk transfers with
checksums, slow readers, and peers or backends that fail mid-stream."""

import socket
import struct
import threading
import time

import pytest

from conftest import INSTRUMENTED, SLOW, VALGRIND, Stream, connect, receive_digest, recv_all, wait_for

# 1 GiB each way as the issue asks; under valgrind a smaller size keeps
# the suite's time bounded while still crossing many buffers.
BULK = (64 << 20) if VALGRIND else (1 << 30)


def daemon_args(workdir, *extra):
    return ["--listen", f"unix:{workdir}/l.sock", "--backend", f"{workdir}/b.sock",
            "--log-level", "debug", *extra]


@pytest.mark.parametrize("copy", ["--no-splice", "--splice"])
def test_client_half_closes_then_gets_late_reply(workdir, run, backends, copy):
    """The client shuts its write side; the backend answers 2 s later."""
    def handler(conn, _):
        request = recv_all(conn)
        time.sleep(2)
        conn.sendall(b"reply to " + request)
        conn.shutdown(socket.SHUT_WR)

    backends(f"{workdir}/b.sock", handler)
    d = run(daemon_args(workdir, copy))
    c = connect(f"{workdir}/l.sock")
    c.sendall(b"request")
    c.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    assert recv_all(c) == b"reply to request"
    assert time.monotonic() - started >= 1.9
    c.close()
    wait_for(lambda: d.log_lines("closed peer uid="), 5, "the closed line")
    line = d.log_lines("closed peer uid=")[0]
    assert "in=7 out=16" in line and "end=finished" in line
    assert "copy=rw" in line  # a few bytes never cost a pipe, even with --splice


@pytest.mark.parametrize("copy", ["--no-splice", "--splice"])
def test_backend_half_closes_first_and_client_data_still_arrives(workdir, run, backends, copy):
    got = {}

    def handler(conn, _):
        conn.sendall(b"banner")
        conn.shutdown(socket.SHUT_WR)
        got["data"] = recv_all(conn)

    b = backends(f"{workdir}/b.sock", handler)
    run(daemon_args(workdir, copy))
    c = connect(f"{workdir}/l.sock")
    assert recv_all(c) == b"banner"  # EOF from the backend reached the client
    time.sleep(0.5)
    c.sendall(b"later data after the backend's EOF")
    c.shutdown(socket.SHUT_WR)
    wait_for(lambda: "data" in got, 5, "the backend to read the client's data")
    assert got["data"] == b"later data after the backend's EOF"
    assert not b.errors


@pytest.mark.parametrize("copy", ["--no-splice", "--splice"])
def test_bulk_both_directions_with_checksums(workdir, run, backends, copy):
    """BULK bytes each way at once, random write sizes on both ends."""
    result = {}

    def handler(conn, _):
        t = threading.Thread(target=lambda: result.update(up=receive_digest(conn)))
        t.start()
        result["down_sent"] = Stream(BULK, seed=2).send(conn)
        conn.shutdown(socket.SHUT_WR)
        t.join(timeout=300)

    b = backends(f"{workdir}/b.sock", handler)
    d = run(daemon_args(workdir, copy))
    c = connect(f"{workdir}/l.sock", timeout=300)
    down = {}
    t = threading.Thread(target=lambda: down.update(r=receive_digest(c)))
    t.start()
    up_sent = Stream(BULK, seed=1).send(c)
    c.shutdown(socket.SHUT_WR)
    t.join(timeout=300 * SLOW)
    wait_for(lambda: "up" in result, 30, "the backend to finish reading")
    assert not b.errors
    assert result["up"] == (BULK, up_sent)
    assert down["r"] == (BULK, result["down_sent"])
    wait_for(lambda: d.log_lines("closed peer"), 5, "the closed line")
    line = d.log_lines("closed peer")[0]
    assert f"in={BULK} out={BULK}" in line
    assert ("copy=splice" if copy == "--splice" else "copy=rw") in line


def test_slow_reader_bounds_memory_and_loses_nothing(workdir, run, backends):
    """The backend writes 32 MiB as fast as it can; the client reads 16 KiB
    every 2 ms. The daemon's memory must not grow with what is queued."""
    total = 32 << 20
    sent = {}

    def handler(conn, _):
        sent["digest"] = Stream(total, seed=3).send(conn)
        conn.shutdown(socket.SHUT_WR)

    backends(f"{workdir}/b.sock", handler)
    d = run(daemon_args(workdir))
    rss_before = d.rss_kib()
    c = connect(f"{workdir}/l.sock", timeout=120)
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], d.rss_kib())
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    got = receive_digest(c, read_size=16384, pause=0.002)
    stop.set()
    w.join()
    assert got == (total, sent["digest"])
    # One 128 KiB read's worth may be held, and the allocator's slack;
    # 32 MiB queued in the daemon would show here. (Under valgrind the RSS
    # is valgrind's own, under ASan its quarantine's.)
    if not INSTRUMENTED:
        assert peak[0] - rss_before < 4096, f"RSS grew from {rss_before} to {peak[0]} KiB"


def test_backend_missing_closes_client_at_once(workdir, run):
    d = run(daemon_args(workdir))
    c = connect(f"{workdir}/l.sock")
    started = time.monotonic()
    try:
        # Sent before the daemon accepts: it is unread when the daemon
        # gives up, and must still not turn the close into a reset.
        c.sendall(b"GET /_ping HTTP/1.1\r\n\r\n")
    except BrokenPipeError:
        pass  # the daemon was quicker: closed before the request
    assert c.recv(100) == b""  # EOF; a reset raises ConnectionResetError
    assert time.monotonic() - started < 2 * SLOW
    wait_for(lambda: d.log_lines("cannot reach the backend"), 5, "the dial failure line")
    line = d.log_lines("cannot reach the backend")[0]
    assert line.startswith("<4>") and "No such file or directory" in line


def test_backend_closing_mid_stream_ends_the_connection(workdir, run, backends):
    def handler(conn, index):
        conn.sendall(b"x" * 100000)
        if index == 0:
            # Abortive close: RST-like for the relay (unread input, linger 0).
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        conn.shutdown(socket.SHUT_WR)
        recv_all(conn)

    backends(f"{workdir}/b.sock", handler)
    d = run(daemon_args(workdir))
    c = connect(f"{workdir}/l.sock")
    c.sendall(b"y" * 1000)
    received = 0
    started = time.monotonic()
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            received += len(data)
    except ConnectionResetError:
        pass
    assert time.monotonic() - started < 3 * SLOW
    assert received <= 100000
    # The daemon is unharmed: the next connection is served in full.
    c2 = connect(f"{workdir}/l.sock")
    c2.shutdown(socket.SHUT_WR)
    assert recv_all(c2) == b"x" * 100000
    assert d.proc.poll() is None


def test_client_resetting_mid_stream(workdir, run, backends):
    seen = {}

    def handler(conn, index):
        if index == 0:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
            except ConnectionResetError:
                pass
            seen["first_done"] = time.monotonic()
            return
        conn.sendall(b"second")
        conn.shutdown(socket.SHUT_WR)

    backends(f"{workdir}/b.sock", handler)
    d = run(daemon_args(workdir))
    c = connect(f"{workdir}/l.sock")
    c.sendall(b"z" * 50000)
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sendall(b"unread")
    c.close()
    closed_at = time.monotonic()
    wait_for(lambda: "first_done" in seen, 5, "the backend to see the end")
    assert seen["first_done"] - closed_at < 2 * SLOW
    c2 = connect(f"{workdir}/l.sock")
    assert recv_all(c2) == b"second"
    assert d.proc.poll() is None
