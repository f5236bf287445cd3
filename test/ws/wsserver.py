"""Starts lancer-serve (its /ws echo endpoint) on a free loopback port for the WebSocket tests,
and stops it, failing on a sanitizer report in its stderr (the tests also run under an
ASan+UBSan build). Shared by clients/python_clients.py and conformance.py.

The binary may also be a Python script taking lancer-serve's command line (a stand-in echo
server while developing); it is run with the interpreter running the tests.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
from serve_test import check_no_sanitizer_report, free_port  # noqa: E402

# How long a start may take: generous, for the ASan build on a busy machine.
START_TIMEOUT = 30


class Server:
    """lancer-serve with `extra` arguments (--ws-deflate, --ws-max-message N) on a free port."""

    def __init__(self, binary, *extra):
        self.dir = tempfile.mkdtemp(prefix="lancer-ws-")
        root = os.path.join(self.dir, "root")
        os.makedirs(root)
        self.pid_file = os.path.join(self.dir, "lancer.pid")
        self.err_path = os.path.join(self.dir, "stderr.txt")
        self.port = free_port()
        self.extra = extra
        cmd = [binary, "--listen", f"tcp/127.0.0.1:{self.port}", "--root", root,
               "--out-pid", self.pid_file, "--log-level", "warn", "--access-log", "off", *extra]
        if binary.endswith(".py"):
            cmd.insert(0, sys.executable)
        # stderr goes to a file: a pipe nobody reads would fill and stall the server.
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.err)
        self.stderr = ""
        try:
            self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise

    def _stderr_now(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("lancer-serve exited at start: " + self._stderr_now())
            if os.path.exists(self.pid_file) and os.path.getsize(self.pid_file) > 0:
                return
            time.sleep(0.02)
        raise RuntimeError("lancer-serve did not start")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, check=True):
        """SIGTERM, wait; returns the exit code. Raises AssertionError on a sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if not self.err.closed:
            self.err.close()
            self.stderr = self._stderr_now()
            shutil.rmtree(self.dir, ignore_errors=True)
            if check:
                check_no_sanitizer_report(self.stderr)
        return code
