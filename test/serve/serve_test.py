#!/usr/bin/env python3
"""lancer-serve driven by real clients over real sockets: Python's http.client, raw sockets
for what clients will not send (pipelining, traversal), and curl.

usage: serve_test.py PATH/TO/lancer-serve
"""
import atexit
import http.client
import re
import resource
import os
import shutil
import signal
import socket
import subprocess
import sys
import select
import tempfile
import threading
import time
import unittest
import zlib

SERVE = None

# What a sanitizer's runtime prints when it finds something (ASan, UBSan, LSan, TSan).
SANITIZER_REPORT = re.compile(
    r"(ERROR: (Address|Leak|Thread|Memory)Sanitizer|WARNING: ThreadSanitizer|"
    r"runtime error: |UndefinedBehaviorSanitizer|SUMMARY: \w+Sanitizer)")


def check_no_sanitizer_report(stderr, who="lancer-serve"):
    """Fails the running test if `stderr` holds a sanitizer report: a child's report is the
    test's failure, whatever the child's exit code."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    m = SANITIZER_REPORT.search(stderr)
    if m:
        start = max(0, stderr.rfind("\n", 0, m.start()))
        raise AssertionError(f"{who} printed a sanitizer report:\n{stderr[start:start + 4000]}")


def ws_frame(opcode, payload, fin=True):
    """A masked client frame (RFC 6455 5.2)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read_frame(sock, pending=b""):
    """Reads one server frame; returns (opcode, payload, rest of the bytes read)."""
    buf = pending
    while True:
        if len(buf) >= 2:
            n, i = buf[1] & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, i = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127 and len(buf) >= 10:
                n, i = int.from_bytes(buf[2:10], "big"), 10
            if n < 126 or i > 2:
                if len(buf) >= i + n:
                    return buf[0] & 0x0F, buf[i:i + n], buf[i + n:]
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("the server closed the connection in a frame")
        buf += more


def ws_open(sock, path="/ws"):
    """The opening handshake; returns the bytes read after the 101's head."""
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        more = sock.recv(4096)
        if not more:
            raise ConnectionError("closed during the handshake")
        buf += more
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101 ") or b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" not in head:
        raise AssertionError(f"not a WebSocket handshake answer: {head!r}")
    return rest


def ws_echo_check(testcase, sock):
    """Over a connected socket: the handshake, a text and a binary echo, the close handshake
    (1000 comes back), then the server closes the connection."""
    rest = ws_open(sock)
    sock.sendall(ws_frame(1, "héllo".encode()) + ws_frame(2, bytes(range(256))))
    op, payload, rest = ws_read_frame(sock, rest)
    testcase.assertEqual((op, payload), (1, "héllo".encode()))
    op, payload, rest = ws_read_frame(sock, rest)
    testcase.assertEqual((op, payload), (2, bytes(range(256))))
    sock.sendall(ws_frame(8, (1000).to_bytes(2, "big") + b"bye"))
    op, payload, rest = ws_read_frame(sock, rest)
    testcase.assertEqual((op, payload[:2]), (8, (1000).to_bytes(2, "big")))
    testcase.assertEqual(rest + sock.recv(4096), b"")  # then the server closes


# Every lancer-serve a test started and has not stopped. A test that fails before its stop()
# would leave its server running after the run, holding its port; at exit each one left is
# stopped, named, and the run fails (a test that forgets its stop() is a failing test too).
_live = set()


def track(server):
    """Call right after starting server.proc: stop_server() forgets it again."""
    _live.add(server)


@atexit.register
def _stop_leftovers():
    if not _live:
        return
    for server in list(_live):
        sys.stderr.write(f"lancer-serve {server.proc.args} was not stopped by its test\n")
        try:
            stop_server(server)
        except AssertionError as e:
            sys.stderr.write(f"{e}\n")
    sys.stderr.flush()
    os._exit(1)


def stop_server(server):
    """Stops a started lancer-serve (`server` has proc, err, dir and stderr_now()): SIGTERM,
    a wait (a kill and a failure if it does not exit in 20 s), its stderr kept in
    server.last_stderr and its directory removed; fails the test on a sanitizer report.
    Returns the exit code."""
    _live.discard(server)
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=10)
        raise AssertionError("lancer-serve did not exit on SIGTERM")
    if not server.err.closed:
        server.err.close()
        server.last_stderr = server.stderr_now()
        shutil.rmtree(server.dir, ignore_errors=True)
        check_no_sanitizer_report(server.last_stderr)
    return code


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    """Starts lancer-serve on a free port with a small root; stops it at the end."""

    def __init__(self, *extra, listen=None, preexec=None, binary=None):
        self.dir = tempfile.mkdtemp(prefix="lancer-serve-")
        self.root = os.path.join(self.dir, "root")
        os.makedirs(self.root)
        with open(os.path.join(self.root, "index.html"), "w") as f:
            f.write("<h1>demo</h1>")
        with open(os.path.join(self.dir, "secret.txt"), "w") as f:
            f.write("SECRET")
        self.pid_file = os.path.join(self.dir, "lancer.pid")
        self.last_stderr = ""
        self.port = free_port()
        self.listen = listen or f"tcp/$4:{self.port}"
        # stderr goes to a file: a pipe nobody reads would fill and stall the server.
        self.err_path = os.path.join(self.dir, "stderr.txt")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [binary or SERVE, "--listen", self.listen, "--root", self.root, "--out-pid",
             self.pid_file, "--log-level", "warn", "--access-log", "off", *extra],
            stdout=subprocess.DEVNULL, stderr=self.err, preexec_fn=preexec)
        track(self)
        self.wait_ready()

    def stderr_now(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_ready(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("lancer-serve exited: " + self.stderr_now())
            if os.path.exists(self.pid_file):
                return
            time.sleep(0.02)
        raise RuntimeError("lancer-serve did not start")

    def connect(self, test):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        test.addCleanup(c.close)
        return c

    def raw(self, data, shutdown=True):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk

    def stop(self):
        """SIGTERM, wait, and return the exit code; fails the test on a sanitizer report."""
        return stop_server(self)


class ServeTests(unittest.TestCase):
    def setUp(self):
        self.s = Server()

    def tearDown(self):
        self.assertEqual(self.s.stop(), 0)

    def test_plaintext_and_keep_alive_on_one_connection(self):
        c = self.s.connect(self)
        c.request("GET", "/plaintext")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"Hello, World!"))
        self.assertEqual(r.getheader("Content-Type"), "text/plain")
        sock = c.sock
        c.request("GET", "/plaintext")
        r = c.getresponse()
        self.assertEqual(r.read(), b"Hello, World!")
        self.assertIs(c.sock, sock)  # the same connection carried both

    def test_chunked_upload_is_echoed(self):
        c = self.s.connect(self)
        c.request("POST", "/echo", body=iter([b"hello ", b"chunked ", b"world"]),
                  headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"hello chunked world"))

    def test_head_has_no_body(self):
        c = self.s.connect(self)
        c.request("HEAD", "/plaintext")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Length"), "13")
        self.assertEqual(r.read(), b"")

    def test_connection_close_is_honoured(self):
        out = self.s.raw(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                         shutdown=False)  # returns only because the server closed
        self.assertIn(b"Connection: close\r\n", out)
        self.assertTrue(out.endswith(b"Hello, World!"))

    def test_pipelined_requests_are_answered_in_order(self):
        out = self.s.raw(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                         b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 "), 3)
        self.assertLess(out.index(b"Hello, World!"), out.index(b"abc"))
        self.assertLess(out.index(b"abc"), out.index(b"404 Not Found"))

    def test_static_files_and_no_escape_from_the_root(self):
        c = self.s.connect(self)
        c.request("GET", "/")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"<h1>demo</h1>"))
        for target in [b"/../secret.txt", b"/%2e%2e/secret.txt", b"/..%2fsecret.txt",
                       b"/../../../../etc/passwd"]:
            out = self.s.raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            # The routes refuse a dot segment (also one made of escapes) with 400.
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), (target, out[:40]))
            self.assertNotIn(b"SECRET", out)
            self.assertNotIn(b"root:", out)

    def test_bad_request_gets_400_and_close(self):
        out = self.s.raw(b"GET / HTTP/1.1\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400"))
        self.assertIn(b"Connection: close", out)

    def test_curl(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl is not installed")
        out = subprocess.run([curl, "-sS", "--data-binary", "from curl",
                              f"http://127.0.0.1:{self.s.port}/echo"],
                             capture_output=True, timeout=20)
        self.assertEqual(out.stdout, b"from curl")

    def test_pid_file_holds_the_pid(self):
        with open(self.s.pid_file) as f:
            self.assertEqual(int(f.read()), self.s.proc.pid)

    def test_graceful_drain_finishes_the_request_in_flight(self):
        sock = socket.create_connection(("127.0.0.1", self.s.port), timeout=10)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.2)
        self.s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with self.assertRaises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", self.s.port), timeout=2).close()
        sock.sendall(b"world")
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        sock.close()
        self.assertTrue(out.startswith(b"HTTP/1.1 200"))
        self.assertTrue(out.endswith(b"helloworld"))
        self.assertEqual(self.s.proc.wait(timeout=20), 0)
        self.assertFalse(os.path.exists(self.s.pid_file))

    def test_a_drain_closes_websockets_with_1001(self):
        sock = socket.create_connection(("127.0.0.1", self.s.port), timeout=10)
        self.addCleanup(sock.close)
        rest = ws_open(sock)
        sock.sendall(ws_frame(1, b"before"))
        op, payload, rest = ws_read_frame(sock, rest)
        self.assertEqual((op, payload), (1, b"before"))
        started = time.time()
        self.s.proc.send_signal(signal.SIGTERM)
        op, payload, rest = ws_read_frame(sock, rest)  # the server's close, at once
        self.assertEqual((op, payload[:2]), (8, (1001).to_bytes(2, "big")))
        sock.sendall(ws_frame(8, payload[:2]))  # the client answers it
        self.assertEqual(rest + sock.recv(4096), b"")  # the server closes the connection
        self.assertEqual(self.s.proc.wait(timeout=20), 0)
        self.assertLess(time.time() - started, 5)  # long before the 10 s drain bound


class RoughClientTests(unittest.TestCase):
    """Clients that stop half-way, reset, half-close or pipeline, many at once, over real
    sockets: the server answers what it can, closes what it must, keeps no descriptor for a
    connection that is gone, and serves a normal request afterwards."""

    def setUp(self):
        self.s = Server()
        self.addCleanup(self.s.stop)

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.s.proc.pid}/fd"))

    def settled_fds(self, timeout=10):
        """The server's open descriptors once the count holds still for 0.2 s. A sanitizer's
        runtime opens a pipe for a moment now and then (UBSan, to probe memory), so a single
        reading may be two too many."""
        deadline = time.time() + timeout
        last, since = self.open_fds(), time.time()
        while time.time() < deadline:
            time.sleep(0.02)
            now = self.open_fds()
            if now != last:
                last, since = now, time.time()
            elif time.time() - since >= 0.2:
                break
        return last

    def test_rough_clients_leave_no_descriptor_behind(self):
        warm = self.s.connect(self)  # the server's first requests are behind it
        warm.request("GET", "/plaintext")
        warm.getresponse().read()
        warm.close()
        before = self.settled_fds()
        req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
        socks = []
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", self.s.port), timeout=10)
            kind = i % 5
            if kind == 0:    # half a request, then a reset
                s.sendall(req[:10])
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            elif kind == 1:  # a whole request and the half-close in one go
                s.sendall(req)
                s.shutdown(socket.SHUT_WR)
            elif kind == 2:  # three pipelined requests and a reset before reading
                s.sendall(req * 3)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            elif kind == 3:  # garbage
                s.sendall(b"\x00\x01 not http\r\n\r\n")
            else:            # a good request, answered and read
                s.sendall(req)
            socks.append((kind, s))
        answered = 0
        for kind, s in socks:
            if kind in (1, 3, 4):
                s.settimeout(10)
                got = b""
                while kind != 4 or b"Hello, World!" not in got:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                if kind == 3:
                    self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:40])
                elif b"Hello, World!" in got:
                    answered += 1
            s.close()
        self.assertEqual(answered, 120)  # every kind-1 and kind-4 client got its answer
        deadline = time.time() + 10
        while self.open_fds() > before and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.settled_fds(), before)
        c = self.s.connect(self)
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")


class FlagTests(unittest.TestCase):
    def run_serve(self, *args):
        out = subprocess.run([SERVE, *args], capture_output=True, timeout=20)
        check_no_sanitizer_report(out.stderr)
        return out

    def test_help_lists_every_flag(self):
        out = self.run_serve("--help")
        self.assertEqual(out.returncode, 0)
        for flag in [b"--listen", b"--root", b"--out-pid", b"--log-level", b"--drain",
                     b"--ws-max-message", b"--ws-deflate", b"--access-log-format", b"--config",
                     b"-t ", b"--health", b"--metrics", b"--trusted-proxy", b"--drain-delay",
                     b"--no-reload", b"SIGHUP reloads"]:
            self.assertIn(flag, out.stdout)

    def test_bad_flags_exit_2_with_one_line_and_the_usage(self):
        for args, says in [(["--bogus"], b"unknown option '--bogus'"),
                           (["--listen"], b"--listen needs a value"),
                           (["--log-level", "loud"],
                            b"--log-level: expected debug, info, warn, error or off, not 'loud'"),
                           (["--listen", "tcp/1.2.3:80"], b"not an IPv4 address"),
                           (["--root", "/no/such/dir"], b"is not a directory"),
                           (["--ws-max-message", "0"], b"--ws-max-message: expected a byte count"),
                           (["--ws-max-message", "-5"], b"--ws-max-message: expected a byte count"),
                           (["--ws-max-message", "1k"], b"--ws-max-message: expected a byte count"),
                           (["--access-log-format", "xml"], b"expected combined or json"),
                           (["--access-log", "/no/such/dir/log"], b"--access-log: cannot open the access log")]:
            out = self.run_serve(*args)
            self.assertEqual(out.returncode, 2, args)
            self.assertIn(says, out.stderr.splitlines()[0], args)

    def test_access_log_lines_and_reopen_on_sighup(self):
        logs = tempfile.mkdtemp(prefix="lancer-logs-")
        self.addCleanup(shutil.rmtree, logs, True)
        log = os.path.join(logs, "access.log")
        s = Server("--access-log", log)
        try:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            self.addCleanup(c.close)
            c.request("GET", "/plaintext?q=1", headers={"User-Agent": 'tester "1"'})
            c.getresponse().read()
            line = wait_lines(log, 1)[0]
            self.assertRegex(line, r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                                   r'"GET /plaintext\?q=1 HTTP/1\.1" 200 13 "-" "tester \\x221\\x22" '
                                   r'\d+\.\d{3}$')
            os.rename(log, log + ".1")  # rotation moves the file away...
            s.proc.send_signal(signal.SIGHUP)  # ...and SIGHUP makes the server open a new one
            deadline = time.time() + 10
            while not os.path.exists(log) and time.time() < deadline:
                time.sleep(0.02)
            c.request("GET", "/nope")
            c.getresponse().read()
            self.assertIn('"GET /nope HTTP/1.1" 404 10', wait_lines(log, 1)[0])
        finally:
            self.assertEqual(s.stop(), 0)

    def test_ipv6_loopback(self):
        try:
            port = free_port(socket.AF_INET6, "::1")
        except OSError:
            self.skipTest("no IPv6 loopback here")
        s = Server(listen=f"tcp/$6:{port}")
        try:
            c = http.client.HTTPConnection("::1", port, timeout=10)
            self.addCleanup(c.close)
            c.request("GET", "/plaintext")
            self.assertEqual(c.getresponse().read(), b"Hello, World!")
        finally:
            self.assertEqual(s.stop(), 0)


class ThreadTests(unittest.TestCase):
    def listeners_on(self, port):
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    for line in f.readlines()[1:]:
                        local, state = line.split()[1], line.split()[3]
                        count += state == "0A" and int(local.split(":")[1], 16) == port
            except FileNotFoundError:
                pass
        return count

    def test_threads_each_listen_serve_and_all_drain(self):
        s = Server("--threads", "3", listen="tcp/$4:0")
        try:
            # Port 0: worker 0 picks one, the others bind the same one.
            port = None
            deadline = time.time() + 5
            while port is None and time.time() < deadline:
                for line in open("/proc/net/tcp").readlines()[1:]:
                    f = line.split()
                    if f[3] == "0A" and f[1].startswith("0100007F:") and self.listeners_on(
                            int(f[1].split(":")[1], 16)) == 3:
                        port = int(f[1].split(":")[1], 16)
                time.sleep(0.05)
            self.assertIsNotNone(port, "three listeners on one port")
            conns = []
            for _ in range(12):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                self.addCleanup(c.close)
                c.request("GET", "/plaintext")
                self.assertEqual(c.getresponse().read(), b"Hello, World!")
                conns.append(c)
        finally:
            self.assertEqual(s.stop(), 0)  # SIGTERM drains every thread; exit 0


class FileLimitTests(unittest.TestCase):
    def test_more_clients_than_file_descriptors(self):
        limit = 48

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        s = Server("--log-level", "info", preexec=low_limit)  # "accept resumed" is info
        clients = []
        try:
            for _ in range(3 * limit):  # the kernel queues what the server cannot accept
                clients.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
            time.sleep(0.5)
            self.assertIsNone(s.proc.poll(), "the server died")
            # It stops short of the limit, and stays there through its retries: descriptors
            # are left for whatever needs one (a sanitizer's runtime makes a pipe to probe
            # memory, and reports false errors when it cannot).
            for _ in range(8):  # several pause periods (100 ms each)
                in_use = len(os.listdir(f"/proc/{s.proc.pid}/fd"))
                # It pauses 8 short of the limit; a sanitizer's runtime may hold one or two.
                self.assertLessEqual(in_use, limit - 4, "the server crept up to its file limit")
                time.sleep(0.1)
            served = 0
            for c in clients[:10]:  # some were accepted and are served normally
                c.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            for c in clients[:10]:
                served += b"Hello, World!" in c.recv(4096)
            self.assertGreater(served, 0)
        finally:
            for c in clients:
                c.close()
        time.sleep(1.0)  # descriptors come back; accepting resumes
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        self.addCleanup(c.close)
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")
        self.assertEqual(s.stop(), 0)
        err = s.last_stderr
        self.assertIn("accept paused: too many open files", err)
        # Said once per pause, not once per attempt: a descriptor freed mid-test may let one
        # accept through and the listener pause again, but then "resumed" comes in between.
        events = re.findall(r"accept (paused|resumed)", err)
        self.assertEqual(events[0], "paused")
        for a, b in zip(events, events[1:]):
            self.assertNotEqual(a, b, f"accept pause/resume not alternating: {events}")
        self.assertEqual(events[-1], "resumed")  # the final request was accepted


class SystemdTests(unittest.TestCase):
    """A small launcher in the manner of systemd: it opens the listening socket, starts
    lancer-serve with it as fd 3 (LISTEN_FDS=1, LISTEN_PID=its pid), and listens on a
    datagram socket named by NOTIFY_SOCKET for READY=1 and STOPPING=1."""

    def test_socket_activation_and_notify(self):
        work = tempfile.mkdtemp(prefix="lancer-systemd-")
        self.addCleanup(shutil.rmtree, work, True)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        notify_path = os.path.join(work, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(10)
        self.addCleanup(notify.close)

        def as_activated():
            if listener.fileno() != 3:
                os.dup2(listener.fileno(), 3)
            os.set_inheritable(3, True)  # Python opens sockets close-on-exec
            os.environ["LISTEN_FDS"] = "1"
            os.environ["LISTEN_PID"] = str(os.getpid())
            os.environ["NOTIFY_SOCKET"] = notify_path

        proc = subprocess.Popen([SERVE, "--systemd", "--log-level", "warn", "--access-log", "off"],
                                preexec_fn=as_activated, close_fds=False,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(proc.stderr.close)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())  # a failed check leaves none
        listener.close()  # the server holds it now
        self.assertEqual(notify.recv(256), b"READY=1")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(c.close)
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as w:
            ws_echo_check(self, w)  # WebSocket on a socket-activated listener
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(notify.recv(256), b"STOPPING=1")
        self.assertEqual(proc.wait(timeout=20), 0)
        check_no_sanitizer_report(proc.stderr.read())


class UnixSocketTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lancer-unix-")
        self.path = os.path.join(self.dir, "lancer.sock")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start(self):
        s = Server(listen=f"unix/{self.path}")
        self.addCleanup(s.stop)
        return s

    def test_curl_over_the_unix_socket(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl is not installed")
        s = self.start()
        out = subprocess.run([curl, "-sS", "--unix-socket", self.path, "http://x/plaintext"],
                             capture_output=True, timeout=20)
        self.assertEqual(out.stdout, b"Hello, World!")
        self.assertEqual(s.stop(), 0)
        self.assertFalse(os.path.exists(self.path))  # removed at exit

    def test_websocket_over_the_unix_socket(self):
        s = self.start()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect(self.path)
            ws_echo_check(self, c)
        self.assertEqual(s.stop(), 0)

    def test_stale_socket_is_replaced_and_live_one_refused(self):
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.path)
        stale.close()  # leaves the file, nobody listening
        s = self.start()
        self.assertTrue(os.path.exists(self.path))
        second = subprocess.run([SERVE, "--listen", f"unix/{self.path}"], capture_output=True,
                                timeout=20)
        check_no_sanitizer_report(second.stderr)
        self.assertNotEqual(second.returncode, 0)
        self.assertIn(b"another server is listening there", second.stderr)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:  # the first still serves
            c.connect(self.path)
            c.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertIn(b"Hello, World!", c.recv(4096))
        self.assertEqual(s.stop(), 0)


class SanitizerReportTests(unittest.TestCase):
    """The check every test runs on the server's stderr: a report fails the test, even when
    the process exits 0."""

    def test_a_report_on_stderr_fails_the_test(self):
        work = tempfile.mkdtemp(prefix="lancer-fake-serve-")
        self.addCleanup(shutil.rmtree, work, True)
        fake = os.path.join(work, "fake-serve")
        with open(fake, "w") as f:  # starts as lancer-serve does, reports, exits 0 on SIGTERM
            f.write("#!/bin/sh\n"
                    "trap 'exit 0' TERM\n"  # the report is out before it says it is ready
                    "echo '==42==ERROR: AddressSanitizer: heap-use-after-free on address 0x1' >&2\n"
                    "while [ $# -gt 0 ]; do [ \"$1\" = --out-pid ] && echo $$ > \"$2\"; shift; done\n"
                    "while :; do sleep 0.05; done\n")
        os.chmod(fake, 0o755)
        s = Server(binary=fake)
        with self.assertRaisesRegex(AssertionError, "heap-use-after-free"):
            s.stop()
        self.assertEqual(s.proc.returncode, 0)
        for text in ["t.cpp:3:5: runtime error: member call on address 0x1",
                     "WARNING: ThreadSanitizer: data race (pid=1)",
                     "==1==ERROR: LeakSanitizer: detected memory leaks"]:
            with self.assertRaises(AssertionError):
                check_no_sanitizer_report(text)
        check_no_sanitizer_report("[2026-11-29 INFO server] listening on tcp/127.0.0.1:8080")


class PortTests(unittest.TestCase):
    def test_a_second_server_on_a_taken_port_is_refused_unless_it_asks_to_share(self):
        s = Server()
        self.addCleanup(s.stop)
        second = subprocess.run([SERVE, "--listen", f"tcp/$4:{s.port}", "--access-log", "off"],
                                capture_output=True, timeout=20)
        check_no_sanitizer_report(second.stderr)
        self.assertEqual(second.returncode, 1)
        self.assertIn(b"another server is listening there", second.stderr)
        self.assertIn(b"--reuse-port", second.stderr)
        shared = Server("--reuse-port", listen=f"tcp/$4:{s.port}")
        self.assertEqual(shared.stop(), 0)
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)  # the first still serves
        self.addCleanup(c.close)
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")


def connection_dropped(sock):
    """True if the peer has closed `sock` (an EOF or a reset is waiting), as HTTP clients check
    a kept-alive connection before they reuse it."""
    ready, _, _ = select.select([sock], [], [], 0)
    if not ready:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def log_time(stderr, what):
    """The time, in seconds of the day, of the server's first log line containing `what`."""
    m = re.search(r"\[\d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d\.\d{3}) [A-Z]+ [^\n]*" +
                  re.escape(what), stderr)
    if not m:
        raise AssertionError(f"no log line with {what!r}")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def read_response(sock):
    """One whole response with a Content-Length body, or None if the connection ended (EOF
    or reset) before it was whole. Returns (head, body)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"\r\nContent-Length: (\d+)", head).group(1))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
        return head, body
    except (ConnectionResetError, BrokenPipeError):
        return None


def wait_lines(path, n, timeout=5.0):
    """The lines of `path` once it holds at least `n` (the access log writes in batches, at
    least once a second), or what it holds at the timeout."""
    deadline = time.time() + timeout
    while True:
        try:
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= n or time.time() > deadline:
            return lines
        time.sleep(0.02)


COMBINED_LINE = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
    r'"GET /plaintext\?n=\d+ HTTP/1\.1" 200 13 "-" "-" \d+\.\d{3}$')


class AccessLogTests(unittest.TestCase):
    """The access log over real sockets and signals: several worker threads write into one
    file, whole lines only; SIGTERM loses no line; SIGHUP rotation loses none either."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lancer-access-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.log = os.path.join(self.dir, "access.log")

    @staticmethod
    def client(port, counter, stop, total=None, depth=1):
        """Sends /plaintext requests over one keep-alive connection, `depth` at a time
        (pipelined), until `stop` is set or `total` were answered; adds what was sent and
        answered to `counter` (a dict guarded by its 'lock')."""
        sent = answered = 0
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            return
        buf = b""
        with sock:
            while not stop.is_set() and (total is None or answered < total):
                k = depth if total is None else min(depth, total - answered)
                try:
                    sock.sendall(b"".join(b"GET /plaintext?n=%d HTTP/1.1\r\nHost: x\r\n\r\n"
                                          % (sent + i) for i in range(k)))
                except OSError:
                    break
                sent += k
                got = 0
                while got < k:
                    n = buf.count(b"Hello, World!")
                    if n:
                        got += n
                        buf = buf[buf.rfind(b"Hello, World!") + 13:]
                        continue
                    try:
                        chunk = sock.recv(65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    buf += chunk
                answered += got
                if got < k:
                    break
        with counter["lock"]:
            counter["sent"] += sent
            counter["answered"] += answered

    def run_clients(self, port, kinds, stop, total=None):
        counter = {"lock": threading.Lock(), "sent": 0, "answered": 0}
        threads = [threading.Thread(target=self.client, args=(port, counter, stop, total, d))
                   for d in kinds]
        for t in threads:
            t.start()
        return counter, threads

    def test_n_requests_n_lines_after_sigterm_from_two_threads(self):
        s = Server("--access-log", self.log, "--threads", "2")
        stop = threading.Event()
        counter, threads = self.run_clients(s.port, [1, 1, 1, 16, 16, 4, 4, 1], stop, total=300)
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(counter["answered"], 8 * 300)
        self.assertEqual(s.stop(), 0)  # SIGTERM at once: the last batches are written at exit
        with open(self.log, "rb") as f:
            text = f.read().decode()
        self.assertTrue(text.endswith("\n"))
        lines = text.splitlines()
        self.assertEqual(len(lines), 8 * 300)
        for line in lines:
            self.assertRegex(line, COMBINED_LINE)  # whole lines: none torn or interleaved

    def test_sigterm_under_load_loses_no_json_line(self):
        import json
        s = Server("--access-log", self.log, "--access-log-format", "json", "--threads", "2",
                   "--drain", "5")
        stop = threading.Event()
        counter, threads = self.run_clients(s.port, [1] * 6 + [16] * 4, stop)
        time.sleep(1.0)
        s.proc.send_signal(signal.SIGTERM)
        code = s.proc.wait(timeout=20)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(s.stop(), 0)
        self.assertEqual(code, 0)
        with open(self.log, "rb") as f:
            lines = f.read().decode().splitlines()
        for line in lines:
            o = json.loads(line)
            self.assertEqual((o["method"], o["status"], o["bytes_sent"]), ("GET", 200, 13))
            self.assertGreaterEqual(o["request_time"], 0)
        print(f"\naccess log at SIGTERM under load: {counter['answered']} answered, "
              f"{len(lines)} lines, {counter['sent']} sent", file=sys.stderr)
        self.assertGreater(counter["answered"], 1000)
        # Every answer the clients read has its line; no line for a request never sent.
        self.assertGreaterEqual(len(lines), counter["answered"])
        self.assertLessEqual(len(lines), counter["sent"])

    def test_sighup_rotation_under_load_loses_no_line(self):
        s = Server("--access-log", self.log, "--threads", "2")
        stop = threading.Event()
        counter, threads = self.run_clients(s.port, [1] * 4 + [16] * 2, stop)
        time.sleep(0.5)
        os.rename(self.log, self.log + ".1")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while not os.path.exists(self.log) and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(s.stop(), 0)
        with open(self.log + ".1", "rb") as f:
            old = f.read().decode().splitlines()
        new = wait_lines(self.log, 1)
        print(f"\naccess log rotated under load: {len(old)} lines before, {len(new)} after",
              file=sys.stderr)
        self.assertGreater(len(old), 0)
        self.assertGreater(len(new), 0)
        self.assertEqual(len(old) + len(new), counter["answered"])
        for line in old + new:
            self.assertRegex(line, COMBINED_LINE)


class DrainTests(unittest.TestCase):
    """SIGTERM under a steady load, over real sockets: every request that reached the server
    (its connection was accepted: the server's debug log names the client's port) is answered;
    the process exits within --drain seconds and a small margin."""

    REQ = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"

    def client(self, port, kind, stop, log):
        """kind: 'keep' (keep-alive, back to back), 'pause' (keep-alive, 0-100 ms between
        requests) or 'new' (a connection per request). Appends (client_port, outcome) per
        request to `log`: answered, refused (connect failed) or unanswered."""
        rnd = __import__("random").Random(hash((kind, threading.get_ident())))
        sock = None
        while not stop.is_set():
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                except OSError:
                    log.append((None, "refused"))
                    if stop.wait(0.05):
                        break
                    continue
            me = sock.getsockname()[1]
            if connection_dropped(sock):  # as HTTP clients check a pooled connection
                sock.close()
                sock = None
                continue
            try:
                sock.sendall(self.REQ)
            except OSError:
                log.append((me, "unanswered"))
                sock.close()
                sock = None
                continue
            got = read_response(sock)
            if got is None:
                log.append((me, "unanswered"))
                sock.close()
                sock = None
                continue
            log.append((me, "answered"))
            if kind == "new" or b"Connection: close" in got[0]:
                sock.close()
                sock = None
            elif kind == "pause":
                time.sleep(rnd.uniform(0, 0.1))
        if sock is not None:
            sock.close()

    def test_no_request_that_reached_the_server_goes_unanswered(self):
        s = Server("--log-level", "debug", "--drain", "5")
        log = []
        stop = threading.Event()
        threads = [threading.Thread(target=self.client, args=(s.port, kind, stop, log))
                   for kind in ["keep"] * 30 + ["pause"] * 10 + ["new"] * 20]
        for t in threads:
            t.start()
        time.sleep(1.0)
        sent_at = time.time()
        s.proc.send_signal(signal.SIGTERM)
        code = s.proc.wait(timeout=20)
        took = time.time() - sent_at
        stop.set()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(s.stop(), 0)
        self.assertEqual(code, 0)
        accepted = set(int(p) for p in re.findall(r"accepted from 127\.0\.0\.1:(\d+)",
                                                   s.last_stderr))
        answered = sum(1 for _, o in log if o == "answered")
        lost = [p for p, o in log if o == "unanswered" and p in accepted]
        never_accepted = [p for p, o in log if o == "unanswered" and p not in accepted]
        print(f"\ndrain under load: {answered} answered, {len(lost)} lost, "
              f"{len(never_accepted)} on connections the kernel queued and the server never "
              f"accepted, {sum(1 for _, o in log if o == 'refused')} refused; exit after "
              f"{took:.2f} s", file=sys.stderr)
        self.assertGreater(answered, 100)
        self.assertEqual(lost, [], "requests that reached the server went unanswered")
        self.assertLess(took, 5.0)  # idle connections: drain_grace (1 s) and a linger, at most

    def test_drain_is_a_bound_even_for_a_body_that_keeps_coming(self):
        s = Server("--drain", "1", "--log-level", "info")
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        stop = threading.Event()

        def trickle():  # a chunk every 100 ms: progress, so no body timeout ever fires
            while not stop.wait(0.1):
                try:
                    sock.sendall(b"x" * 2000)
                except OSError:
                    return

        t = threading.Thread(target=trickle)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        time.sleep(0.3)
        sent_at = time.time()
        s.proc.send_signal(signal.SIGTERM)
        code = s.proc.wait(timeout=20)
        took = time.time() - sent_at
        self.assertEqual(s.stop(), 0)
        self.assertEqual(code, 0)
        # By the server's own clock: from the signal to its last line, --drain and the
        # documented margin (0.1 s), and a little for the log lines themselves.
        drained = (log_time(s.last_stderr, "server] exiting") -
                   log_time(s.last_stderr, "SIGTERM: draining")) % 86400  # across midnight
        self.assertGreaterEqual(drained, 0.99)
        self.assertLessEqual(drained, 1.0 + 0.1 + 0.05)
        self.assertLess(took, 5.0)  # and the process is gone soon after, even under TSan
        self.assertIn("cut off at the drain deadline", s.last_stderr)


def sanitized(binary):
    """True if `binary` was built with AddressSanitizer, whose allocator keeps freed memory
    in quarantine: its resident memory says nothing about lancer's own."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def vm_hwm_kib(pid):
    """The process's peak resident memory, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


class ForwardTests(unittest.TestCase):
    """--forward LISTEN=UPSTREAM over real sockets."""

    def upstream(self, serve_one):
        """A one-connection upstream on a free port, run by `serve_one(conn)` on a thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        self.addCleanup(listener.close)

        def run():
            conn, _ = listener.accept()
            with conn:
                serve_one(conn)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.addCleanup(t.join, 60)
        return listener.getsockname()[1]

    def test_forwarding_to_lancer_serves_own_http(self):
        port = free_port()
        s = Server()
        self.addCleanup(s.stop)
        fwd = Server("--forward", f"tcp/$4:{port}=tcp/localhost:{s.port}", listen=f"tcp/$4:{free_port()}")
        self.addCleanup(fwd.stop)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(c.close)
        for _ in range(3):  # one forwarded connection, kept alive end to end
            c.request("GET", "/plaintext")
            self.assertEqual(c.getresponse().read(), b"Hello, World!")

    def test_a_gibibyte_goes_through_both_ways_with_bounded_memory(self):
        size = 1 << 30
        chunk = bytes(range(256)) * 4096  # 1 MiB

        def count_then_answer(conn):  # reads to EOF, answers with the count and a CRC
            total, crc = 0, 0
            while True:
                b = conn.recv(1 << 20)
                if not b:
                    break
                total += len(b)
                crc = zlib.crc32(b, crc)
            conn.sendall(f"{total} {crc}".encode())

        up = self.upstream(count_then_answer)
        port = free_port()
        fwd = Server("--forward", f"tcp/$4:{port}=tcp/127.0.0.1:{up}")
        self.addCleanup(fwd.stop)
        before = vm_hwm_kib(fwd.proc.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            expected = 0
            for _ in range(size // len(chunk)):
                c.sendall(chunk)
                expected = zlib.crc32(chunk, expected)
            c.shutdown(socket.SHUT_WR)  # passed on as a FIN: the upstream answers
            reply = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                reply += b
        self.assertEqual(reply, f"{size} {expected}".encode())
        grew = vm_hwm_kib(fwd.proc.pid) - before
        if not sanitized(SERVE):
            self.assertLess(grew, 16 * 1024, f"lancer-serve grew by {grew} KiB forwarding 1 GiB")

    def test_a_slow_reader_holds_the_upstream_back(self):
        size = 256 << 20
        chunk = b"x" * (1 << 20)

        def pour(conn):
            for _ in range(size // len(chunk)):
                conn.sendall(chunk)

        up = self.upstream(pour)
        port = free_port()
        fwd = Server("--forward", f"tcp/$4:{port}=tcp/127.0.0.1:{up}")
        self.addCleanup(fwd.stop)
        before = vm_hwm_kib(fwd.proc.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
            time.sleep(1.0)  # reads nothing for a second: the upstream must wait
            held = vm_hwm_kib(fwd.proc.pid) - before
            got = 0
            while got < size:
                b = c.recv(1 << 20)
                if not b:
                    break
                got += len(b)
        self.assertEqual(got, size)
        if not sanitized(SERVE):
            self.assertLess(held, 8 * 1024, f"lancer-serve buffered {held} KiB for a slow reader")

    def test_an_unreachable_upstream_closes_the_client_with_a_log_line(self):
        closed = free_port()  # nothing listens there
        port = free_port()
        fwd = Server("--forward", f"tcp/$4:{port}=tcp/127.0.0.1:{closed}")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            try:
                self.assertEqual(c.recv(100), b"")
            except ConnectionResetError:
                pass
        self.assertEqual(fwd.stop(), 0)
        self.assertIn(f"upstream tcp/127.0.0.1:{closed}: Connection refused", fwd.last_stderr)

    def test_a_bad_rule_is_refused_with_the_usage(self):
        out = subprocess.run([SERVE, "--forward", "tcp/$4:9000"], capture_output=True, timeout=20)
        check_no_sanitizer_report(out.stderr)
        self.assertEqual(out.returncode, 2)
        self.assertIn(b"--forward: expected LISTEN=UPSTREAM", out.stderr)


class CgiTests(unittest.TestCase):
    """--cgi PREFIX=DIR over TCP, with python3 and sh scripts, curl and http.client."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lancer-cgi-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.script("form.py", "#!/usr/bin/env python3\n"
                    "import os, sys\n"
                    "body = sys.stdin.read()\n"
                    "print('Content-Type: text/plain')\n"
                    "print('X-Method: ' + os.environ['REQUEST_METHOD'])\n"
                    "print()\n"
                    "print(os.environ['QUERY_STRING'] + '|' + os.environ.get('PATH_INFO', '') + '|' "
                    "+ body)\n")
        self.script("fail.sh", "#!/bin/sh\necho 'broken script' >&2\nexit 3\n")
        self.s = Server("--cgi", f"/cgi-bin/={self.dir}")

    def tearDown(self):
        self.assertEqual(self.s.stop(), 0)

    def script(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)

    def test_a_python_script_answers_with_its_body_and_fields(self):
        c = self.s.connect(self)
        c.request("POST", "/cgi-bin/form.py/extra/path?a=1", body=b"posted")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("X-Method"), "POST")
        self.assertEqual(r.read(), b"a=1|/extra/path|posted\n")
        c.request("GET", "/plaintext")  # the connection is still good after a CGI answer
        self.assertEqual(c.getresponse().read(), b"Hello, World!")

    def test_curl_and_a_failing_script(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl is not installed")
        out = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                              f"http://127.0.0.1:{self.s.port}/cgi-bin/fail.sh"],
                             capture_output=True, timeout=20)
        self.assertEqual(out.stdout, b"502")
        self.assertEqual(self.s.stop(), 0)
        self.assertIn("broken script", self.s.last_stderr)
        self.assertIn("cgi fail.sh: bad output: no output", self.s.last_stderr)


class ProxyTests(unittest.TestCase):
    """--proxy PREFIX=UPSTREAM over TCP: in front of a second lancer-serve, and of Python's
    http.server."""

    def test_in_front_of_another_lancer_serve(self):
        up = Server()
        self.addCleanup(up.stop)
        s = Server("--proxy", f"/=tcp/localhost:{up.port}")
        self.addCleanup(s.stop)
        c = s.connect(self)
        for body in [b"one", b"two" * 10000, b""]:  # bodies both ways, one kept-alive connection
            c.request("POST", "/echo", body=body)
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (200, body))
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")
        c.request("POST", "/echo", body=iter([b"chunk", b"ed"]), encode_chunked=True)
        self.assertEqual(c.getresponse().read(), b"chunked")

    def test_in_front_of_python_http_server_with_forwarding_fields(self):
        import http.server
        seen = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                seen.update(self.headers.items())
                body = b"from python"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=upstream.serve_forever, daemon=True)
        t.start()
        self.addCleanup(upstream.server_close)
        self.addCleanup(upstream.shutdown)
        s = Server("--proxy", f"/py/=tcp/127.0.0.1:{upstream.server_address[1]}")
        self.addCleanup(s.stop)
        c = s.connect(self)
        c.request("GET", "/py/page", headers={"Host": "site.example", "Connection": "keep-alive"})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"from python"))
        self.assertEqual(seen.get("X-Forwarded-For"), "127.0.0.1")
        self.assertEqual(seen.get("X-Forwarded-Proto"), "http")
        self.assertEqual(seen.get("Forwarded"), 'for=127.0.0.1;proto=http;host="site.example"')
        self.assertEqual(seen.get("Host"), "site.example")
        c.request("GET", "/plaintext")  # not under the prefix: lancer-serve's own route
        self.assertEqual(c.getresponse().read(), b"Hello, World!")

    def test_an_upstream_that_is_down_gets_502(self):
        s = Server("--proxy", f"/=tcp/127.0.0.1:{free_port()}")
        c = s.connect(self)
        c.request("GET", "/anything")
        r = c.getresponse()
        self.assertEqual(r.status, 502)
        r.read()
        # A proxy of "/" takes the built-in routes' paths too: nothing is answered locally.
        for method, path in [("GET", "/plaintext"), ("POST", "/echo"), ("GET", "/ws"),
                             ("GET", "/echo/x")]:
            c.request(method, path, body=b"x" if method == "POST" else None)
            r = c.getresponse()
            self.assertEqual((path, r.status), (path, 502))
            r.read()
        self.assertEqual(s.stop(), 0)
        self.assertIn("Connection refused (502)", s.last_stderr)


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
