#!/usr/bin/env python3
"""lancer-serve deployed as deploy/ says: three instances (deploy/lancer-serve.toml) behind
nginx (deploy/nginx.conf) and behind HAProxy (deploy/haproxy.cfg), all on loopback, over TCP
and over Unix sockets. The deploy/ files are used as they are; only their {{NAME}} placeholders
are filled in (the README's Deployment section says which). Checked, and counted on one line
each:
  spread    N requests through each proxy reach each instance about N/3 times
  rolling   a rolling restart (each instance in turn: SIGTERM, its exit, a new start, healthy
            again) under a steady load of keep-alive and connection-per-request clients: no
            request fails and no connection is refused
  health    HAProxy takes an instance out (its health endpoint says draining after SIGTERM)
            while the instance still accepts, and sends it nothing from then on
  trusted   the access log shows X-Forwarded-For's client only behind a trusted proxy
The units in deploy/ are checked with systemd-analyze verify (they cannot run here), and
socket activation with systemd-socket-activate.

usage: deploy_test.py PATH/TO/lancer-serve [unittest arguments]
"""
import http.client
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "serve"))
import load  # noqa: E402
from serve_test import check_no_sanitizer_report  # noqa: E402

SERVE = None
DEPLOY = os.path.normpath(os.path.join(HERE, "..", "..", "deploy"))
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
N_SPREAD = 300


def render(name, values):
    """deploy/NAME with each {{KEY}} replaced by values[KEY]."""
    with open(os.path.join(DEPLOY, name)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{\w+\}\}", text)
    if left:
        raise AssertionError(f"deploy/{name}: nothing fills {left}")
    return text


def kill_group(proc):
    """SIGKILL to the process group `proc` leads (each process here starts a session of its
    own), then reaps it: nothing is left behind, even when a test fails half-way."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


class Instance:
    """One lancer-serve of the three: deploy/lancer-serve.toml, its own address, access log,
    pid file and stderr (appended to across restarts)."""

    def __init__(self, cluster, i, listen):
        self.cluster, self.i, self.listen = cluster, i, listen
        self.access_log = os.path.join(cluster.dir, f"access-{i}.log")
        self.pid_file = os.path.join(cluster.dir, f"lancer-{i}.pid")
        self.err_path = os.path.join(cluster.dir, f"stderr-{i}.txt")
        self.proc = None
        self.checked = 0  # how much of the stderr file was checked for sanitizer reports

    def start(self):
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [SERVE, "--config", os.path.join(DEPLOY, "lancer-serve.toml"),
                 "--listen", self.listen, "--access-log", self.access_log,
                 "--out-pid", self.pid_file],
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        self.cluster.procs.append(self.proc)
        load.wait_for(lambda: load.read_pid(self.pid_file) == self.proc.pid or
                      self.proc.poll() is not None, 10, f"instance {self.i} to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"instance {self.i} exited:\n{self.stderr()}")
        load.wait_for(lambda: self.get("/health")[0] == 200, 10, f"instance {self.i}'s health")

    def stop(self):
        """SIGTERM; waits for the exit (the drain delay, then the drain). Returns the code."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.check_stderr()
        return code

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def check_stderr(self):
        text = self.stderr()
        check_no_sanitizer_report(text[self.checked:], f"lancer-serve {self.i}")
        self.checked = len(text)

    def connect(self, source=None):
        if self.listen.startswith("unix/"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(self.listen[len("unix/"):])
            return s
        port = int(self.listen.rsplit(":", 1)[1])
        return socket.create_connection(("127.0.0.1", port), timeout=10,
                                        source_address=(source, 0) if source else None)

    def get(self, path, headers=None, source=None):
        """One request on a connection of its own: (status, body), (0, error) if it failed."""
        try:
            with self.connect(source) as s:
                return exchange(s, path, headers)
        except OSError as e:
            return 0, str(e)

    def lines(self):
        try:
            with open(self.access_log, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


def exchange(sock, path, headers=None):
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: lancer\r\nConnection: close\r\n{extra}\r\n"
                 .encode())
    got = load.read_response(sock)
    if not got:
        return 0, "no answer"
    return got[0], got[2]


class Cluster:
    """Three instances, nginx and HAProxy in front, on one transport ('tcp' or 'unix')."""

    def __init__(self, transport):
        self.transport = transport
        self.dir = tempfile.mkdtemp(prefix=f"lancer-deploy-{transport}-")
        self.procs = []
        self.instances = []
        for i in range(3):
            if transport == "tcp":
                listen = f"tcp/$4:{load.free_port()}"
            else:
                listen = f"unix/{self.dir}/{i}.sock"
            self.instances.append(Instance(self, i, listen))

    def upstream(self, i, proxy):
        listen = self.instances[i].listen
        if listen.startswith("unix/"):
            path = listen[len("unix/"):]
            return f"unix:{path}" if proxy == "nginx" else path
        return "127.0.0.1:" + listen.rsplit(":", 1)[1]

    def start(self):
        for inst in self.instances:
            inst.start()
        self.start_nginx()
        self.start_haproxy()

    def start_nginx(self):
        self.nginx_port = load.free_port()
        prefix = os.path.join(self.dir, "nginx")
        os.makedirs(os.path.join(prefix, "temp"))
        values = {"LISTEN": f"127.0.0.1:{self.nginx_port}"}
        values.update({f"LANCER_{i}": self.upstream(i, "nginx") for i in range(3)})
        with open(os.path.join(prefix, "lancer.conf"), "w") as f:
            f.write(render("nginx.conf", values))
        # The test's own top level around deploy/nginx.conf: everything under the prefix.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(f"""{user}worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    include lancer.conf;
}}
""")
        self.nginx_err = os.path.join(prefix, "error.log")
        with open(os.path.join(prefix, "stderr.txt"), "wb") as err:
            self.nginx = subprocess.Popen(
                [NGINX, "-p", prefix, "-c", "nginx.conf", "-e", self.nginx_err,
                 "-g", f"daemon off; pid {prefix}/nginx.pid; error_log {self.nginx_err} warn;"],
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        self.procs.append(self.nginx)
        self.wait_port(self.nginx_port, self.nginx, os.path.join(prefix, "stderr.txt"))

    def start_haproxy(self):
        self.haproxy_port = load.free_port()
        d = os.path.join(self.dir, "haproxy")
        os.makedirs(d)
        values = {"LISTEN": f"127.0.0.1:{self.haproxy_port}"}
        values.update({f"LANCER_{i}": self.upstream(i, "haproxy") for i in range(3)})
        with open(os.path.join(d, "lancer.cfg"), "w") as f:
            f.write(render("haproxy.cfg", values))
        self.stats = os.path.join(d, "stats.sock")
        with open(os.path.join(d, "global.cfg"), "w") as f:  # the test's own global section
            f.write(f"global\n    stats socket {self.stats} mode 600 level admin\n")
        with open(os.path.join(d, "stderr.txt"), "wb") as err:
            self.haproxy = subprocess.Popen(
                [HAPROXY, "-db", "-f", os.path.join(d, "global.cfg"), "-f",
                 os.path.join(d, "lancer.cfg")],
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        self.procs.append(self.haproxy)
        self.wait_port(self.haproxy_port, self.haproxy, os.path.join(d, "stderr.txt"))
        load.wait_for(lambda: all(self.haproxy_status(i) == "UP" for i in range(3)), 10,
                      "HAProxy to see the three instances up")

    def wait_port(self, port, proc, err_path):
        name = os.path.basename(os.path.dirname(err_path))

        def up():
            if proc.poll() is not None:
                with open(err_path, errors="replace") as f:
                    raise AssertionError(f"{name} exited: {f.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        load.wait_for(up, 10, f"{name} to listen")

    def haproxy_status(self, i):
        """HAProxy's status of instance i: UP, DOWN, 'UP 1/2' (going down), ..."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.stats)
            s.sendall(b"show stat\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        rows = out.decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        for row in rows[1:]:
            cells = dict(zip(header, row.split(",")))
            if cells.get("pxname") == "lancer" and cells.get("svname") == f"l{i}":
                return cells["status"]
        raise AssertionError(f"no l{i} in HAProxy's stats")

    def port(self, proxy):
        return self.nginx_port if proxy == "nginx" else self.haproxy_port

    def stop(self):
        """Every process this cluster started goes, whatever happened."""
        running = [i.proc for i in self.instances if i.proc is not None and i.proc.poll() is None]
        for p in running:
            p.send_signal(signal.SIGINT)  # drains at once, no delay
        for p in running:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            kill_group(p)
        for inst in self.instances:
            inst.check_stderr()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_lines(instances, pattern, n, timeout=5):
    """The access-log lines matching `pattern` in each instance's log, once there are `n` of
    them in all (the log writes in batches, at least once a second)."""
    rx = re.compile(pattern)
    found = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [[line for line in inst.lines() if rx.search(line)] for inst in instances]
        if sum(len(f) for f in found) >= n:
            break
        time.sleep(0.1)
    return found


class Deployment:
    """The scenarios, for one transport (TRANSPORT, set by the subclasses)."""
    TRANSPORT = None

    @classmethod
    def setUpClass(cls):
        missing = [n for n, p in [("nginx", NGINX), ("haproxy", HAPROXY)] if not p]
        if missing:
            raise unittest.SkipTest(f"{' and '.join(missing)} not installed")
        cls.cluster = Cluster(cls.TRANSPORT)
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()

    def name(self, what, proxy=None):
        return f"{what} {proxy + ' ' if proxy else ''}{self.TRANSPORT}"

    def spread(self, proxy):
        c = self.cluster
        tag = f"spread-{proxy}"
        conn = http.client.HTTPConnection("127.0.0.1", c.port(proxy), timeout=10)
        self.addCleanup(conn.close)
        for n in range(N_SPREAD):
            conn.request("GET", f"/plaintext?{tag}={n}")
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (200, b"Hello, World!"))
        found = wait_lines(c.instances, rf"\?{tag}=\d+ ", N_SPREAD)
        counts = [len(f) for f in found]
        print(f"\n{self.name('spread', proxy)}: {N_SPREAD} requests, "
              f"{' / '.join(map(str, counts))} per instance", file=sys.stderr)
        self.assertEqual(sum(counts), N_SPREAD)
        for n in counts:
            self.assertGreaterEqual(n, N_SPREAD // 4, f"uneven: {counts}")

    def test_spread_nginx(self):
        self.spread("nginx")

    def test_spread_haproxy(self):
        self.spread("haproxy")

    def rolling_restart(self, proxy):
        c = self.cluster
        traffic = load.Load(("127.0.0.1", c.port(proxy)), keep=4, new=4, pause=0.01,
                            path=f"/plaintext?rolling-{proxy}")
        traffic.start()
        try:
            time.sleep(0.5)
            restarted = []
            for inst in c.instances:
                self.assertEqual(inst.stop(), 0, inst.stderr()[-2000:])
                inst.start()
                restarted.append(len(inst.lines()))
                if proxy == "haproxy":
                    load.wait_for(lambda: c.haproxy_status(inst.i) == "UP", 10,
                                  f"HAProxy to see instance {inst.i} up again")
                time.sleep(0.3)
            time.sleep(1.5)  # the last one restarted takes requests again (nginx: fail_timeout)
        finally:
            counts = traffic.stop()
        print(f"\n{counts.line(self.name('rolling restart', proxy))}", file=sys.stderr)
        self.assertGreater(counts.answered, 100, counts.line(proxy))
        self.assertEqual((counts.failed, counts.refused), (0, 0),
                         f"{counts.line(proxy)}: {counts.errors}")

    def test_rolling_restart_nginx(self):
        self.rolling_restart("nginx")

    def test_rolling_restart_haproxy(self):
        self.rolling_restart("haproxy")

    def test_health_takes_the_instance_out_of_haproxy_before_it_drains(self):
        c = self.cluster
        inst = c.instances[1]
        sent = {}  # request number -> when it was sent
        counter = itertools.count()
        lock = threading.Lock()

        def path():
            with lock:
                n = next(counter)
                sent[n] = time.time()
            return f"/plaintext?health={n}"

        traffic = load.Load(("127.0.0.1", c.port("haproxy")), keep=3, new=3, pause=0.01,
                            path=path).start()
        try:
            time.sleep(0.5)
            signalled = time.time()
            inst.proc.send_signal(signal.SIGTERM)
            load.wait_for(lambda: c.haproxy_status(1).startswith("DOWN"), 5,
                          "HAProxy to take the instance out")
            down = time.time()
            # Taken out, the instance still serves a request sent to it directly: HAProxy
            # looked away before the instance stopped accepting.
            direct = inst.get("/plaintext?direct")
            self.assertEqual(inst.proc.wait(timeout=30), 0)
            stopped = time.time()
            inst.check_stderr()
            inst.start()
            load.wait_for(lambda: c.haproxy_status(1) == "UP", 10, "HAProxy to see it again")
        finally:
            counts = traffic.stop()
        numbers = [int(m.group(1)) for line in inst.lines()
                   for m in [re.search(r"\?health=(\d+) ", line)] if m]
        # Sent after HAProxy took it out (and a moment for those on their way), before the
        # new process started: none of them may have reached the old one.
        late = [n for n in numbers if down + 0.2 < sent[n] < stopped]
        print(f"\n{self.name('health haproxy')}: out of HAProxy {down - signalled:.2f} s after "
              f"SIGTERM, still serving directly then ({direct[0]}); {len(late)} requests sent "
              f"to it after; {counts.line('under load')}", file=sys.stderr)
        self.assertEqual(direct, (200, b"Hello, World!"))
        self.assertEqual(late, [])
        self.assertGreater(len(numbers), 0)  # it had its share before
        self.assertEqual((counts.failed, counts.refused), (0, 0), counts.errors)

    def client_in_log(self, tag, n=1):
        found = wait_lines(self.cluster.instances, re.escape(tag) + " ", n)
        lines = [line for f in found for line in f]
        self.assertEqual(len(lines), n, f"{tag}: {lines}")
        return lines[0].split(" ", 1)[0]

    def via(self, proxy, tag, source, forged):
        headers = {"X-Forwarded-For": "203.0.113.7"} if forged else {}
        with socket.create_connection(("127.0.0.1", self.cluster.port(proxy)), timeout=10,
                                      source_address=(source, 0)) as s:
            status, _ = exchange(s, f"/plaintext?{tag}", headers)
        self.assertEqual(status, 200)
        return self.client_in_log(f"?{tag}")

    def test_trusted_proxy(self):
        # deploy/lancer-serve.toml trusts 127.0.0.1, ::1 and Unix peers: the proxies. The
        # client here connects from 127.0.0.2, which nobody trusts, so a forged entry to the
        # left of the one the proxy adds for it is never believed.
        seen = {}
        for proxy in ("nginx", "haproxy"):
            seen[proxy] = self.via(proxy, f"trust-{proxy}", "127.0.0.2", forged=False)
            self.assertEqual(seen[proxy], "127.0.0.2")
            seen[proxy + " forged"] = self.via(proxy, f"trust-{proxy}-forged", "127.0.0.2",
                                               forged=True)
            self.assertEqual(seen[proxy + " forged"], "127.0.0.2")
            # From 127.0.0.1, a trusted address itself, the walk goes on past it to the
            # forged entry: trusting a proxy's address trusts every client that has it.
            seen[proxy + " from a trusted address"] = self.via(
                proxy, f"trust-{proxy}-local", "127.0.0.1", forged=True)
            self.assertEqual(seen[proxy + " from a trusted address"], "203.0.113.7")
        inst = self.cluster.instances[0]
        status, _ = inst.get("/plaintext?trust-direct", {"X-Forwarded-For": "203.0.113.7"},
                             source="127.0.0.2" if self.TRANSPORT == "tcp" else None)
        self.assertEqual(status, 200)
        seen["direct"] = self.client_in_log("?trust-direct")
        if self.TRANSPORT == "tcp":
            self.assertEqual(seen["direct"], "127.0.0.2")  # the peer: not a trusted proxy
        else:
            # A Unix peer is trusted ('unix'): whoever may open the socket is a proxy.
            self.assertEqual(seen["direct"], "203.0.113.7")
        print(f"\n{self.name('trusted proxy')}: " +
              "; ".join(f"{k}: {v}" for k, v in seen.items()), file=sys.stderr)


class TcpDeployment(Deployment, unittest.TestCase):
    TRANSPORT = "tcp"


class UnixDeployment(Deployment, unittest.TestCase):
    TRANSPORT = "unix"


class SystemdUnits(unittest.TestCase):
    """deploy/lancer-serve@.socket and .service pass systemd-analyze verify, in a root of
    their own holding the units, systemd's own units and the binary at the path ExecStart
    names (no systemd runs here: the units are read and checked, not started); lancer-serve
    --systemd with deploy/lancer-serve.toml serves a socket systemd-socket-activate passes."""

    def test_units_verify(self):
        if not SYSTEMD_ANALYZE or not os.path.isdir("/lib/systemd/system"):
            self.skipTest("no systemd-analyze")
        root = tempfile.mkdtemp(prefix="lancer-units-")
        self.addCleanup(shutil.rmtree, root, True)
        units = os.path.join(root, "etc", "systemd", "system")
        os.makedirs(units)
        for name in ("lancer-serve@.service", "lancer-serve@.socket"):
            shutil.copy(os.path.join(DEPLOY, name), units)
        shutil.copytree("/lib/systemd/system", os.path.join(root, "lib", "systemd", "system"),
                        symlinks=True)
        for path in ("/usr/local/bin/lancer-serve", "/bin/kill"):
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            shutil.copy(SERVE if path.endswith("lancer-serve") else path, root + path)
        p = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", f"--root={root}",
                            "lancer-serve@0.service", "lancer-serve@0.socket"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))


    def test_socket_activation(self):
        # What the .socket unit does for the .service, done by systemd-socket-activate: it
        # listens, and starts lancer-serve with the socket once the first client connects; that
        # client, which came before lancer-serve ran, is answered.
        activate = shutil.which("systemd-socket-activate")
        if not activate:
            self.skipTest("no systemd-socket-activate")
        d = tempfile.mkdtemp(prefix="lancer-activate-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "0.sock")
        with open(os.path.join(d, "stderr.txt"), "wb") as err:
            proc = subprocess.Popen(
                [activate, "-l", path, SERVE, "--systemd", "--config",
                 os.path.join(DEPLOY, "lancer-serve.toml"), "--access-log", "off"],
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        self.addCleanup(kill_group, proc)
        load.wait_for(lambda: os.path.exists(path), 10, "the socket")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        with s:
            self.assertEqual(exchange(s, "/plaintext"), (200, b"Hello, World!"))
        proc.send_signal(signal.SIGINT)  # SIGTERM would wait out drain-delay first
        self.assertEqual(proc.wait(timeout=20), 0)
        with open(os.path.join(d, "stderr.txt"), errors="replace") as f:
            log = f.read()
        check_no_sanitizer_report(log)
        self.assertIn("listening on fd/3 (unix/", log)


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
