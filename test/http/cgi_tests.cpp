// CGI through the fake source, with real sh and python3 scripts (so on the steady clock: a
// script takes the time it takes).
#include "lancer/http/cgi.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "http_app.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"
#include "log_capture.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace http = lancer::http;

namespace {

// A directory of scripts, removed at the end.
struct script_dir {
  fs::path dir;
  script_dir() {
    char templ[] = "/tmp/lancer-cgi-XXXXXX";
    dir = ::mkdtemp(templ);
  }
  ~script_dir() { fs::remove_all(dir); }
  void add(const std::string& name, const std::string& text) {
    const fs::path p = dir / name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), 0755);
  }
};

// A server around cgi_dir("/cgi-bin/", dir) on the fake source, on the steady clock.
struct cgi_bed {
  lancer::scheduler sched;
  lancer::server srv;
  lancer::fake_source fake;
  cgi_bed(const fs::path& dir, http::cgi_options o = {})
      : srv(sched, http::serve(http::cgi_dir("/cgi-bin/", dir, std::move(o)))) {
    srv.attach_source(fake);
    srv.run();
  }
  // Sends `request` and collects the answer until the server is done with the connection,
  // or 10 s pass.
  std::string ask(lancer::fake_client& c, const std::string& request) {
    c.write(request);
    std::string got;
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < give_up) {
      sched.run_until_idle();
      got += c.read();
      if (c.server_done() && c.available() == 0) break;
      std::this_thread::sleep_for(1ms);
    }
    return got;
  }
};

using lancer_test::status_of;

// The body of a chunked response.
std::string dechunk(const std::string& reply) {
  std::string_view in(reply);
  in.remove_prefix(std::min(in.size(), in.find("\r\n\r\n") + 4));
  std::string out;
  for (;;) {
    const std::size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return out + "<unterminated>";
    const std::size_t n = std::stoul(std::string(in.substr(0, eol)), nullptr, 16);
    in.remove_prefix(eol + 2);
    if (n == 0) return out;
    out += in.substr(0, n);
    in.remove_prefix(n + 2);
  }
}

struct quiet {
  quiet() { lancer::set_log_level(lancer::log_level::error); }
  ~quiet() { lancer::set_log_level(lancer::log_level::info); }
};

}  // namespace

TEST_CASE("a CGI script gets the meta-variables of RFC 3875 and its answer is streamed") {
  quiet q;
  script_dir d;
  d.add("env.sh",
        "#!/bin/sh\n"
        "printf 'Content-Type: text/plain\\nX-Script: yes\\n\\n'\n"
        "for v in GATEWAY_INTERFACE REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING "
        "SERVER_PROTOCOL SERVER_SOFTWARE HTTP_X_THING HTTP_PROXY REMOTE_ADDR; do\n"
        "  eval \"echo $v=\\${$v-unset}\"\n"
        "done\n");
  cgi_bed b{d.dir};
  lancer::fake_client c = b.fake.connect();
  const std::string reply =
      b.ask(c,
            "GET /cgi-bin/env.sh/a%20b/c?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Thing: one\r\n"
            "x-thing: two\r\nProxy: http://evil/\r\nConnection: close\r\n\r\n");
  CHECK(status_of(reply) == 200);
  CHECK(reply.find("\r\nContent-Type: text/plain\r\n") != std::string::npos);
  CHECK(reply.find("\r\nX-Script: yes\r\n") != std::string::npos);
  CHECK(reply.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(dechunk(reply) ==
        "GATEWAY_INTERFACE=CGI/1.1\nREQUEST_METHOD=GET\nSCRIPT_NAME=/cgi-bin/env.sh\n"
        "PATH_INFO=/a b/c\nQUERY_STRING=x=1&y=2\nSERVER_PROTOCOL=HTTP/1.1\n"
        "SERVER_SOFTWARE=lancer\nHTTP_X_THING=one, two\nHTTP_PROXY=unset\nREMOTE_ADDR=fake/1\n");
}

TEST_CASE("a CGI script reads the body from stdin, Content-Length or chunked") {
  quiet q;
  script_dir d;
  d.add("upper.py",
        "#!/usr/bin/env python3\n"
        "import os, sys\n"
        "body = sys.stdin.buffer.read()\n"
        "sys.stdout.write('Content-Type: text/plain\\n\\n')\n"
        "sys.stdout.write(os.environ.get('CONTENT_LENGTH', '-') + ' ' + body.decode().upper())\n");
  cgi_bed b{d.dir};
  lancer::fake_client c = b.fake.connect();
  std::string reply = b.ask(c,
                            "POST /cgi-bin/upper.py HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                            "Connection: close\r\n\r\nhello");
  CHECK(status_of(reply) == 200);
  CHECK(dechunk(reply) == "5 HELLO");
  lancer::fake_client d2 = b.fake.connect();
  reply = b.ask(d2,
                "POST /cgi-bin/upper.py HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  CHECK(dechunk(reply) == "5 ABCDE");
}

TEST_CASE("Status and Location lines set the answer's status") {
  quiet q;
  script_dir d;
  d.add("gone.sh",
        "#!/bin/sh\nprintf 'Status: 410 Gone\\r\\nContent-Type: text/plain\\r\\n\\r\\nno'\n");
  d.add("moved.sh", "#!/bin/sh\nprintf 'Location: https://example.com/new\\n\\n'\n");
  cgi_bed b{d.dir};
  lancer::fake_client c = b.fake.connect();
  std::string reply =
      b.ask(c, "GET /cgi-bin/gone.sh HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  CHECK(status_of(reply) == 410);
  CHECK(dechunk(reply) == "no");
  lancer::fake_client e = b.fake.connect();
  reply = b.ask(e, "GET /cgi-bin/moved.sh HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  CHECK(status_of(reply) == 302);
  CHECK(reply.find("\r\nLocation: https://example.com/new\r\n") != std::string::npos);
}

TEST_CASE("bad output gets 502, a script that cannot start 502, a missing one 404; all logged") {
  lancer_test::log_capture logs;
  lancer::set_log_level(lancer::log_level::warn);
  script_dir d;
  d.add("nohead.sh", "#!/bin/sh\necho 'just text, no header'\n");
  d.add("silent.sh", "#!/bin/sh\nexit 0\n");
  d.add("noname.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\nbogus line\\n\\nbody'\n");
  d.add("badstatus.sh", "#!/bin/sh\nprintf 'Status: abc\\nContent-Type: text/plain\\n\\n'\n");
  d.add("broken.sh", "#!/no/such/interpreter\n");
  d.add("stderr.sh", "#!/bin/sh\necho 'something went wrong' >&2\nexit 1\n");
  cgi_bed b{d.dir};
  for (const char* name :
       {"nohead.sh", "silent.sh", "noname.sh", "badstatus.sh", "broken.sh", "stderr.sh"}) {
    CAPTURE(name);
    lancer::fake_client c = b.fake.connect();
    const std::string reply = b.ask(c, std::string("GET /cgi-bin/") + name +
                                           " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    CHECK(status_of(reply) == 502);
  }
  lancer::fake_client c = b.fake.connect();
  CHECK(status_of(b.ask(c, "GET /cgi-bin/../etc HTTP/1.1\r\nHost: h\r\n\r\n")) == 404);
  lancer::fake_client e = b.fake.connect();
  CHECK(status_of(b.ask(e, "GET /cgi-bin/missing.sh HTTP/1.1\r\nHost: h\r\n\r\n")) == 404);
  CHECK(logs.contains("cgi nohead.sh: bad output: output that ends before its header does"));
  CHECK(logs.contains("cgi silent.sh: bad output: no output"));
  CHECK(logs.contains("cgi noname.sh: bad output: a header line without a name: 'bogus line'"));
  CHECK(logs.contains("cgi badstatus.sh: bad output: a bad Status"));
  CHECK(logs.contains("broken.sh: cannot start it: No such file or directory"));
  CHECK(logs.contains("WARN cgi stderr.sh] something went wrong"));
  lancer::set_log_level(lancer::log_level::info);
}

TEST_CASE("a script past its timeout is killed: 504 before its answer, a cut answer after") {
  lancer_test::log_capture logs;
  lancer::set_log_level(lancer::log_level::warn);
  script_dir d;
  d.add("slow.sh", "#!/bin/sh\necho $$ > pid\nsleep 30\n");
  d.add("half.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nsome'\nsleep 30\n");
  http::cgi_options o;
  o.timeout = 500ms;
  cgi_bed b{d.dir, o};
  lancer::fake_client c = b.fake.connect();
  const auto start = std::chrono::steady_clock::now();
  const std::string reply =
      b.ask(c, "GET /cgi-bin/slow.sh HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  CHECK(status_of(reply) == 504);
  CHECK(std::chrono::steady_clock::now() - start < 8s);
  std::ifstream pidfile(d.dir / "pid");
  pid_t pid = 0;
  pidfile >> pid;
  REQUIRE(pid > 0);
  CHECK(::kill(pid, 0) == -1);  // killed, and reaped
  // And so is what it started (its `sleep`): the whole group. The orphan is reaped by init, in
  // its own time: wait for that (boundedly).
  bool group_gone = false;
  for (int i = 0; i < 500 && !group_gone; ++i) {
    group_gone = ::kill(-pid, 0) == -1;
    if (!group_gone) std::this_thread::sleep_for(10ms);
  }
  CHECK(group_gone);
  lancer::fake_client e = b.fake.connect();
  const std::string cut =
      b.ask(e, "GET /cgi-bin/half.sh HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  CHECK(status_of(cut) == 200);
  CHECK(dechunk(cut) == "some<unterminated>");  // no last chunk: the client sees it cut
  CHECK(logs.contains("cgi slow.sh: no answer within 0 s: killed"));
  CHECK(logs.contains("cgi half.sh: still writing after 0 s: killed, answer cut"));
  lancer::set_log_level(lancer::log_level::info);
}

TEST_CASE("a script that answers without reading its body does not take the server down") {
  quiet q;
  script_dir d;
  d.add("ignore.sh", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nignored'\n");
  cgi_bed b{d.dir};
  lancer::fake_client c = b.fake.connect();
  // 1 MiB: far more than a pipe holds, so the feeder is still writing when the script exits
  // (a write to a pipe nobody reads must be EPIPE, not SIGPIPE).
  const std::string body(1 << 20, 'x');
  const std::string reply =
      b.ask(c, "POST /cgi-bin/ignore.sh HTTP/1.1\r\nHost: h\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  CHECK(status_of(reply) == 200);
  CHECK(dechunk(reply) == "ignored");
  lancer::fake_client e = b.fake.connect();
  CHECK(status_of(b.ask(e,
                        "POST /cgi-bin/ignore.sh HTTP/1.1\r\nHost: h\r\nContent-Length: 3"
                        "\r\nConnection: close\r\n\r\nabc")) == 200);
}
