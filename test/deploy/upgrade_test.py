#!/usr/bin/env python3
"""Upgrading lancer-serve's binary under load (SIGUSR2, src/serve/upgrade.hpp): the old process
hands its listening sockets to the new binary, which serves while the old one drains; not one
connection may be refused, and not one request may fail. Over TCP (two worker threads, so two
SO_REUSEPORT sockets) and over a Unix socket, with clients on keep-alive connections and clients
opening a connection per request. Prints a line of counts per transport.

usage: upgrade_test.py PATH/TO/lancer-serve [unittest arguments]
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
import load  # noqa: E402
from serve_test import check_no_sanitizer_report  # noqa: E402

SERVE = None


class Instance:
    """lancer-serve started from a copy of the binary in a directory of its own (so that the
    test can replace the file, as a package upgrade does), stderr to a file."""

    def __init__(self, test, listen, *extra):
        self.dir = tempfile.mkdtemp(prefix="lancer-upgrade-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.exe = os.path.join(self.dir, "lancer-serve")
        shutil.copy2(SERVE, self.exe)
        self.pid_file = os.path.join(self.dir, "lancer.pid")
        self.err_path = os.path.join(self.dir, "stderr.txt")
        self.pids = set()  # the processes started and not yet reaped, for the cleanup
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [self.exe, "--listen", listen, "--out-pid", self.pid_file, "--access-log", "off",
                 "--drain", "5", *extra], stdout=subprocess.DEVNULL, stderr=err)
        self.pids.add(self.proc.pid)
        test.addCleanup(self.kill_all)
        load.wait_for(lambda: load.read_pid(self.pid_file) == self.proc.pid, 10,
                      "lancer-serve to start")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def replace_binary(self, with_path):
        """Puts a copy of `with_path` where the binary was (a new file: a new inode), as an
        upgrade of the package would; returns its inode."""
        tmp = self.exe + ".new"
        shutil.copy2(with_path, tmp)
        os.rename(tmp, self.exe)
        return os.stat(self.exe).st_ino

    def upgrade(self, test):
        """SIGUSR2 to the serving process; waits for the new one to write the pid file and the
        old one to exit (0). Returns the new pid."""
        old = load.read_pid(self.pid_file)
        os.kill(old, signal.SIGUSR2)
        load.wait_for(lambda: load.read_pid(self.pid_file) not in (0, old), 20,
                      "the new process to be ready")
        new = load.read_pid(self.pid_file)
        self.pids.add(new)
        code = self.proc.wait(timeout=20) if old == self.proc.pid else load.reap(old, 20)
        if code is not None:
            self.pids.discard(old)
        test.assertEqual(code, 0, f"the old process exited with {code}:\n{self.stderr()}")
        return new

    def stop(self, pid):
        """SIGTERM to `pid` (a process this instance started); its exit code once reaped."""
        if pid == self.proc.pid:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=20)
        else:
            os.kill(pid, signal.SIGTERM)  # not reaped yet: still ours
            code = load.reap(pid, 20)
        if code is not None:
            self.pids.discard(pid)
        return code

    def kill_all(self):
        # Only processes not reaped yet: their pids cannot have been given to another.
        for pid in self.pids:
            if pid == self.proc.pid:
                if self.proc.poll() is None:
                    self.proc.kill()
                self.proc.wait(timeout=10)
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            load.reap(pid, 5)


class UpgradeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        load.become_subreaper()  # the new process is orphaned when the old one exits

    def upgrade_under_load(self, name, listen, target, *extra):
        s = Instance(self, listen, *extra)
        traffic = load.Load(target, keep=6, new=6).start()
        time.sleep(1.0)
        inode = s.replace_binary(SERVE)
        old = s.proc.pid
        new = s.upgrade(self)
        self.assertNotEqual(new, old)
        # The new process runs the file now at the path, not the one the old process ran.
        self.assertEqual(os.stat(f"/proc/{new}/exe").st_ino, inode)
        time.sleep(1.0)  # the new process alone serves the load for a while
        counts = traffic.stop()
        print(f"\n{counts.line('upgrade ' + name)}", file=sys.stderr)
        # And a second upgrade, of the process the first one started.
        newer = s.upgrade(self)
        self.assertEqual(s.stop(newer), 0)
        log = s.stderr()
        check_no_sanitizer_report(log)
        self.assertIn(f"taking over from pid {old}", log)
        self.assertIn(f"pid {new} serves now: draining", log)
        self.assertGreater(counts.answered, 200, counts.line(name))
        self.assertEqual(counts.refused, 0, f"{counts.line(name)}: {counts.errors}")
        self.assertEqual(counts.failed, 0, f"{counts.line(name)}: {counts.errors}")
        return s

    def test_tcp_with_two_threads(self):
        port = load.free_port()
        self.upgrade_under_load("tcp", f"tcp/$4:{port}", ("127.0.0.1", port), "--threads", "2")

    def test_unix(self):
        d = tempfile.mkdtemp(prefix="lancer-upgrade-sock-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "l.sock")
        self.upgrade_under_load("unix", f"unix/{path}", path)
        self.assertFalse(os.path.exists(path), "the last process left its socket file")

    def test_the_count_sees_a_plain_restart_refuse_connections(self):
        # The control: SIGTERM, then a new process, under the same load. The listening socket
        # closes in between, and the clients must see it.
        port = load.free_port()
        s = Instance(self, f"tcp/$4:{port}")
        traffic = load.Load(("127.0.0.1", port), keep=6, new=6).start()
        time.sleep(0.5)
        self.assertEqual(s.stop(s.proc.pid), 0)
        time.sleep(0.2)
        again = Instance(self, f"tcp/$4:{port}")
        time.sleep(0.5)
        counts = traffic.stop()
        print(f"\n{counts.line('restart without upgrade (control)')}", file=sys.stderr)
        self.assertEqual(again.stop(again.proc.pid), 0)
        self.assertGreater(counts.refused, 0)

    def test_a_new_binary_that_fails_leaves_the_old_one_serving(self):
        port = load.free_port()
        s = Instance(self, f"tcp/$4:{port}")
        broken = os.path.join(s.dir, "broken.sh")
        with open(broken, "w") as f:
            f.write("#!/bin/sh\nexit 3\n")
        os.chmod(broken, 0o755)
        s.replace_binary(broken)
        os.kill(s.proc.pid, signal.SIGUSR2)
        load.wait_for(lambda: "exited with status 3" in s.stderr(), 10, "the failure's log line")
        self.assertIn("ended before it was ready; serving on", s.stderr())
        self.assertEqual(load.read_pid(s.pid_file), s.proc.pid)
        counts = load.Load(("127.0.0.1", port), keep=1, new=1).start()
        time.sleep(0.3)
        counts = counts.stop()
        self.assertGreater(counts.answered, 0)
        self.assertEqual((counts.failed, counts.refused), (0, 0))
        # The failed child was reaped: no zombie is left under the old process.
        children = subprocess.run(["ps", "--ppid", str(s.proc.pid), "-o", "stat="],
                                  capture_output=True, text=True).stdout.split()
        self.assertEqual(children, [])
        self.assertEqual(s.stop(s.proc.pid), 0)
        check_no_sanitizer_report(s.stderr())


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
