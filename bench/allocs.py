#!/usr/bin/env python3
"""Heap allocations per request over a real socket, for bench/http.

  allocs.py PID PORT COUNT_FILE N

The server runs with bench/malloc_count preloaded: SIGUSR2 makes it write its allocation
count to COUNT_FILE. One keep-alive connection is warmed up, then N requests go one at a time
and N more pipelined 16 deep; the count is read before and after each. Prints two numbers,
allocations per request one at a time and pipelined.
"""
import os
import signal
import socket
import sys
import time

REQ = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"
ANSWER = b"Hello, World!"


def allocations(pid, path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.kill(pid, signal.SIGUSR2)
    for _ in range(200):
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise RuntimeError("no allocation count from the server")


def exchange(s, depth):
    s.sendall(REQ * depth)
    got, seen = b"", 0
    while seen < depth:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        got += chunk
        seen = got.count(ANSWER)


def per_request(pid, path, s, n, depth):
    before = allocations(pid, path)
    for _ in range(n // depth):
        exchange(s, depth)
    return (allocations(pid, path) - before) / (n // depth * depth)


def main():
    pid, port, path, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(200):  # warm-up: buffers, pools and the first-use growth
        exchange(s, 1)
        exchange(s, 16)
    one = per_request(pid, path, s, n, 1)
    piped = per_request(pid, path, s, n, 16)
    print(f"{one:.4f} {piped:.4f}")
    s.close()


if __name__ == "__main__":
    main()
