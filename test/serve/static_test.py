#!/usr/bin/env python3
"""lancer-serve's static files (--root) driven by real clients over real sockets: Python's
http.client and raw sockets, and curl. Conditional requests, ranges, precompressed siblings,
directories, large files byte for byte (sendfile and the buffered path, TCP and Unix sockets,
a slow reader), and file-system faults (a file truncated or removed while it is sent, no
permission, no descriptor left, a file changed under the open-file cache).

usage: static_test.py PATH/TO/lancer-serve [unittest arguments]

Every client call has a timeout: nothing here can hang.
"""
import email.utils
import gzip
import hashlib
import http.client
import os
import pwd
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from serve_test import free_port, stop_server, track

SERVE = None
TIMEOUT = 10  # seconds, for every client call
MIB = 1024 * 1024
IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT$")
STRONG_ETAG = re.compile(r'^"[^"]*"$')


class Server:
    """lancer-serve --root on a free port (or a Unix socket), with `files` ({relative path:
    bytes}) written under the root first; stopped (SIGTERM) by stop(), which fails the test on
    a sanitizer report. `user` runs it as that user (a root test process making a permission
    fault that root itself would bypass); `nofile` caps its open descriptors."""

    def __init__(self, *flags, files=None, unix=False, user=None, nofile=None, env=None):
        self.dir = tempfile.mkdtemp(prefix="lancer-static-")
        self.root = os.path.join(self.dir, "root")
        os.makedirs(self.root)
        for name, data in (files or {}).items():
            self.write(name, data)
        self.pid_file = os.path.join(self.dir, "lancer.pid")
        self.port = free_port()
        self.unix_path = os.path.join(self.dir, "serve.sock") if unix else None
        listen = f"unix/{self.unix_path}" if unix else f"tcp/$4:{self.port}"
        self.err_path = os.path.join(self.dir, "stderr.txt")
        self.err = open(self.err_path, "wb")  # a file: a pipe nobody reads would stall it
        self.last_stderr = ""
        ids = None
        if user is not None:
            entry = pwd.getpwnam(user)
            ids = (entry.pw_uid, entry.pw_gid)
            for path, dirs, names in os.walk(self.dir):
                for n in [path] + [os.path.join(path, x) for x in dirs + names]:
                    os.chown(n, *ids)

        def preexec():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if ids is not None:
                os.setgroups([])
                os.setgid(ids[1])
                os.setuid(ids[0])

        self.proc = subprocess.Popen(
            [SERVE, "--listen", listen, "--root", self.root, "--out-pid", self.pid_file,
             "--log-level", "info", "--access-log", "off", *flags],
            stdout=subprocess.DEVNULL, stderr=self.err, preexec_fn=preexec,
            env=dict(os.environ, **(env or {})))
        track(self)
        deadline = time.time() + 10
        while not os.path.exists(self.pid_file):
            if self.proc.poll() is not None:
                self.err.close()
                raise RuntimeError("lancer-serve exited: " + self.stderr_now())
            if time.time() > deadline:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.err.close()
                raise RuntimeError("lancer-serve did not start")
            time.sleep(0.02)

    def path(self, name):
        return os.path.join(self.root, name)

    def write(self, name, data):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def stderr_now(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def connection(self):
        if self.unix_path is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        return UnixConnection(self.unix_path)

    def get(self, target, headers=None, method="GET"):
        """One request on a fresh connection: (status, headers, body)."""
        c = self.connection()
        try:
            c.request(method, target, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def socket(self):
        if self.unix_path is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = ("127.0.0.1", self.port)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = self.unix_path
        s.settimeout(TIMEOUT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a small window
        s.connect(address)
        return s

    def curl(self, target, *args, timeout=60):
        """curl TARGET (-sS, the body to stdout): the CompletedProcess."""
        where = (["--unix-socket", self.unix_path, f"http://localhost{target}"]
                 if self.unix_path else [f"http://127.0.0.1:{self.port}{target}"])
        return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args, *where],
                              capture_output=True, timeout=timeout + 10)

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024

    def stop(self):
        """SIGTERM, wait, the exit code; fails the test on a sanitizer report."""
        return stop_server(self)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=TIMEOUT)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self.unix_path)


class ServerTest(unittest.TestCase):
    """A test that starts servers with serve(): each is stopped at the end and must exit 0."""

    def serve(self, *flags, **kw):
        s = Server(*flags, **kw)
        self.addCleanup(self.stopped, s)
        return s

    def stopped(self, s):
        self.assertEqual(s.stop(), 0, s.last_stderr[-3000:])


def read_head(sock, got=b""):
    """Reads a response head from `sock`: (status, {lower-case name: value}, bytes after it)."""
    while b"\r\n\r\n" not in got:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError(f"closed before a whole response head: {got!r}")
        got += more
    head, rest = got.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), fields, rest


def parse_byteranges(content_type, body):
    """The parts of a multipart/byteranges body: [(headers {lower-case: value}, bytes)]."""
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type)
    if not m:
        raise AssertionError(f"no boundary in {content_type!r}")
    delimiter = b"--" + (m.group(1) or m.group(2)).encode()
    chunks = body.split(delimiter)
    if not chunks[-1].startswith(b"--"):
        raise AssertionError("no closing delimiter in the multipart body")
    parts = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise AssertionError(f"a part not framed by CRLF: {chunk[:80]!r}")
        head, _, data = chunk[2:-2].partition(b"\r\n\r\n")
        fields = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        parts.append((fields, data))
    return parts


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


TEXT = bytes(range(256)) * 4  # 1024 bytes, every byte value


class HeadersAndConditionalTests(ServerTest):
    def setUp(self):
        self.s = self.serve("--mime", ".md=text/markdown", "--mime", ".xyz=application/x-xyz",
                            "--cache-control", "/=no-cache",
                            "--cache-control", "/static/=max-age=3600",
                            "--cache-control", "/static/img/=immutable",
                            files={"a.txt": TEXT, "page.html": b"<p>hi</p>",
                                   "notes.md": b"# notes", "data.xyz": b"xyz",
                                   "static/app.css": b"body{}", "static/img/p.png": b"\x89PNG",
                                   "pic.png": b"\x89PNG\r\n"})
        self.mtime = os.stat(self.s.path("a.txt")).st_mtime

    def test_a_200_carries_validators_length_type_and_accept_ranges(self):
        status, h, body = self.s.get("/a.txt")
        self.assertEqual((status, body), (200, TEXT))
        self.assertRegex(h["ETag"] or "", STRONG_ETAG)
        self.assertRegex(h["Last-Modified"] or "", IMF_FIXDATE)
        self.assertEqual(h["Last-Modified"], http_date(int(self.mtime)))
        self.assertEqual(h["Accept-Ranges"], "bytes")
        self.assertEqual(h["Content-Length"], str(len(TEXT)))
        self.assertTrue((h["Content-Type"] or "").startswith("text/plain"), h["Content-Type"])

    def test_head_has_the_headers_of_get_and_no_body(self):
        _, g, _ = self.s.get("/a.txt")
        status, h, body = self.s.get("/a.txt", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        for name in ["ETag", "Last-Modified", "Content-Length", "Content-Type", "Accept-Ranges"]:
            self.assertEqual(h[name], g[name], name)

    def test_content_type_comes_from_the_mime_table_which_mime_extends(self):
        for target, want in [("/page.html", "text/html"), ("/pic.png", "image/png"),
                             ("/notes.md", "text/markdown"), ("/data.xyz", "application/x-xyz"),
                             ("/static/app.css", "text/css")]:
            status, h, _ = self.s.get(target)
            self.assertEqual(status, 200, target)
            self.assertEqual((h["Content-Type"] or "").split(";")[0], want, target)

    def test_cache_control_by_the_longest_matching_prefix(self):
        for target, want in [("/a.txt", "no-cache"), ("/static/app.css", "max-age=3600"),
                             ("/static/img/p.png", "immutable")]:
            status, h, _ = self.s.get(target)
            self.assertEqual((status, h["Cache-Control"]), (200, want), target)

    def test_if_none_match_gives_304_by_weak_comparison_and_star(self):
        _, h, _ = self.s.get("/a.txt")
        etag = h["ETag"]
        for value in [etag, "W/" + etag, "*", f'"other", {etag}', f'W/"x",  W/{etag}']:
            status, h304, body = self.s.get("/a.txt", {"If-None-Match": value})
            self.assertEqual((status, body), (304, b""), value)
            self.assertEqual(h304["ETag"], etag, value)
        status, _, body = self.s.get("/a.txt", {"If-None-Match": '"other"'})
        self.assertEqual((status, body), (200, TEXT))

    def test_if_modified_since_gives_304_only_without_if_none_match(self):
        _, h, _ = self.s.get("/a.txt")
        lm = h["Last-Modified"]
        for value in [lm, http_date(self.mtime + 3600)]:
            status, h304, body = self.s.get("/a.txt", {"If-Modified-Since": value})
            self.assertEqual((status, body), (304, b""), value)
            self.assertEqual(h304["ETag"], h["ETag"])
        status, _, body = self.s.get("/a.txt", {"If-Modified-Since": http_date(self.mtime - 86400)})
        self.assertEqual((status, body), (200, TEXT))
        # If-None-Match decides when both are there.
        status, _, body = self.s.get("/a.txt", {"If-None-Match": '"other"',
                                                "If-Modified-Since": lm})
        self.assertEqual((status, body), (200, TEXT))

    def test_if_match_that_does_not_match_strongly_gives_412(self):
        _, h, _ = self.s.get("/a.txt")
        etag = h["ETag"]
        for value in ['"other"', "W/" + etag]:
            status, _, _ = self.s.get("/a.txt", {"If-Match": value})
            self.assertEqual(status, 412, value)
        for value in [etag, "*", f'"other", {etag}']:
            status, _, body = self.s.get("/a.txt", {"If-Match": value})
            self.assertEqual((status, body), (200, TEXT), value)

    def test_if_unmodified_since_before_the_mtime_gives_412_only_without_if_match(self):
        _, h, _ = self.s.get("/a.txt")
        early = http_date(self.mtime - 86400)
        status, _, _ = self.s.get("/a.txt", {"If-Unmodified-Since": early})
        self.assertEqual(status, 412)
        for value in [h["Last-Modified"], http_date(self.mtime + 3600)]:
            status, _, body = self.s.get("/a.txt", {"If-Unmodified-Since": value})
            self.assertEqual((status, body), (200, TEXT), value)
        status, _, body = self.s.get("/a.txt", {"If-Match": h["ETag"],
                                                "If-Unmodified-Since": early})
        self.assertEqual((status, body), (200, TEXT))


class RangeTests(ServerTest):
    def setUp(self):
        self.data = os.urandom(1000)
        self.s = self.serve(files={"r.bin": self.data, "r.txt": TEXT})

    def test_one_range_gives_206_with_exactly_those_bytes(self):
        n = len(self.data)
        for spec, first, last in [("0-9", 0, 9), ("10-", 10, n - 1), ("-5", n - 5, n - 1),
                                  ("990-5000", 990, n - 1), ("0-0", 0, 0), ("-5000", 0, n - 1),
                                  ("999-999", 999, 999)]:
            status, h, body = self.s.get("/r.bin", {"Range": "bytes=" + spec})
            self.assertEqual(status, 206, spec)
            self.assertEqual(h["Content-Range"], f"bytes {first}-{last}/{n}", spec)
            self.assertEqual(body, self.data[first:last + 1], spec)
            self.assertEqual(h["Content-Length"], str(last + 1 - first), spec)

    def test_several_ranges_give_multipart_byteranges(self):
        n = len(self.data)
        status, h, body = self.s.get("/r.txt", {"Range": "bytes=0-1,100-109,-3"})
        self.assertEqual(status, 206)
        ctype = h["Content-Type"] or ""
        self.assertTrue(ctype.startswith("multipart/byteranges"), ctype)
        self.assertEqual(h["Content-Length"], str(len(body)))
        parts = parse_byteranges(ctype, body)
        want = [(0, 1), (100, 109), (len(TEXT) - 3, len(TEXT) - 1)]
        self.assertEqual(len(parts), len(want))
        for (fields, data), (a, b) in zip(parts, want):
            self.assertEqual(fields.get("content-range"), f"bytes {a}-{b}/{len(TEXT)}")
            self.assertTrue(fields.get("content-type", "").startswith("text/plain"), fields)
            self.assertEqual(data, TEXT[a:b + 1])
        del n

    def test_overlapping_ranges_may_be_coalesced_but_give_the_right_bytes(self):
        status, h, body = self.s.get("/r.bin", {"Range": "bytes=0-5,3-9,10-12"})
        self.assertEqual(status, 206)
        got = {}
        ctype = h["Content-Type"] or ""
        if ctype.startswith("multipart/byteranges"):
            pieces = [(f["content-range"], d) for f, d in parse_byteranges(ctype, body)]
        else:
            pieces = [(h["Content-Range"], body)]
        for content_range, data in pieces:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/1000", content_range or "")
            self.assertIsNotNone(m, content_range)
            a, b = int(m.group(1)), int(m.group(2))
            self.assertEqual(data, self.data[a:b + 1])
            got.update({i: True for i in range(a, b + 1)})
        self.assertTrue(all(i in got for i in range(13)), "a byte asked for is missing")

    def test_nothing_satisfiable_gives_416_with_the_length(self):
        for spec in ["bytes=1000-", "bytes=5000-6000", "bytes=1000-1000,2000-"]:
            status, h, _ = self.s.get("/r.bin", {"Range": spec})
            self.assertEqual(status, 416, spec)
            self.assertEqual(h["Content-Range"], "bytes */1000", spec)

    def test_a_malformed_range_is_ignored(self):
        for spec in ["bytes=abc", "bytes=", "items=0-5", "bytes 0-5", "bytes=--1", "bytes=1-2-3",
                     "bytes=x-5"]:
            status, h, body = self.s.get("/r.bin", {"Range": spec})
            self.assertEqual((status, body), (200, self.data), spec)

    def test_if_range_with_the_current_validator_gives_206_otherwise_the_whole_file(self):
        _, h, _ = self.s.get("/r.bin")
        etag, lm = h["ETag"], h["Last-Modified"]
        mtime = os.stat(self.s.path("r.bin")).st_mtime
        for value in [etag, lm]:
            status, h206, body = self.s.get("/r.bin", {"Range": "bytes=0-9", "If-Range": value})
            self.assertEqual((status, body), (206, self.data[:10]), value)
        for value in ['"other"', "W/" + etag, http_date(mtime - 86400),
                      http_date(mtime + 86400)]:
            status, _, body = self.s.get("/r.bin", {"Range": "bytes=0-9", "If-Range": value})
            self.assertEqual((status, body), (200, self.data), value)

    def test_a_range_on_head_gives_the_headers_only(self):
        status, h, body = self.s.get("/r.bin", {"Range": "bytes=10-19"}, method="HEAD")
        self.assertEqual((status, body), (206, b""))
        self.assertEqual(h["Content-Range"], "bytes 10-19/1000")
        self.assertEqual(h["Content-Length"], "10")
        # and the connection is still good for another request: no body was sent after all
        c = self.s.connection()
        self.addCleanup(c.close)
        c.request("HEAD", "/r.bin", headers={"Range": "bytes=0-1"})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (206, b""))
        c.request("GET", "/r.bin", headers={"Range": "bytes=2-3"})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (206, self.data[2:4]))


class PrecompressedTests(ServerTest):
    PLAIN = b"function f() { return 42; }\n" * 40
    GZ = gzip.compress(PLAIN)
    BR = b"(brotli bytes: the server sends them as they are)" * 3

    def setUp(self):
        self.s = self.serve(files={"x.js": self.PLAIN, "x.js.gz": self.GZ, "x.js.br": self.BR,
                                   "y.css": b"a{}" * 100, "y.css.gz": gzip.compress(b"a{}" * 100),
                                   "plain.txt": b"no siblings"})

    def check(self, accept, want_body, want_encoding):
        status, h, body = self.s.get("/x.js", {"Accept-Encoding": accept})
        self.assertEqual(status, 200, accept)
        self.assertEqual(body, want_body, accept)
        self.assertEqual(h["Content-Encoding"], want_encoding, accept)
        self.assertIn("accept-encoding", (h["Vary"] or "").lower(), accept)
        self.assertIn("javascript", h["Content-Type"] or "", accept)
        self.assertEqual(h["Content-Length"], str(len(want_body)), accept)
        return h["ETag"]

    def test_the_sibling_named_by_accept_encoding_is_sent_with_content_encoding_and_vary(self):
        plain = self.check("identity", self.PLAIN, None)
        gz = self.check("gzip", self.GZ, "gzip")
        br = self.check("br", self.BR, "br")
        self.assertEqual(len({plain, gz, br}), 3, "one ETag per representation")
        for etag in (plain, gz, br):
            self.assertRegex(etag or "", STRONG_ETAG)

    def test_br_is_preferred_at_equal_q_and_q_0_refuses(self):
        self.check("gzip, br", self.BR, "br")
        self.check("br, gzip", self.BR, "br")
        self.check("gzip;q=0.5, br;q=0.5", self.BR, "br")
        self.check("br;q=0, gzip", self.GZ, "gzip")
        self.check("gzip;q=0", self.PLAIN, None)
        self.check("gzip;q=0, br;q=0", self.PLAIN, None)

    def test_a_file_with_only_a_gzip_sibling(self):
        status, h, body = self.s.get("/y.css", {"Accept-Encoding": "gzip, br"})
        self.assertEqual((status, h["Content-Encoding"]), (200, "gzip"))
        self.assertEqual(gzip.decompress(body), b"a{}" * 100)
        status, h, body = self.s.get("/y.css", {"Accept-Encoding": "br"})
        self.assertEqual((status, h["Content-Encoding"], body), (200, None, b"a{}" * 100))
        self.assertIn("accept-encoding", (h["Vary"] or "").lower())

    def test_no_accept_encoding_gets_the_plain_file_with_vary(self):
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /x.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, fields, rest = read_head(sock)
            while len(rest) < len(self.PLAIN):
                more = sock.recv(65536)
                if not more:
                    break
                rest += more
        self.assertEqual((status, rest), (200, self.PLAIN))
        self.assertNotIn("content-encoding", fields)
        self.assertIn("accept-encoding", fields.get("vary", "").lower())

    def test_the_sibling_asked_for_by_name_is_a_plain_file(self):
        status, h, body = self.s.get("/x.js.gz", {"Accept-Encoding": "gzip, br"})
        self.assertEqual((status, body), (200, self.GZ))
        self.assertIsNone(h["Content-Encoding"])

    def test_a_conditional_request_on_the_compressed_representation(self):
        etag = self.check("gzip", self.GZ, "gzip")
        status, h, body = self.s.get("/x.js", {"Accept-Encoding": "gzip",
                                               "If-None-Match": etag})
        self.assertEqual((status, body, h["ETag"]), (304, b"", etag))
        status, _, body = self.s.get("/x.js", {"Accept-Encoding": "identity",
                                               "If-None-Match": etag})
        self.assertEqual((status, body), (200, self.PLAIN))


class DirectoryTests(ServerTest):
    NAMES = ['a&b<c>.txt', 'b.txt', 'q"uote.txt', 'sp ace.txt']

    def files(self):
        files = {"site/index.html": b"<h1>index</h1>", "list/big.bin": b"z" * 12345,
                 "list/sub/inner.txt": b"in", "empty/.keep": b""}
        files.update({"list/" + n: b"x" for n in self.NAMES})
        return files

    def test_a_directory_without_its_slash_is_redirected_with_the_query_kept(self):
        s = self.serve(files=self.files())
        for target, location in [("/site", "/site/"), ("/site?a=1&b=2", "/site/?a=1&b=2"),
                                 ("/list/sub", "/list/sub/")]:
            status, h, _ = s.get(target)
            self.assertEqual((status, h["Location"]), (301, location), target)

    def test_a_directory_with_its_slash_serves_its_index(self):
        s = self.serve("--autoindex", files=self.files())
        status, h, body = s.get("/site/")
        self.assertEqual((status, body), (200, b"<h1>index</h1>"))
        self.assertTrue((h["Content-Type"] or "").startswith("text/html"))

    def test_without_autoindex_a_directory_without_index_is_not_listed(self):
        s = self.serve(files=self.files())
        status, _, body = s.get("/list/")
        self.assertIn(status, (403, 404))
        print(f"\n  (a directory without index.html and without --autoindex: {status})",
              file=sys.stderr)
        for n in ["big.bin", "b.txt"]:
            self.assertNotIn(n.encode(), body)

    def test_autoindex_lists_names_escaped_encoded_sorted_with_sizes(self):
        s = self.serve("--autoindex", files=self.files())
        status, h, body = s.get("/list/")
        self.assertEqual(status, 200)
        self.assertTrue((h["Content-Type"] or "").startswith("text/html"), h["Content-Type"])
        page = body.decode()
        positions = []
        for name, href, text in [
                ('a&b<c>.txt', r"a%26b%3Cc%3E\.txt", "a&amp;b&lt;c&gt;.txt"),
                ('b.txt', r"b\.txt", "b.txt"),
                ('q"uote.txt', r"q%22uote\.txt", "q&quot;uote.txt"),
                ('sp ace.txt', r"sp%20ace\.txt", "sp ace.txt")]:
            m = re.search(r'href="(?:/list/)?' + href + '"', page, re.I)
            self.assertIsNotNone(m, f"no link to {name}:\n{page}")
            self.assertIn(text, page, name)
            positions.append(m.start())
        self.assertEqual(positions, sorted(positions), "the names are not sorted")
        self.assertRegex(page, r'href="(?:/list/)?sub/"')
        self.assertNotIn("a&b<c>", page)
        self.assertNotIn('q"uote', page)
        row = page[page.index("big.bin"):][:300]
        self.assertRegex(row, r"12345|12(\.\d)?\s?Ki?B?|13\s?Ki?B?", "no size for big.bin")

    def test_autoindex_of_an_empty_directory_and_index_html_wins(self):
        s = self.serve("--autoindex", files=self.files())
        status, _, body = s.get("/site/")
        self.assertEqual((status, body), (200, b"<h1>index</h1>"))
        status, _, _ = s.get("/empty/")
        self.assertEqual(status, 200)


class ZeroCopyTests(ServerTest):
    """A 64 MiB file, byte for byte, with sendfile and with the buffered path, over TCP and a
    Unix socket; a slow reader must not make lancer-serve hold the file in memory."""
    SIZE = 64 * MIB
    DATA = None

    @classmethod
    def setUpClass(cls):
        cls.DATA = os.urandom(cls.SIZE)
        cls.HASH = sha256(cls.DATA)

    def server(self, *flags, unix=False):
        # A small quarantine under ASan: freed buffers held back by ASan are not the server's.
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8"}
        return self.serve(*flags, unix=unix, env=env,
                          files={"big.bin": self.DATA, "small.txt": b"small"})

    def check_curl(self, s):
        out = os.path.join(s.dir, "curl.out")
        r = s.curl("/big.bin", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(sha256(f.read()), self.HASH)
        os.unlink(out)

    def check_slow_reader(self, s):
        """Reads nothing for a second, then slowly, then the rest: the body is exact and the
        server's RSS never grows by more than 32 MiB over what it was before the request."""
        self.assertEqual(s.get("/small.txt")[2], b"small")  # warm: first-use growth
        base = s.rss()
        peak = base
        sock = s.socket()
        self.addCleanup(sock.close)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        status, fields, rest = read_head(sock)
        self.assertEqual((status, fields.get("content-length")), (200, str(self.SIZE)))
        h = hashlib.sha256(rest)
        got = len(rest)
        time.sleep(1.0)  # not reading at all
        peak = max(peak, s.rss())
        slow_until = time.time() + 1.5
        while time.time() < slow_until:  # about 8 MiB/s
            n = 0
            while n < 256 * 1024:
                more = sock.recv(256 * 1024 - n)
                if not more:
                    raise ConnectionError("the server closed the connection early")
                h.update(more)
                n += len(more)
            got += n
            time.sleep(0.03)
            peak = max(peak, s.rss())
        while got < self.SIZE:
            more = sock.recv(min(1 << 20, self.SIZE - got))
            if not more:
                raise ConnectionError(f"closed after {got} of {self.SIZE} bytes")
            h.update(more)
            got += len(more)
            if got % (8 * MIB) < len(more):
                peak = max(peak, s.rss())
        self.assertEqual(h.hexdigest(), self.HASH)
        self.assertLess(peak - base, 32 * MIB,
                        f"RSS grew by {(peak - base) / MIB:.1f} MiB for a slow reader")
        # the connection is still good
        sock.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, rest = read_head(sock)
        while len(rest) < 5:
            rest += sock.recv(100)
        self.assertEqual((status, rest), (200, b"small"))

    def test_sendfile_over_tcp(self):
        s = self.server()
        self.check_curl(s)
        self.check_slow_reader(s)

    def test_the_buffered_path_over_tcp(self):
        s = self.server("--no-sendfile")
        self.check_curl(s)
        self.check_slow_reader(s)

    def test_sendfile_over_a_unix_socket(self):
        s = self.server(unix=True)
        self.check_curl(s)
        self.check_slow_reader(s)

    def test_the_buffered_path_over_a_unix_socket(self):
        s = self.server("--no-sendfile", unix=True)
        self.check_curl(s)

    def check_clients_that_leave_mid_body(self, s):
        """Clients that read part of the file and close, half of them with their receive
        buffers emptied first (a FIN: the server's next send meets a closed peer, EPIPE, and
        SIGPIPE unless it is ignored), half not (a reset): the server lives on and serves the
        next request."""
        for i in range(40):
            sock = s.socket()
            try:
                sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, rest = read_head(sock)
                self.assertEqual(status, 200)
                got = len(rest)
                while got < (i % 5 + 1) * 256 * 1024:
                    more = sock.recv(65536)
                    self.assertTrue(more, "closed early")
                    got += len(more)
                sock.setblocking(False)
                try:  # empty the receive buffer: close() then sends a FIN, not a reset
                    while i % 2 and sock.recv(1 << 20):
                        pass
                except BlockingIOError:
                    pass
            finally:
                sock.close()
            time.sleep(0.02)
        time.sleep(0.3)
        self.assertIsNone(s.proc.poll(), f"lancer-serve died: exit {s.proc.returncode}")
        self.assertEqual(s.get("/small.txt")[:3:2], (200, b"small"))

    def test_clients_that_leave_mid_body_with_sendfile(self):
        self.check_clients_that_leave_mid_body(self.server())

    def test_clients_that_leave_mid_body_with_the_buffered_path(self):
        self.check_clients_that_leave_mid_body(self.server("--no-sendfile"))

    def test_clients_that_leave_mid_body_over_a_unix_socket(self):
        self.check_clients_that_leave_mid_body(self.server(unix=True))

    def test_ranges_of_the_big_file_with_curl(self):
        s = self.server()
        for spec, a, b in [("0-65535", 0, 65535), (f"{40 * MIB}-{41 * MIB - 1}", 40 * MIB,
                                                    41 * MIB - 1), ("-100", self.SIZE - 100,
                                                                    self.SIZE - 1)]:
            r = s.curl("/big.bin", "-r", spec, "-w", "%{http_code}", "-o", "-")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout[-3:], b"206", spec)
            self.assertEqual(r.stdout[:-3], self.DATA[a:b + 1], spec)


class FaultTests(ServerTest):
    def log_after(self, s, mark):
        return s.stderr_now()[mark:]

    def test_a_file_truncated_while_a_slow_client_reads_it_closes_the_connection(self):
        for flags in [(), ("--no-sendfile",)]:
            with self.subTest(flags=flags):
                s = self.serve(*flags, files={"small.txt": b"small"})
                path = s.write("trunc.bin", os.urandom(32 * MIB))
                mark = len(s.stderr_now())
                out = os.path.join(s.dir, "out")
                curl = subprocess.Popen(
                    ["curl", "-sS", "--max-time", "60", "--limit-rate", "4M", "-o", out,
                     f"http://127.0.0.1:{s.port}/trunc.bin"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                self.addCleanup(lambda p=curl: p.poll() is None and p.kill())
                time.sleep(0.7)
                os.truncate(path, 1 * MIB)
                _, err = curl.communicate(timeout=60)
                self.assertEqual(curl.returncode, 18, err)  # partial file
                self.assertLess(os.path.getsize(out), 32 * MIB)
                self.assertEqual(s.get("/small.txt")[:3:2], (200, b"small"))
                log = self.wait_for_log(s, mark, "trunc.bin")
                self.assertIn("trunc.bin", log)

    def wait_for_log(self, s, mark, word, seconds=3):
        deadline = time.time() + seconds
        while True:
            log = self.log_after(s, mark)
            if word in log or time.time() > deadline:
                return log
            time.sleep(0.05)

    def test_a_file_removed_while_it_is_sent_arrives_whole_then_is_404(self):
        data = os.urandom(16 * MIB)
        s = self.serve(files={"gone.bin": data})
        out = os.path.join(s.dir, "out")
        curl = subprocess.Popen(
            ["curl", "-sS", "--max-time", "60", "--limit-rate", "8M", "-o", out,
             f"http://127.0.0.1:{s.port}/gone.bin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: curl.poll() is None and curl.kill())
        time.sleep(0.5)
        os.unlink(s.path("gone.bin"))
        removed = time.time()
        _, err = curl.communicate(timeout=60)
        self.assertEqual(curl.returncode, 0, err)
        with open(out, "rb") as f:
            self.assertEqual(sha256(f.read()), sha256(data))
        time.sleep(max(0.0, removed + 1.5 - time.time()))  # past --file-cache-valid's 1 s
        self.assertEqual(s.get("/gone.bin")[0], 404)

    def test_a_file_without_read_permission_gives_403(self):
        user = None
        if os.geteuid() == 0:
            # root reads any file: the server runs as nobody for this test instead.
            try:
                pwd.getpwnam("nobody")
                user = "nobody"
            except KeyError:
                self.skipTest("running as root and there is no user nobody")
        s = self.serve(user=user, files={"secret.txt": b"secret", "open.txt": b"open"})
        os.chmod(s.path("secret.txt"), 0)
        mark = len(s.stderr_now())
        status, _, body = s.get("/secret.txt")
        self.assertEqual(status, 403)
        self.assertNotIn(b"secret", body)
        self.assertEqual(s.get("/open.txt")[:3:2], (200, b"open"))
        self.assertIn("secret.txt", self.wait_for_log(s, mark, "secret.txt"))

    def test_no_descriptor_left_to_open_a_file_gives_503_and_the_server_recovers(self):
        limit = 64
        s = self.serve(nofile=limit, files={"small.txt": b"small"})
        n = 40
        for i in range(n):  # sparse: 16 MiB each of zeros, no disk used
            with open(s.path(f"f{i}.bin"), "wb") as f:
                f.truncate(16 * MIB)
        mark = len(s.stderr_now())
        socks = []
        try:
            for _ in range(n):
                socks.append(s.socket())
            time.sleep(0.2)
            for i, sock in enumerate(socks):  # each holds its file open: nobody reads
                sock.sendall(f"GET /f{i}.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            statuses = []
            for sock in socks:
                try:
                    status, fields, _ = read_head(sock)
                except (ConnectionError, socket.timeout) as e:
                    statuses.append(repr(e))
                    continue
                statuses.append(status)
                if status == 503:
                    self.assertIn("retry-after", fields)
            self.assertIsNone(s.proc.poll(), "the server died")
            self.assertIn(503, statuses)
            self.assertTrue(all(x in (200, 503) for x in statuses), statuses)
        finally:
            for sock in socks:
                sock.close()
        log = self.log_after(s, mark)
        self.assertRegex(log, r"(?i)too many open files|EMFILE")
        deadline = time.time() + 5
        while True:  # the descriptors come back
            status, _, body = s.get("/f1.bin")
            if status == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual((status, len(body)), (200, 16 * MIB))
        self.assertEqual(s.get("/small.txt")[:3:2], (200, b"small"))


class OpenFileCacheTests(ServerTest):
    def change(self, s, name, data):
        path = s.path(name)
        st = os.stat(path)
        with open(path, "wb") as f:  # in place: the same inode
            f.write(data)
        os.utime(path, (st.st_atime + 10, st.st_mtime + 10))

    def test_with_validity_0_a_changed_or_removed_file_is_seen_at_once(self):
        s = self.serve("--file-cache-valid", "0", files={"c.txt": b"one"})
        status, h1, body = s.get("/c.txt")
        self.assertEqual((status, body), (200, b"one"))
        self.change(s, "c.txt", b"second version")
        status, h2, body = s.get("/c.txt")
        self.assertEqual((status, body), (200, b"second version"))
        self.assertEqual(h2["Content-Length"], "14")
        self.assertNotEqual(h1["ETag"], h2["ETag"])
        self.assertNotEqual(h1["Last-Modified"], h2["Last-Modified"])
        os.unlink(s.path("c.txt"))
        self.assertEqual(s.get("/c.txt")[0], 404)

    def test_by_default_a_changed_or_removed_file_is_seen_after_a_second(self):
        s = self.serve(files={"c.txt": b"one", "d.txt": b"dee"})
        self.assertEqual(s.get("/c.txt")[2], b"one")
        self.assertEqual(s.get("/d.txt")[2], b"dee")
        self.change(s, "c.txt", b"second version")
        os.unlink(s.path("d.txt"))
        time.sleep(1.5)
        status, h, body = s.get("/c.txt")
        self.assertEqual((status, body, h["Content-Length"]), (200, b"second version", "14"))
        self.assertEqual(s.get("/d.txt")[0], 404)

    def test_a_file_made_after_a_404_is_served(self):
        s = self.serve("--file-cache-valid", "0")
        self.assertEqual(s.get("/new.txt")[0], 404)
        s.write("new.txt", b"new")
        self.assertEqual(s.get("/new.txt")[:3:2], (200, b"new"))


if __name__ == "__main__":
    SERVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
