#!/usr/bin/env python3
"""lancer-serve's configuration file, its check (-t), its reload on SIGHUP, the health endpoint
with the drain delay, the metrics endpoint and the trusted proxies, with real clients.

usage: config_test.py PATH/TO/lancer-serve
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

from serve_test import check_no_sanitizer_report, free_port, stop_server, track

SERVE = None


def check(config_text, *flags, name="lancer.toml"):
    """Runs `lancer-serve -t` on `config_text`; returns (exit code, output, the file's path)."""
    d = tempfile.mkdtemp(prefix="lancer-config-")
    try:
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(config_text))
        os.makedirs(os.path.join(d, "www"))
        p = subprocess.run([SERVE, "-t", "--config", path, *flags], cwd=d, capture_output=True,
                           text=True, timeout=30)
        check_no_sanitizer_report(p.stderr)
        return p.returncode, p.stdout + p.stderr, path
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Server:
    """lancer-serve started with a configuration file in a directory of its own (with www/
    holding index.html); `write` rewrites the file, `reload` sends SIGHUP."""

    def __init__(self, config_text, *flags):
        self.dir = tempfile.mkdtemp(prefix="lancer-config-")
        self.www = os.path.join(self.dir, "www")
        os.makedirs(self.www)
        with open(os.path.join(self.www, "index.html"), "w") as f:
            f.write("www index\n")
        self.path = os.path.join(self.dir, "lancer.toml")
        self.pid_file = os.path.join(self.dir, "pid")
        self.log = os.path.join(self.dir, "access.log")
        self.write(config_text)
        self.err_path = os.path.join(self.dir, "stderr.txt")
        self.err = open(self.err_path, "wb")
        self.last_stderr = ""
        self.proc = subprocess.Popen(
            [SERVE, "--config", self.path, "--out-pid", self.pid_file, *flags], cwd=self.dir,
            stdout=subprocess.DEVNULL, stderr=self.err)
        track(self)
        deadline = time.time() + 10
        while not os.path.exists(self.pid_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("lancer-serve did not start: " + self.stderr_now())
            time.sleep(0.02)

    def write(self, config_text):
        # Written beside it and renamed over it, as an editor or a deployment does.
        with open(self.path + ".new", "w") as f:
            f.write(textwrap.dedent(config_text))
        os.rename(self.path + ".new", self.path)

    def stderr_now(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def reload(self, expect):
        """SIGHUP, then waits for `expect` in stderr (after what is there now)."""
        before = len(self.stderr_now())
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            if expect in self.stderr_now()[before:]:
                return self.stderr_now()[before:]
            time.sleep(0.02)
        raise AssertionError(f"no '{expect}' after SIGHUP: {self.stderr_now()[before:]}")

    def stop(self):
        return stop_server(self)


def get(port, path, host="x", body=None, method=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        h = {"Host": host, **(headers or {})}
        c.request(method or ("POST" if body is not None else "GET"), path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


class CheckTests(unittest.TestCase):
    """-t: a good configuration exits 0; each bad one exits 1 naming file:line:column."""

    def test_good(self):
        code, out, path = check("""
            listen = ["tcp/$4:0", "unix/lancer.sock"]
            threads = 2
            health = "/health"
            access-log = "off"
            proxy = { "/api/" = "tcp/127.0.0.1:9" }
            [limits]
            body = 4096
            idle-timeout = 2.5
            [[host]]
            names = "example.com, *.example.org"
              [[host.route]]
              prefix = "/"
              root = "www"
              autoindex = true
              cache-control = { "/assets/" = "max-age=60" }
        """)
        self.assertEqual(code, 0, out)
        self.assertIn("is good", out)

    def test_errors_name_the_place_and_what_was_expected(self):
        cases = [
            ('listen = ["tcp/$4:0"]\nthreds = 2\n',
             ":2:1: unknown key 'threds'; did you mean 'threads'?"),
            ('[[host]]\n[[host.route]]\nprefix = "/"\nroot = "www"\ntimeout = 2\n',
             ":2:1: timeout and connect-timeout are options of a proxy or a CGI directory"),
            ('[[host]]\n[[host.route]]\nprefix = "/"\nproxy = "tcp/$4:1"\ntimeout = "x"\n',
             ":5:11: timeout: expected a number, not a string"),
            ('threads = "many"\n', ":1:11: threads: expected a whole number from 1 to 256"),
            ("threads = 0\n", ":1:11: threads: expected a whole number from 1 to 256, not '0'"),
            ("autoindex = 1\n", ":1:13: autoindex: expected true or false, not an integer"),
            ('listen = ["tcp/nowhere"]\n', ":1:11: listen: 'tcp/nowhere'"),
            ("listen = [\n", ":1:12: "),  # the parser's own, with its place
            ("[limits]\nbody = -1\n", ":2:8: body: expected a whole number from 0"),
            ("[limits]\nbodie = 1\n", ":2:1: unknown key 'bodie' in [limits]"),
            ('[[host]]\nnames = "a"\n[[host.route]]\nprefix = "/"\nroot = "nowhere"\n',
             ":3:1: root 'nowhere' is not a directory"),
            ('[[host]]\n[[host.route]]\nprefix = "/"\nroot = "www"\nproxy = "tcp/$4:1"\n',
             ":2:1: a route needs exactly one of root, proxy or cgi"),
            ('[[host]]\n[[host.route]]\nprefix = "/"\nproxy = "tcp/$4:1"\nautoindex = true\n',
             ":2:1: index, autoindex, sendfile, precompressed, file-cache-valid, cache-control "
             "and mime are options of a root"),
            ('[[host]]\nnames = "a b"\n[[host.route]]\nprefix = "/"\nroot = "www"\n', ":1:1: "),
            ('[[module]]\npath = "nowhere.so"\n', ":1:1: "),
            ('drain = 1.5\n', ":1:9: drain: expected whole seconds"),
            ('[[host]]\n[[host.route]]\nprefix = "/a/"\nroot = "www"\n[[host.route]]\n'
             'prefix = "/a/"\nroot = "www"\n', ":5:1: "),  # the same route twice
        ]
        for text, expected in cases:
            with self.subTest(text=text):
                code, out, path = check(text)
                self.assertEqual(code, 1, out)
                self.assertIn(os.path.basename(path) + expected, out)

    def test_a_file_that_cannot_be_read_is_refused_with_why(self):
        d = tempfile.mkdtemp(prefix="lancer-config-")
        self.addCleanup(shutil.rmtree, d, True)
        os.makedirs(os.path.join(d, "a-directory"))
        for name, why in (("a-directory", "Is a directory"),
                          ("missing.toml", "No such file or directory")):
            with self.subTest(name=name):
                p = subprocess.run([SERVE, "-t", "--config", name], cwd=d, capture_output=True,
                                   text=True, timeout=30)
                check_no_sanitizer_report(p.stderr)
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertIn(f"lancer-serve: {name}: cannot read it: {why}", p.stderr)

    def test_an_access_log_or_pid_file_that_cannot_be_written_is_refused(self):
        # -t opens the access log as a start does (and says so if it cannot); a start whose
        # pid file cannot be written exits 1 rather than serve without one.
        code, out, _ = check('access-log = "nowhere/access.log"\n')
        self.assertEqual(code, 1, out)
        self.assertIn("lancer.toml:1:14: cannot open the access log nowhere/access.log", out)
        d = tempfile.mkdtemp(prefix="lancer-config-")
        self.addCleanup(shutil.rmtree, d, True)
        try:
            p = subprocess.run([SERVE, "--listen", f"tcp/$4:{free_port()}", "--access-log", "off",
                                "--out-pid", "nowhere/pid"], cwd=d, capture_output=True,
                               text=True, timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("lancer-serve served without its pid file")
        check_no_sanitizer_report(p.stderr)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot write the pid file nowhere/pid: No such file or directory",
                      p.stderr)

    def test_flags_are_checked_and_override_the_file(self):
        code, out, _ = check('threads = 2\n', "--threads", "0")
        self.assertEqual(code, 1)
        self.assertIn("--threads: expected a whole number from 1 to 256, not '0'", out)
        code, out, _ = check('threads = 0\n', "--threads", "2")  # the file's is never used...
        self.assertEqual(code, 1)  # ...but still checked: the file itself is wrong
        code, out, _ = check('threads = 2\n', "--threads", "3")
        self.assertEqual(code, 0, out)


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


class ReadmeTests(unittest.TestCase):
    """What the README shows of lancer-serve is what it does."""

    def test_the_usage_is_the_help(self):
        text = open(README).read()
        start = text.index("### lancer-serve\n\n```text\n") + len("### lancer-serve\n\n```text\n")
        shown = text[start:text.index("```\n", start)]
        helped = subprocess.run([SERVE, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(shown, helped.stdout)

    def test_the_example_configuration_is_good(self):
        text = open(README).read()
        section = text[text.index("### Configuration file"):]
        start = section.index("```toml\n") + len("```toml\n")
        example = section[start:section.index("```\n", start)]
        d = tempfile.mkdtemp(prefix="lancer-readme-")
        self.addCleanup(shutil.rmtree, d, True)
        for sub in ("www", "cgi-bin", "errors"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "errors", "404.html"), "w") as f:
            f.write("<h1>not here</h1>")
        with open(os.path.join(d, "lancer.toml"), "w") as f:
            f.write(example)
        p = subprocess.run([SERVE, "-t", "--config", "lancer.toml"], cwd=d, capture_output=True,
                           text=True, timeout=30)
        check_no_sanitizer_report(p.stderr)
        self.assertEqual((p.returncode, p.stdout), (0, "lancer-serve: the configuration in "
                                                       "lancer.toml is good\n"), p.stderr)


class ServeTests(unittest.TestCase):
    def test_hosts_routes_flags_over_file_and_limits(self):
        port = free_port()
        served = tempfile.mkdtemp(prefix="lancer-upstream-")
        self.addCleanup(shutil.rmtree, served, True)
        os.makedirs(os.path.join(served, "up"))
        with open(os.path.join(served, "up", "hello.txt"), "w") as f:
            f.write("from the upstream\n")
        free_port_for_upstream = free_port()
        up = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                               str(free_port_for_upstream)], cwd=served,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(up.wait)
        self.addCleanup(up.terminate)
        s = Server(f"""
            listen = ["tcp/$4:{free_port()}"]
            health = "/file-health"
            access-log = "off"
            log-level = "warn"
            [limits]
            body = 10
            [[host]]
            names = "files.test"
            no-fallback = true
              [[host.route]]
              prefix = "/"
              root = "www"
              [[host.route]]
              prefix = "/up/"
              proxy = "tcp/127.0.0.1:{free_port_for_upstream}"
        """, "--listen", f"tcp/$4:{port}", "--health", "/health")
        self.addCleanup(s.stop)
        self.assertEqual(get(port, "/", host="files.test"), (200, "www index\n"))
        self.assertEqual(get(port, "/plaintext", host="files.test")[0], 404)  # no fallback
        self.assertEqual(get(port, "/plaintext", host="other"), (200, "Hello, World!"))
        self.assertEqual(get(port, "/health"), (200, "ok\n"))  # the flag's, not the file's
        self.assertEqual(get(port, "/file-health")[0], 404)
        self.assertEqual(get(port, "/echo", body="0123456789")[0], 200)
        self.assertEqual(get(port, "/echo", body="0123456789a")[0], 413)  # [limits] body
        deadline = time.time() + 10
        while True:  # the upstream may take a moment to start
            status, body = get(port, "/up/hello.txt", host="files.test")
            if status == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual((status, body), (200, "from the upstream\n"))

    def proxy_route(self, prefix, upstream_port, options=""):
        """A server with one proxy route of every host; returns its port."""
        port = free_port()
        s = Server(f"""
            listen = ["tcp/$4:{port}"]
            access-log = "off"
            [[host]]
              [[host.route]]
              prefix = "{prefix}"
              proxy = "tcp/127.0.0.1:{upstream_port}"
              {options}
        """)
        self.addCleanup(s.stop)
        return port

    def test_a_route_of_every_host_takes_the_built_in_paths_under_it(self):
        port = self.proxy_route("/echo", free_port())  # nothing listens there: 502
        self.assertEqual(get(port, "/echo")[0], 502)
        self.assertEqual(get(port, "/echo/more")[0], 502)
        self.assertEqual(get(port, "/plaintext")[0], 200)  # not under it: the built-in one

    def test_a_proxy_route_times_out_with_504_at_its_timeout(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts (the kernel does), never answers
        self.addCleanup(silent.close)
        port = self.proxy_route("/slow/", silent.getsockname()[1], "timeout = 0.5")
        t0 = time.time()
        self.assertEqual(get(port, "/slow/x")[0], 504)
        self.assertLess(time.time() - t0, 5)
        self.assertGreater(time.time() - t0, 0.4)

    def test_reload_routes_limits_listeners_keeps_connections_refuses_bad(self):
        port_a, port_b = free_port(), free_port()
        base = """
            access-log = "off"
            log-level = "info"
            metrics = "/metrics"
        """
        s = Server(base + f"""
            listen = ["tcp/$4:{port_a}"]
            [limits]
            body = 10
            [[host]]
            names = "v.test"
              [[host.route]]
              prefix = "/"
              root = "www"
        """)
        self.addCleanup(s.stop)
        os.makedirs(os.path.join(s.dir, "www2"))
        with open(os.path.join(s.dir, "www2", "index.html"), "w") as f:
            f.write("www2 index\n")
        kept = http.client.HTTPConnection("127.0.0.1", port_a, timeout=10)
        self.addCleanup(kept.close)

        def on_kept(path, body=None, host="v.test"):
            kept.request("POST" if body is not None else "GET", path, body=body,
                         headers={"Host": host})
            r = kept.getresponse()
            return r.status, r.read().decode()

        self.assertEqual(on_kept("/"), (200, "www index\n"))
        sock = kept.sock  # http.client would connect again, silently, if this one closed
        self.assertEqual(get(port_a, "/echo", body="x" * 11)[0], 413)

        # A new configuration: another root, a larger body limit, port B instead of A.
        s.write(base + f"""
            listen = ["tcp/$4:{port_b}"]
            [limits]
            body = 100
            [[host]]
            names = "v.test"
              [[host.route]]
              prefix = "/"
              root = "www2"
        """)
        out = s.reload("SIGHUP: reloaded")
        self.assertIn(f"no longer listening on tcp/$4:{port_a}", out)
        self.assertIn(f"listening on tcp/$4:{port_b}", out)
        # The connection open on A is not dropped, and its next request gets the new routes
        # and limits.
        self.assertEqual(on_kept("/"), (200, "www2 index\n"))
        self.assertEqual(on_kept("/echo", "x" * 11, host="other"), (200, "x" * 11))
        self.assertIs(kept.sock, sock)
        self.assertEqual(get(port_b, "/", host="v.test"), (200, "www2 index\n"))
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port_a), timeout=5).close()

        # A configuration that fails to load is refused, logged, and the old one stays.
        s.write(base + f'listen = ["tcp/$4:{port_b}"]\nthreads = "x"\n')
        out = s.reload("the old one stays")
        self.assertIn("lancer.toml:6:11: threads: expected a whole number", out)
        self.assertEqual(on_kept("/"), (200, "www2 index\n"))
        self.assertIs(kept.sock, sock)
        self.assertEqual(get(port_b, "/", host="v.test"), (200, "www2 index\n"))
        # So is one whose routes cannot be made (a root that is no directory).
        s.write(base + f"""
            listen = ["tcp/$4:{port_b}"]
            [[host]]
              [[host.route]]
              prefix = "/"
              root = "gone"
        """)
        out = s.reload("refused, the old configuration stays")
        self.assertIn("root 'gone' is not a directory", out)
        self.assertEqual(get(port_b, "/", host="v.test"), (200, "www2 index\n"))
        # So is a path that is now a directory (not read as an empty file: the defaults).
        os.remove(s.path)
        os.makedirs(s.path)
        out = s.reload("the old one stays")
        self.assertIn("lancer.toml: cannot read it: Is a directory", out)
        self.assertEqual(get(port_b, "/", host="v.test"), (200, "www2 index\n"))
        metrics = get(port_b, "/metrics")[1]
        self.assertIn('lancer_reloads_total{result="ok"} 1', metrics)
        self.assertIn('lancer_reloads_total{result="failed"} 3', metrics)

    def test_a_reload_changes_the_drain(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts (the kernel does), never answers
        self.addCleanup(silent.close)
        port = free_port()
        conf = """
            listen = ["tcp/$4:{port}"]
            access-log = "off"
            drain = {drain}
            [[host]]
              [[host.route]]
              prefix = "/slow/"
              proxy = "tcp/127.0.0.1:{silent}"
              timeout = 1.5
        """
        s = Server(conf.format(port=port, drain=0, silent=silent.getsockname()[1]))
        self.addCleanup(s.stop)
        s.write(conf.format(port=port, drain=20, silent=silent.getsockname()[1]))
        s.reload("SIGHUP: reloaded")
        got = []

        def slow():
            try:
                got.append(get(port, "/slow/x")[0])
            except (OSError, http.client.HTTPException) as e:
                got.append(repr(e))

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)  # the request waits for the upstream
        s.proc.send_signal(signal.SIGTERM)
        t.join(timeout=30)
        # Drained for the reloaded 20 s, not the 0 s the process started with: the request in
        # flight gets its answer (the proxy's timeout) rather than being cut off.
        self.assertEqual(got, [504])
        self.assertEqual(s.proc.wait(timeout=30), 0)
        self.assertIn("draining 1 thread(s) for up to 20 s", s.stderr_now())

    def test_a_reload_while_draining_is_refused(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        port, port_b = free_port(), free_port()
        conf = """
            listen = ["tcp/$4:{port}"]
            access-log = "off"
            [[host]]
              [[host.route]]
              prefix = "/slow/"
              proxy = "tcp/127.0.0.1:{silent}"
              timeout = 1.5
        """
        s = Server(conf.format(port=port, silent=silent.getsockname()[1]))
        self.addCleanup(s.stop)
        got = []
        t = threading.Thread(target=lambda: got.append(get(port, "/slow/x")[0]))
        t.start()
        time.sleep(0.5)  # the request waits for the upstream
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while "draining 1 thread(s)" not in s.stderr_now() and time.time() < deadline:
            time.sleep(0.02)
        # A new listener would never serve (the server takes no connection while it drains):
        # the reload is refused, and said to be.
        s.write(conf.format(port=port_b, silent=silent.getsockname()[1]))
        out = s.reload("SIGHUP: draining, the configuration is not reloaded")
        self.assertNotIn("listening on", out)
        t.join(timeout=30)
        self.assertEqual(got, [504])
        self.assertEqual(s.proc.wait(timeout=30), 0)

    def test_health_says_draining_during_the_drain_delay(self):
        port = free_port()
        s = Server(f"""
            listen = ["tcp/$4:{port}"]
            health = "/health"
            drain-delay = 1.0
            access-log = "off"
        """)
        self.addCleanup(s.stop)
        self.assertEqual(get(port, "/health"), (200, "ok\n"))
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(kept.close)
        kept.request("GET", "/plaintext")
        kept.getresponse().read()
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        t0 = time.time()
        self.assertEqual(get(port, "/health"), (503, "draining\n"))
        self.assertEqual(get(port, "/plaintext"), (200, "Hello, World!"))  # still served
        kept.request("GET", "/plaintext")
        self.assertEqual(kept.getresponse().read(), b"Hello, World!")
        self.assertIsNone(s.proc.poll())
        self.assertEqual(s.proc.wait(timeout=10), 0)
        self.assertGreater(time.time() - t0, 0.5)  # not before the delay (1 s from SIGTERM)

    def test_metrics_count_what_was_served(self):
        port = free_port()
        s = Server(f"""
            listen = ["tcp/$4:{port}"]
            metrics = "/metrics"
            access-log = "off"
        """)
        self.addCleanup(s.stop)
        for _ in range(5):
            self.assertEqual(get(port, "/plaintext")[0], 200)
        self.assertEqual(get(port, "/echo", body="12345")[0], 200)
        self.assertEqual(get(port, "/nowhere")[0], 404)
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(kept.close)
        kept.request("GET", "/plaintext")
        self.assertEqual(kept.getresponse().read(), b"Hello, World!")
        status, text = get(port, "/metrics")
        self.assertEqual(status, 200)
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        # The scrape itself is counted once it is answered: not in its own text.
        self.assertEqual(samples['lancer_requests_total{code="2xx"}'], 7)
        self.assertEqual(samples['lancer_requests_total{code="4xx"}'], 1)
        self.assertEqual(samples["lancer_request_duration_seconds_count"], 8)
        self.assertEqual(samples['lancer_request_duration_seconds_bucket{le="+Inf"}'], 8)
        # The kept connection; the scrape's own once the gauge saw it (it is published at the
        # end of each scheduler turn).
        self.assertIn(samples["lancer_connections_open"], (1, 2))
        self.assertGreater(samples["lancer_received_bytes_total"], 7 * 30)
        self.assertGreater(samples["lancer_sent_bytes_total"], 5 * len("Hello, World!"))
        self.assertEqual(samples['lancer_reloads_total{result="ok"}'], 0)

    def test_trusted_proxy_decides_whose_x_forwarded_for_is_believed(self):
        port = free_port()
        s = Server(f"""
            listen = ["tcp/$4:{port}"]
            access-log = "access.log"
            access-log-format = "json"
        """)
        self.addCleanup(s.stop)
        t_port = free_port()
        t = Server(f"""
            listen = ["tcp/$4:{t_port}"]
            access-log = "access.log"
            access-log-format = "json"
            trusted-proxy = ["127.0.0.1"]
        """)
        self.addCleanup(t.stop)
        xff = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
        get(port, "/plaintext", headers=xff)
        get(t_port, "/plaintext", headers=xff)
        for server, expected in ((s, "127.0.0.1"), (t, "203.0.113.7")):
            server.proc.send_signal(signal.SIGHUP)  # writes the buffered lines
            deadline = time.time() + 10
            path = os.path.join(server.dir, "access.log")
            while time.time() < deadline:
                lines = open(path).read().splitlines() if os.path.exists(path) else []
                if lines:
                    break
                time.sleep(0.05)
            self.assertEqual(json.loads(lines[-1])["remote_addr"], expected)


class ThreadReloadTests(unittest.TestCase):
    """A reload with --threads 2: each worker thread gets its new service and listeners on its
    own thread (the TSan build runs this)."""

    def test_every_thread_serves_the_new_configuration(self):
        port_a, port_b = free_port(), free_port()
        conf = """
            threads = 2
            access-log = "off"
            log-level = "info"
            listen = [{listen}]
            [[host]]
              [[host.route]]
              prefix = "/files/"
              root = "{root}"
        """
        s = Server(conf.format(listen=f'"tcp/$4:{port_a}"', root="www"))
        self.addCleanup(s.stop)
        os.makedirs(os.path.join(s.dir, "www2"))
        with open(os.path.join(s.dir, "www2", "index.html"), "w") as f:
            f.write("www2 index\n")
        for _ in range(20):  # new connections, spread over both threads by the kernel
            self.assertEqual(get(port_a, "/files/"), (200, "www index\n"))
        s.write(conf.format(listen=f'"tcp/$4:{port_a}", "tcp/$4:{port_b}"', root="www2"))
        s.reload("SIGHUP: reloaded")  # said once every thread serves the new one
        for port in [port_a, port_b] * 10:
            self.assertEqual(get(port, "/files/"), (200, "www2 index\n"))


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    unittest.main()
