#!/usr/bin/env python3
"""lancer-serve driven by real clients over real sockets: Python's http.client, raw sockets
for what clients will not send (pipelining, traversal), and curl.

usage: serve_test.py PATH/TO/lancer-serve
"""
import http.client
import re
import resource
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SERVE = None


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    """Starts lancer-serve on a free port with a small root; stops it at the end."""

    def __init__(self, *extra, listen=None, preexec=None):
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
        self.proc = subprocess.Popen(
            [SERVE, "--listen", self.listen, "--root", self.root, "--out-pid", self.pid_file,
             "--log-level", "warn", "--access-log", "off", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec)
        self.wait_ready()

    def wait_ready(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("lancer-serve exited: " + self.proc.stderr.read().decode())
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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self.proc.stdout.close()
        if not self.proc.stderr.closed:
            self.last_stderr = self.proc.stderr.read().decode()
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


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
            self.assertTrue(out.startswith(b"HTTP/1.1 404"), target)
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


class RoughClientTests(unittest.TestCase):
    """Clients that stop half-way, reset, half-close or pipeline, many at once, over real
    sockets: the server answers what it can, closes what it must, keeps no descriptor for a
    connection that is gone, and serves a normal request afterwards."""

    def setUp(self):
        self.s = Server()
        self.addCleanup(self.s.stop)

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.s.proc.pid}/fd"))

    def test_rough_clients_leave_no_descriptor_behind(self):
        before = self.open_fds()
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
        self.assertEqual(self.open_fds(), before)
        c = self.s.connect(self)
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")


class FlagTests(unittest.TestCase):
    def run_serve(self, *args):
        return subprocess.run([SERVE, *args], capture_output=True, timeout=20)

    def test_help_lists_every_flag(self):
        out = self.run_serve("--help")
        self.assertEqual(out.returncode, 0)
        for flag in [b"--listen", b"--root", b"--out-pid", b"--log-level", b"--drain"]:
            self.assertIn(flag, out.stdout)

    def test_bad_flags_exit_2_with_one_line_and_the_usage(self):
        for args, says in [(["--bogus"], b"unknown option '--bogus'"),
                           (["--listen"], b"--listen needs a value"),
                           (["--log-level", "loud"], b"unknown log level 'loud'"),
                           (["--listen", "tcp/1.2.3:80"], b"not an IPv4 address"),
                           (["--root", "/no/such/dir"], b"is not a directory")]:
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
            with open(log) as f:
                line = f.read().strip()
            self.assertRegex(line, r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                                   r'"GET /plaintext\?q=1 HTTP/1\.1" 200 13 "-" "tester \\x221\\x22"$')
            os.rename(log, log + ".1")  # rotation moves the file away...
            s.proc.send_signal(signal.SIGHUP)  # ...and SIGHUP makes the server open a new one
            deadline = time.time() + 10
            while not os.path.exists(log) and time.time() < deadline:
                time.sleep(0.02)
            c.request("GET", "/nope")
            c.getresponse().read()
            with open(log) as f:
                self.assertIn('"GET /nope HTTP/1.1" 404 10', f.read())
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
        listener.close()  # the server holds it now
        self.assertEqual(notify.recv(256), b"READY=1")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(c.close)
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(notify.recv(256), b"STOPPING=1")
        self.assertEqual(proc.wait(timeout=20), 0)


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

    def test_stale_socket_is_replaced_and_live_one_refused(self):
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.path)
        stale.close()  # leaves the file, nobody listening
        s = self.start()
        self.assertTrue(os.path.exists(self.path))
        second = subprocess.run([SERVE, "--listen", f"unix/{self.path}"], capture_output=True,
                                timeout=20)
        self.assertNotEqual(second.returncode, 0)
        self.assertIn(b"another server is listening there", second.stderr)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:  # the first still serves
            c.connect(self.path)
            c.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertIn(b"Hello, World!", c.recv(4096))
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
