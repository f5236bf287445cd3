#!/usr/bin/env python3
"""Heap allocations per request over a real socket, for bench/http and bench/static.

  allocs.py PID PORT COUNT_FILE N [TARGET]

The server runs with bench/malloc_count preloaded: SIGURG makes it write its allocation
count to COUNT_FILE. One keep-alive connection is warmed up, then N requests for TARGET
(default /plaintext) go one at a time and N more pipelined 16 deep; the count is read before
and after each. Every answer must be a 200 with a Content-Length. Prints two numbers,
allocations per request one at a time and pipelined.
"""
import os
import signal
import socket
import sys
import time

REQ = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"  # TARGET replaces /plaintext


def allocations(pid, path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.kill(pid, signal.SIGURG)
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
    """Sends `depth` requests at once and reads their `depth` answers (each a 200, its body
    delimited by Content-Length)."""
    s.sendall(REQ * depth)
    got = b""
    for _ in range(depth):
        while b"\r\n\r\n" not in got:
            got += receive(s)
        head, got = got.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError("not a 200: " + head.decode(errors="replace"))
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("an answer without Content-Length")
        while len(got) < length:
            got += receive(s)
        got = got[length:]


def receive(s):
    chunk = s.recv(65536)
    if not chunk:
        raise RuntimeError("connection closed")
    return chunk


def per_request(pid, path, s, n, depth):
    before = allocations(pid, path)
    for _ in range(n // depth):
        exchange(s, depth)
    return (allocations(pid, path) - before) / (n // depth * depth)


def main():
    global REQ
    pid, port, path, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if len(sys.argv) > 5:
        REQ = REQ.replace(b"/plaintext", sys.argv[5].encode())
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
