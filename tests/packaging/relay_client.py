#!/usr/bin/env python3
"""The peer in the boot test: connect to rdd-guest, send SIZE random bytes,
half-close, and check that the same bytes come back (the backend echoes
after EOF). Exit 0 on a byte-exact echo.

    relay_client.py vsock:CID:PORT|unix:PATH SIZE [--hold READY_FILE GO_FILE]

--hold: after sending the first half, create READY_FILE and wait (up to 30 s)
for GO_FILE before sending the rest; the test restarts the unit meanwhile.
"""
import hashlib
import os
import socket
import sys
import time


def recv_to_eof(s):
    """Everything the socket delivers until EOF."""
    got = bytearray()
    while True:
        data = s.recv(65536)
        if not data:
            return bytes(got)
        got += data


def main():
    where, size = sys.argv[1], int(sys.argv[2])
    hold = sys.argv[4:6] if len(sys.argv) > 3 and sys.argv[3] == "--hold" else None
    payload = os.urandom(size)
    kind, _, rest = where.partition(":")
    if kind == "vsock":
        cid, port = rest.split(":")
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        address = (int(cid), int(port))
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = rest
    s.settimeout(30)
    s.connect(address)
    half = size // 2
    s.sendall(payload[:half])
    if hold:
        open(hold[0], "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(hold[1]):
            if time.monotonic() > deadline:
                print("no go file within 30 s")
                return 1
            time.sleep(0.05)
    s.sendall(payload[half:])
    s.shutdown(socket.SHUT_WR)
    got = recv_to_eof(s)
    s.close()
    want = hashlib.sha256(payload).hexdigest()
    have = hashlib.sha256(got).hexdigest()
    print(f"sent {size} bytes sha256 {want}; received {len(got)} bytes sha256 {have}")
    return 0 if got == payload else 1


if __name__ == "__main__":
    sys.exit(main())
