"""A steady client load for the deployment tests: threads sending GET requests over keep-alive
connections and over a new connection per request, to a TCP port or a Unix socket, counting
what happens to each request.

Each request ends as one of:
  answered  a whole response with the expected status
  failed    any other response, or a connection that ended (EOF, reset, timeout) before a whole
            response came, once the request was sent on a connection that had answered before
            and a second try on a new connection failed too (HTTP clients retry an idempotent
            request once when a kept-alive connection turns out closed: RFC 9112 9.3.1)
  refused   connect() failed (ECONNREFUSED, ENOENT for a Unix path that is gone), or a new
            connection was reset or closed before any byte of the answer: the listener let it
            go unanswered
A keep-alive connection that the server closed while it was idle (EOF seen before sending, as
clients check a pooled connection) is simply replaced; that is no failure.
"""
import errno
import os
import random
import select
import socket
import threading
import time


def connection_dropped(sock):
    """True if the peer has closed `sock` (an EOF or a reset is waiting)."""
    ready, _, _ = select.select([sock], [], [], 0)
    if not ready:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def read_response(sock):
    """(status, head, body) of one response with a Content-Length body, or None if the
    connection ended before it was whole, or b"" if it ended before its first byte."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return b"" if not data else None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            body += chunk
        return int(head.split(b" ", 2)[1]), head, body
    except (ConnectionResetError, BrokenPipeError):
        return b"" if not data else None
    except socket.timeout:
        return None


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.answered = 0
        self.failed = 0
        self.refused = 0
        self.retried = 0  # a kept-alive connection found closed while a request was on it
        self.errors = []  # the first few, for the failure message

    def add(self, what, detail=None):
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            if detail and len(self.errors) < 10:
                self.errors.append(detail)

    def line(self, name):
        return (f"{name}: {self.answered + self.failed} requests, {self.failed} failed, "
                f"{self.refused} refused ({self.answered} answered, {self.retried} retried on "
                f"a new connection after a kept-alive one closed)")


class Load:
    """`target` is ("127.0.0.1", port) or a Unix socket path. `kinds`: how many 'keep'
    (keep-alive, back to back, with `pause` seconds between requests on average) and 'new'
    (a connection per request) clients. `path` is a string or a function giving each
    request's path. `headers`: extra request headers. Start with start(), end with stop(),
    which returns the Counts."""

    def __init__(self, target, keep=6, new=6, path="/plaintext", pause=0.0, headers=None,
                 expect=200, timeout=10):
        self.target = target
        self.kinds = ["keep"] * keep + ["new"] * new
        self.path = path
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.pause = pause
        self.expect = expect
        self.timeout = timeout
        self.counts = Counts()
        self.stopping = threading.Event()
        self.threads = []

    def connect(self):
        if isinstance(self.target, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.target)
            except OSError:
                s.close()
                raise
            return s
        return socket.create_connection(self.target, timeout=self.timeout)

    def exchange(self, sock):
        """Sends one request; the response as read_response() gives it."""
        path = self.path() if callable(self.path) else self.path
        request = f"GET {path} HTTP/1.1\r\nHost: lancer\r\n{self.headers}\r\n".encode()
        try:
            sock.sendall(request)
        except OSError:
            return b""
        return read_response(sock)

    def client(self, kind):
        rnd = random.Random(threading.get_ident())
        sock = None
        while not self.stopping.is_set():
            reused = sock is not None
            if sock is not None and connection_dropped(sock):
                sock.close()
                sock, reused = None, False
            if sock is None:
                try:
                    sock = self.connect()
                except OSError as e:
                    self.counts.add("refused", f"connect: {errno.errorcode.get(e.errno, e)}")
                    time.sleep(0.01)
                    continue
            got = self.exchange(sock)
            if not got and reused:
                # The kept-alive connection was closed under the request: once more, anew.
                self.counts.add("retried")
                sock.close()
                try:
                    sock = self.connect()
                except OSError as e:
                    sock = None
                    self.counts.add("refused", f"connect: {errno.errorcode.get(e.errno, e)}")
                    continue
                reused = False
                got = self.exchange(sock)
            if got == b"":
                self.counts.add("refused" if not reused else "failed",
                                "a new connection closed unanswered")
            elif got is None:
                self.counts.add("failed", "a response cut short")
            elif got[0] != self.expect:
                self.counts.add("failed", f"status {got[0]}")
            else:
                self.counts.add("answered")
            close = (got is None or got == b"" or kind == "new" or
                     b"\r\nconnection: close" in got[1].lower())
            if close and sock is not None:
                sock.close()
                sock = None
            if self.pause:
                time.sleep(rnd.uniform(0, 2 * self.pause))
        if sock is not None:
            sock.close()

    def start(self):
        for kind in self.kinds:
            t = threading.Thread(target=self.client, args=(kind,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)
        return self.counts


def wait_for(predicate, timeout, what, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def process_gone(pid):
    """True once `pid` has exited (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def become_subreaper():
    """Makes this process adopt its orphaned descendants (PR_SET_CHILD_SUBREAPER), so that a
    lancer-serve started by an upgrade (whose parent exits) can be waited for here."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap(pid, timeout):
    """Waits for `pid`, a child or an adopted orphan of this process; its exit code, or None
    if it did not exit in time."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0 if process_gone(pid) else None
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    return None
