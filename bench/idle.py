#!/usr/bin/env python3
"""Idle-connection figures for bench/http.

  idle.py memory PID PORT N   open N keep-alive connections, one request each, and print the
                              server's RSS growth per connection (bytes)
  idle.py cpu PID SECONDS     print the server's CPU time (ms) over SECONDS with no traffic
  idle.py hold PORT N         open N idle connections and hold them until stdin closes
"""
import os
import socket
import sys
import time

REQ = b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def open_conns(port, n, request):
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if request:
            s.sendall(REQ)
        conns.append(s)
    if request:
        for s in conns:
            got = b""
            while b"Hello, World!" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("connection closed")
                got += chunk
    return conns


def main():
    mode = sys.argv[1]
    if mode == "memory":
        pid, port, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        open_conns(port, 10, True)  # warm-up: first-use growth out of the way
        time.sleep(0.5)
        before = rss(pid)
        conns = open_conns(port, n, True)
        time.sleep(1.0)
        print((rss(pid) - before) // n)
        for s in conns:
            s.close()
    elif mode == "cpu":
        pid, seconds = int(sys.argv[2]), float(sys.argv[3])
        before = cpu_ms(pid)
        time.sleep(seconds)
        print(round(cpu_ms(pid) - before))
    elif mode == "hold":
        port, n = int(sys.argv[2]), int(sys.argv[3])
        conns = open_conns(port, n, False)
        print("holding", len(conns), flush=True)
        sys.stdin.read()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
