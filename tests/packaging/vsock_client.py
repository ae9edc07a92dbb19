#!/usr/bin/env python3
"""The host side in the boot test: connect to rdd-guest over AF_VSOCK,
send SIZE random bytes, half-close, and check that the same bytes come back
(the backend echoes after EOF). Exit 0 on a byte-exact echo.

    vsock_client.py CID PORT SIZE [--hold READY_FILE GO_FILE]

--hold: after sending the first half, create READY_FILE and wait (up to 30 s)
for GO_FILE before sending the rest; the test restarts the unit meanwhile.
"""
import hashlib
import os
import socket
import sys
import time


def main():
    cid, port, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    hold = sys.argv[5:7] if len(sys.argv) > 4 and sys.argv[4] == "--hold" else None
    payload = os.urandom(size)
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect((cid, port))
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
    got = bytearray()
    while True:
        data = s.recv(65536)
        if not data:
            break
        got += data
    s.close()
    want = hashlib.sha256(payload).hexdigest()
    have = hashlib.sha256(got).hexdigest()
    print(f"sent {size} bytes sha256 {want}; received {len(got)} bytes sha256 {have}")
    return 0 if got == payload else 1


if __name__ == "__main__":
    sys.exit(main())
