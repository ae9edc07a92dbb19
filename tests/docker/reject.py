#!/usr/bin/python3
"""A large API request that the engine rejects at its first bytes.

Usage: reject.py SOCKET TRIES METHOD URL CONTENT-TYPE SIZE FIRST [expect]

Sends TRIES requests, each on its own connection: METHOD URL with a body of
SIZE bytes that starts with FIRST (the bytes the engine chokes on) followed
by "x" up to SIZE. With "expect", the request carries "Expect: 100-continue"
and the body is sent once the interim answer (or any answer) has come, or
after 2 s, as curl and Go's net/http do. The body is written from a second
thread while this one reads the answer, like any HTTP client: the engine
answers and closes after reading a few hundred KiB, the client's write then
fails (EPIPE) and the answer must still be readable.

Prints one line per try: every status line received (interim ones too) and
the final answer's body; nothing that differs between two runs (no Date).
Exit status 0 when every try got a complete final answer, 1 otherwise.
On stderr, per try: bytes of body sent, how the send ended, and how the
connection ended after the answer (EOF or reset), for the log.
"""

import socket
import sys
import threading
import time

TIMEOUT = 20.0          # any single wait; the caller bounds the whole run too


class Reader:
    """Buffered reads from a socket, remembering how the stream ended."""

    def __init__(self, s):
        self.s, self.buf, self.end = s, b"", None

    def fill(self):
        if self.end:
            return False
        try:
            chunk = self.s.recv(65536)
        except ConnectionResetError:
            self.end = "reset"
            return False
        except socket.timeout:
            self.end = "timeout"
            return False
        if not chunk:
            self.end = "EOF"
            return False
        self.buf += chunk
        return True

    def until(self, sep):
        while sep not in self.buf:
            if not self.fill():
                return None
        out, _, self.buf = self.buf.partition(sep)
        return out

    def take(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def read_answer(r):
    """One HTTP answer: (status line, headers dict, body) or None if cut."""
    head = r.until(b"\r\n\r\n")
    if head is None:
        return None
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    code = int(lines[0].split(" ", 2)[1])
    if 100 <= code < 200:
        return lines[0], hdrs, b""
    if "content-length" in hdrs:
        body = r.take(int(hdrs["content-length"]))
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = r.until(b"\r\n")
            if size is None:
                return None
            size = int(size.split(b";")[0], 16)
            if size == 0:
                r.until(b"\r\n")
                break
            part = r.take(size + 2)
            if part is None:
                return None
            body += part[:-2]
    else:
        body = r.take(1 << 30)   # until EOF
        body = r.buf if body is None else body
    if body is None:
        return None
    return lines[0], hdrs, body


def one_try(path, method, url, ctype, size, expect, body):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    s.sendall((f"{method} {url} HTTP/1.1\r\nHost: docker\r\n"
               f"Content-Type: {ctype}\r\nContent-Length: {size}\r\n"
               + ("Expect: 100-continue\r\n" if expect else "")
               + "\r\n").encode())
    r = Reader(s)
    seen = []
    go = threading.Event()
    sent = {"bytes": 0, "end": "not started"}

    def sender():
        # As curl and Go's net/http: wait (bounded) for the interim answer.
        go.wait(2.0 if expect else 0)
        view = memoryview(body)
        try:
            while sent["bytes"] < size:
                sent["bytes"] += s.send(view[sent["bytes"]:sent["bytes"] + (1 << 20)])
            sent["end"] = "all sent"
        except OSError as e:
            sent["end"] = type(e).__name__

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    answer = None
    while True:
        a = read_answer(r)
        go.set()
        if a is None:
            break
        seen.append(a[0])
        if a[0].split(" ", 2)[1].startswith("1"):
            continue
        answer = a
        break
    # How the connection ends after the answer: not compared, logged.
    s.settimeout(3.0)
    while r.fill():
        pass
    t.join(TIMEOUT)
    s.close()
    line = " | ".join(seen) if seen else "no answer"
    if answer is not None:
        line += " | " + answer[2].decode("latin-1").strip()
    else:
        line += " | (answer cut short)"
    detail = f"sent {sent['bytes']} ({sent['end']}), then {r.end}"
    return answer is not None, line, detail


def main():
    path, tries, method, url, ctype, size, first = sys.argv[1:8]
    expect = len(sys.argv) > 8 and sys.argv[8] == "expect"
    tries, size, first = int(tries), int(size), first.encode()
    body = first + b"x" * (size - len(first))
    good = 0
    for i in range(tries):
        try:
            ok, line, detail = one_try(path, method, url, ctype, size, expect, body)
        except OSError as e:
            ok, line, detail = False, f"FAIL {type(e).__name__}: {e}", ""
        good += ok
        print(f"try {i + 1}: {line}")
        print(f"try {i + 1}: {detail}", file=sys.stderr)
    print(f"{good} of {tries} got the answer", file=sys.stderr)
    return 0 if good == tries else 1


if __name__ == "__main__":
    sys.exit(main())
