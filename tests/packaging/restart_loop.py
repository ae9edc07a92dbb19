#!/usr/bin/env python3
"""The client of the restart test: one request every 10 ms through rdd-guest
while the unit restarts, each a full request/reply with a checksum (the
backend echoes after EOF), until STOP_FILE exists or SECONDS pass.

    restart_loop.py unix:PATH STOP_FILE SECONDS

Prints one line: requests=N failed=N longest_ms=X, then one line per failed
request (what went wrong), and exits 0 only when none failed. A request that
takes long is not a failure: that is a client waiting in the backlog while
the daemon restarts; each is bounded by a 30 s timeout."""
import hashlib
import os
import socket
import sys
import time

from relay_client import recv_to_eof


def one_request(path, payload):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(path)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = recv_to_eof(s)
    finally:
        s.close()
    if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
        raise ValueError(f"{len(got)} of {len(payload)} bytes came back, or other bytes")


def main():
    where, stop_file, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    path = where.partition(":")[2]
    deadline = time.monotonic() + seconds
    requests = 0
    failures = []
    longest = 0.0
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        started = time.monotonic()
        payload = os.urandom(4096)
        try:
            one_request(path, payload)
        except (OSError, ValueError) as e:
            failures.append(f"request {requests}: {type(e).__name__}: {e}")
        took = time.monotonic() - started
        longest = max(longest, took)
        requests += 1
        time.sleep(max(0.0, 0.01 - took))
    print(f"requests={requests} failed={len(failures)} longest_ms={longest * 1000:.0f}", flush=True)
    for f in failures[:20]:
        print(f)
    return 0 if not failures and requests > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
