#!/usr/bin/env python3
"""Stand-in for the Docker socket in the boot test: a Unix socket server
that reads each connection to EOF, then sends every byte back and closes.
Answering only after EOF proves the relay carries the peer's half-close.

    echo_backend.py SOCKET_PATH SECONDS    (exits by itself after SECONDS)
"""
import os
import socket
import socketserver
import sys
import threading


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        chunks = []
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            chunks.append(data)
        self.request.sendall(b"".join(chunks))
        self.request.shutdown(socket.SHUT_WR)


def main():
    path, lifetime = sys.argv[1], float(sys.argv[2])
    if os.path.exists(path):
        os.unlink(path)
    socketserver.ThreadingUnixStreamServer.daemon_threads = True
    server = socketserver.ThreadingUnixStreamServer(path, Echo)
    os.chmod(path, 0o660)
    threading.Timer(lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
