#!/usr/bin/python3
"""Raw HTTP/1.1 upgrade through a Docker API socket, without the docker CLI.

Usage: upgrade.py SOCKET IMAGE NAME

Creates container NAME (stdin open, closed after the first attach ends),
attaches to it with "Connection: Upgrade" / "Upgrade: tcp", starts it, then
over the upgraded connection sends a line, reads its echo, half-closes the
write side and reads until EOF. The container runs `cat; echo bye`, so the
half-close must reach its stdin for "bye" to come back.

Prints a transcript that does not depend on which socket was used, so the
caller can compare the result through rdd-guest with the direct result.
Exit status 0 when every step behaved, 1 otherwise.
"""

import json
import socket
import sys
import time

TIMEOUT = 20.0


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    return s


def read_head(s):
    """Read up to the end of the HTTP header; return (head, leftover bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("EOF before the end of the HTTP header")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def request(path, method, url, body=None):
    """One plain HTTP/1.1 request on its own connection; return (status, body)."""
    s = connect(path)
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(
        (f"{method} {url} HTTP/1.1\r\nHost: docker\r\n"
         f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
         "Connection: close\r\n\r\n").encode() + data)
    head, rest = read_head(s)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    s.close()
    status = int(head.split(" ", 2)[1])
    if "transfer-encoding: chunked" in head.lower():
        rest = dechunk(rest)
    return status, rest


def dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def read_frames(s, buf, until=None):
    """Read Docker's multiplexed stream (8-byte headers) until `until` has been
    seen on stdout or EOF; return (list of (stream, payload), leftover, eof)."""
    frames = []
    out = b""
    while True:
        while len(buf) >= 8:
            stream, size = buf[0], int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                break
            frames.append((stream, buf[8:8 + size]))
            if stream == 1:
                out += buf[8:8 + size]
            buf = buf[8 + size:]
        if until is not None and until in out:
            return frames, buf, False
        chunk = s.recv(65536)
        if not chunk:
            return frames, buf, True
        buf += chunk


def main():
    sock, image, name = sys.argv[1], sys.argv[2], sys.argv[3]
    ok = True
    lines = []

    def step(what, good):
        nonlocal ok
        lines.append(("ok   " if good else "FAIL ") + what)
        ok = ok and good

    status, body = request(sock, "POST", f"/containers/create?name={name}", {
        "Image": image, "Cmd": ["sh", "-c", "cat; echo bye"],
        "OpenStdin": True, "StdinOnce": True, "AttachStdin": True,
        "AttachStdout": True, "AttachStderr": True, "Tty": False,
        "HostConfig": {"NetworkMode": "none"},
    })
    step(f"create status {status}", status == 201)
    if status != 201:
        print("\n".join(lines))
        print(body.decode(errors="replace"), file=sys.stderr)
        return 1
    cid = json.loads(body)["Id"]

    s = connect(sock)
    s.sendall(
        (f"POST /containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1 "
         "HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n"
         "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n").encode())
    head, rest = read_head(s)
    first = head.split("\r\n", 1)[0]
    hdrs = head.lower()
    step(f"attach answer: {first}", first.startswith("HTTP/1.1 101"))
    step("answer has Upgrade: tcp", "upgrade: tcp" in hdrs)

    status, body = request(sock, "POST", f"/containers/{cid}/start")
    step(f"start status {status}", status == 204)

    t0 = time.monotonic()
    s.sendall(b"ping through the upgrade\n")
    frames, rest, eof = read_frames(s, rest, until=b"ping through the upgrade\n")
    got = b"".join(p for st, p in frames if st == 1)
    step(f"echo came back: {got!r}", got == b"ping through the upgrade\n" and not eof)

    # Half-close: our EOF must reach the container's stdin, its answer must
    # still come back on the read side that stays open.
    s.shutdown(socket.SHUT_WR)
    frames, rest, eof = read_frames(s, rest)
    got = b"".join(p for st, p in frames if st == 1)
    step(f"after half-close: {got!r}, EOF {eof}", got == b"bye\n" and eof and not rest)
    s.close()
    elapsed = time.monotonic() - t0

    status, body = request(sock, "POST", f"/containers/{cid}/wait")
    code = json.loads(body).get("StatusCode") if status == 200 else None
    step(f"container exit status {code}", code == 0)
    status, _ = request(sock, "DELETE", f"/containers/{cid}?force=1")
    step(f"delete status {status}", status == 204)

    print("\n".join(lines))
    print(f"round trip {elapsed:.2f}s", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a timeout or a refused connection is a failure
        print(f"FAIL {type(e).__name__}: {e}")
        sys.exit(1)
