#!/usr/bin/env python3
"""lancer-serve's handler modules ([[module]] in its configuration file), with real clients:
a module is loaded, reloaded when its file changes (new requests get the new code, a request
in flight finishes on the old, which is unloaded after it), kept when its new version fails,
and left alone with --no-reload.

usage: module_test.py PATH/TO/lancer-serve PATH/TO/test/http/modules (the built test modules)
"""
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from serve_test import free_port, stop_server, track

SERVE = None
MODULES = None


class Server:
    def __init__(self, module_file, *flags):
        self.dir = tempfile.mkdtemp(prefix="lancer-module-")
        self.port = free_port()
        self.module = os.path.join(self.dir, "greeter.so")
        self.install(module_file)
        self.path = os.path.join(self.dir, "lancer.toml")
        with open(self.path, "w") as f:
            f.write(f'listen = ["tcp/$4:{self.port}"]\naccess-log = "off"\n'
                    f'[[module]]\npath = "{self.module}"\n')
        self.pid_file = os.path.join(self.dir, "pid")
        self.err_path = os.path.join(self.dir, "stderr.txt")
        self.err = open(self.err_path, "wb")
        self.last_stderr = ""
        self.proc = subprocess.Popen([SERVE, "--config", self.path, "--out-pid", self.pid_file,
                                      *flags], stdout=subprocess.DEVNULL, stderr=self.err)
        track(self)
        deadline = time.time() + 10
        while not os.path.exists(self.pid_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("lancer-serve did not start: " + self.stderr_now())
            time.sleep(0.02)

    def install(self, name):
        """Puts test module `name` at the module's path, as a deployment does: written beside
        it, then renamed over it."""
        shutil.copyfile(os.path.join(MODULES, f"lib{name}.so"), self.module + ".new")
        os.rename(self.module + ".new", self.module)

    def stderr_now(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def greet(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", "/greet")
            r = c.getresponse()
            return r.status, r.read().decode(), r.getheader("X-Greeter")
        finally:
            c.close()

    def wait_greeting(self, expected, seconds=10):
        deadline = time.time() + seconds
        while time.time() < deadline:
            got = self.greet()
            if got[1] == expected:
                return got
            time.sleep(0.05)
        raise AssertionError(f"still {got!r}, not {expected!r}: {self.stderr_now()}")

    def copies_loaded(self):
        """How many private copies of a greeter module the process has mapped."""
        with open(f"/proc/{self.proc.pid}/maps") as f:
            return len({line.split()[4] for line in f if "memfd:" in line and "greeter" in line})

    def stop(self):
        return stop_server(self)


class ModuleTests(unittest.TestCase):
    def test_reload_new_code_for_new_requests_old_code_finishes_its_request(self):
        s = Server("greeter_v1")
        self.addCleanup(s.stop)
        self.assertEqual(s.greet(), (200, "greeter v1\n", "v1"))
        self.assertEqual(s.copies_loaded(), 1)

        # A request in flight on v1: its body is half sent.
        slow = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        self.addCleanup(slow.close)
        slow.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.3)

        s.install("greeter_v2")
        self.assertEqual(s.wait_greeting("greeter v2\n"), (200, "greeter v2\n", "v2"))
        self.assertIn("loaded again", s.stderr_now())
        self.assertEqual(s.copies_loaded(), 2)  # v1 stays for the request in flight

        slow.sendall(b"world")
        answer = b""
        while b"got helloworld" not in answer:
            more = slow.recv(4096)
            self.assertTrue(more, answer)
            answer += more
        self.assertIn(b"v1 got helloworld", answer)  # the old code finished it
        self.assertIn(b"X-Greeter: v1", answer)
        slow.close()
        deadline = time.time() + 5
        while s.copies_loaded() != 1:  # v1 goes with its last request
            self.assertLess(time.time(), deadline, "the old copy is still loaded")
            time.sleep(0.05)
        self.assertEqual(s.greet()[1], "greeter v2\n")

    def test_a_failing_new_version_keeps_the_previous_one(self):
        s = Server("greeter_v1")
        self.addCleanup(s.stop)
        self.assertEqual(s.greet()[1], "greeter v1\n")
        for bad, says in [("throws_always", "registration failed: refusing to register"),
                          ("bad_abi", "built for module ABI 1001"),
                          ("no_entry", "no entry point")]:
            before = len(s.stderr_now())
            s.install(bad)
            deadline = time.time() + 10
            while "the previous version stays" not in s.stderr_now()[before:]:
                self.assertLess(time.time(), deadline, s.stderr_now())
                time.sleep(0.05)
            self.assertIn(says, s.stderr_now()[before:])
            self.assertNotIn("every thread serves the new modules", s.stderr_now()[before:])
            self.assertEqual(s.greet()[1], "greeter v1\n")
        # A truncated file (caught while being written) is refused too.
        before = len(s.stderr_now())
        with open(os.path.join(MODULES, "libgreeter_v2.so"), "rb") as f:
            data = f.read()
        with open(s.module + ".new", "wb") as f:
            f.write(data[: len(data) // 2])
        os.rename(s.module + ".new", s.module)
        deadline = time.time() + 10
        while "the previous version stays" not in s.stderr_now()[before:]:
            self.assertLess(time.time(), deadline, s.stderr_now())
            time.sleep(0.05)
        self.assertEqual(s.greet()[1], "greeter v1\n")
        # Then the whole file: loaded.
        s.install("greeter_v2")
        s.wait_greeting("greeter v2\n")

    def test_no_reload_keeps_the_code_loaded_at_start(self):
        s = Server("greeter_v1", "--no-reload")
        self.addCleanup(s.stop)
        self.assertEqual(s.greet()[1], "greeter v1\n")
        s.install("greeter_v2")
        time.sleep(2.5)  # the poll would have seen it within about a second
        self.assertEqual(s.greet()[1], "greeter v1\n")
        self.assertNotIn("loaded again", s.stderr_now())

    def test_a_module_that_cannot_load_at_start_is_a_config_error(self):
        d = tempfile.mkdtemp(prefix="lancer-module-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "lancer.toml")
        for module, says in [("nowhere.so", "nowhere.so"),
                             (os.path.join(MODULES, "libthrows_always.so"), "throws_always")]:
            with open(path, "w") as f:
                f.write(f'[[module]]\npath = "{module}"\n')
            p = subprocess.run([SERVE, "-t", "--config", path], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertRegex(p.stderr, r"lancer\.toml:1:1: .*" + re.escape(says))


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    MODULES = os.path.abspath(sys.argv.pop(1))
    unittest.main()
