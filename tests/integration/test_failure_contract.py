"""The relay's failure contract, with a direct connection as the oracle:
each exchange is made once straight to the backend's socket and once
through rdd-guest, and what each end saw (bytes, their checksum, EOF or
reset) is compared. When one side fails, every byte the other side already
sent still arrives; each direction ends on its own, as on a direct
connection."""

import hashlib
import socket
import threading
import time

import pytest

from conftest import SLOW, VALGRIND, connect, wait_for

REPEAT = 5 if VALGRIND else 20
COPY_MODES = ["--no-splice", "--splice"]


def daemon_args(workdir, copy):
    return ["--listen", f"unix:{workdir}/l.sock", "--backend", f"{workdir}/b.sock",
            "--log-level", "debug", copy]


def pattern(n, seed):
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest() * 2048  # 64 KiB
    whole, rest = divmod(n, len(block))
    return block * whole + block[:rest]


def read_to_end(sock, pause_first=0.0, read_size=1 << 20):
    """Reads until EOF or an error: (bytes, sha256, "eof" | "reset" | error name)."""
    if pause_first:
        time.sleep(pause_first)
    digest = hashlib.sha256()
    total = 0
    while True:
        try:
            data = sock.recv(read_size)
        except ConnectionResetError:
            return total, digest.hexdigest(), "reset"
        except OSError as e:  # a timeout is a failure of the test, named
            return total, digest.hexdigest(), type(e).__name__
        if not data:
            return total, digest.hexdigest(), "eof"
        digest.update(data)
        total += len(data)


class Writer(threading.Thread):
    """Writes a stream until the socket refuses (EPIPE, reset) or `limit`
    bytes are out; records how it ended."""

    def __init__(self, sock, limit, chunk=64 * 1024):
        super().__init__(daemon=True)
        self.sock, self.limit, self.chunk = sock, limit, chunk
        self.sent, self.end = 0, None
        self.start()

    def run(self):
        data = b"w" * self.chunk
        try:
            while self.sent < self.limit:
                self.sent += self.sock.send(data)
            self.end = "limit"
        except (BrokenPipeError, ConnectionResetError):
            self.end = "refused"
        except OSError as e:
            self.end = type(e).__name__


def both_ways(workdir, run, backends, copy, handler, client):
    """Runs client(path) against the backend directly, then through the
    daemon; returns (direct, relayed, daemon)."""
    backends(f"{workdir}/b.sock", handler)
    direct = client(f"{workdir}/b.sock")
    d = run(daemon_args(workdir, copy))
    relayed = client(f"{workdir}/l.sock")
    return direct, relayed, d


@pytest.mark.parametrize("copy", COPY_MODES)
@pytest.mark.parametrize("size", [1024, 1 << 20, 64 << 20], ids=["1KiB", "1MiB", "64MiB"])
def test_backend_answers_and_closes_while_the_client_still_sends(workdir, run, backends, copy, size):
    """The engine writes its answer and closes without reading the rest of
    the request (a rejected upload); the client keeps sending and reads
    late. Every byte of the answer arrives, and the client's writes are
    refused, as they are directly."""
    answer = pattern(size, size)
    want = (size, hashlib.sha256(answer).hexdigest())

    def handler(conn, _):
        conn.recv(100)  # the start of the request, then the answer
        conn.sendall(answer)

    def client(path):
        results = []
        for _ in range(REPEAT):
            c = connect(path, timeout=30)
            w = Writer(c, limit=256 << 20)
            total, digest, end = read_to_end(c, pause_first=0.05)
            w.join(timeout=30 * SLOW)
            c.close()
            results.append(((total, digest), end, w.end))
        return results

    direct, relayed, d = both_ways(workdir, run, backends, copy, handler, client)
    for i, (got, end, writer_end) in enumerate(direct):
        assert got == want, f"direct run {i}: the oracle itself lost bytes"
        assert writer_end == "refused"
    for i, (got, end, writer_end) in enumerate(relayed):
        assert got == want, f"run {i}: {got[0]} of {size} bytes through the relay ({end})"
        assert end in ("eof", "reset"), f"run {i}: the answer ended with {end}"
        assert writer_end == "refused", f"run {i}: the client's writes ended with {writer_end}"
    wait_for(lambda: len(d.log_lines("closed peer")) == REPEAT, 10, "every connection to close")


@pytest.mark.parametrize("copy", COPY_MODES)
def test_short_answer_then_reset_arrives_whole(workdir, run, backends, copy):
    """A 413-style answer, then a reset (the engine closes with the request
    body unread): the answer is never lost."""
    answer = b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 5\r\n\r\nlarge"

    def handler(conn, _):
        conn.recv(64)
        conn.sendall(answer)

    def client(path):
        results = []
        for _ in range(REPEAT):
            c = connect(path, timeout=30)
            c.sendall(b"PUT /upload HTTP/1.1\r\n\r\n")
            w = Writer(c, limit=200_000, chunk=4096)  # the body; may be refused part-way
            total, digest, end = read_to_end(c)
            w.join(timeout=30 * SLOW)
            c.close()
            results.append((total, end))
        return results

    direct, relayed, _ = both_ways(workdir, run, backends, copy, handler, client)
    assert all(total == len(answer) for total, _ in direct)
    for i, (total, end) in enumerate(relayed):
        assert total == len(answer), f"run {i}: {total} of {len(answer)} bytes ({end})"
        assert end in ("eof", "reset")


@pytest.mark.parametrize("copy", COPY_MODES)
def test_client_resets_mid_reply_after_its_whole_request(workdir, run, backends, copy):
    """The client sends a 4 MiB request, reads a little of the reply and
    closes with the rest unread (a reset). The backend, reading slowly,
    still gets every byte of the request, then EOF or a reset: never a
    truncated request without an error."""
    request = pattern(4 << 20, 7)
    want = (len(request), hashlib.sha256(request).hexdigest())
    seen = []

    def handler(conn, _):
        w = Writer(conn, limit=64 << 20)
        digest, total = hashlib.sha256(), 0
        end = None
        while end is None:
            time.sleep(0.002)
            try:
                data = conn.recv(64 * 1024)
            except ConnectionResetError:
                end = "reset"
                break
            if not data:
                end = "eof"
                break
            digest.update(data)
            total += len(data)
        w.join(timeout=30 * SLOW)
        seen.append(((total, digest.hexdigest()), end))

    def client(path):
        before = len(seen)
        for _ in range(REPEAT):
            c = connect(path, timeout=30)
            c.sendall(request)
            c.recv(1000)
            c.close()
        wait_for(lambda: len(seen) == before + REPEAT, 30, "the backend to see every request end")
        return seen[before:]

    direct, relayed, _ = both_ways(workdir, run, backends, copy, handler, client)
    assert all(got == want for got, _ in direct), "the oracle itself lost bytes"
    for i, (got, end) in enumerate(relayed):
        assert got == want, f"run {i}: the backend got {got[0]} of {want[0]} bytes, then {end}"
        assert end in ("eof", "reset")
