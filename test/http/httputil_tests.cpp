// httputil through the fake source: requests, bodies, responses, keep-alive, pipelining, and
// every kind of bad input, each answered with its status and Connection: close.
#include "lancer/http/httputil.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "http_app.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"
#include "log_capture.hpp"

using namespace std::chrono_literals;
using lancer::connection;
using lancer::fake_client;
using lancer::frame;
using lancer::pubframe;
using lancer::task;
namespace http = lancer::http;

namespace {

// GET /plaintext answers "Hello, World!"; /echo answers with the request body; others 404.
task<> app(connection& c, frame&, pubframe&) {
  http::request req;
  while (co_await http::wait_for_headers(c, req)) {
    if (req.target() == "/echo") {
      const auto body = co_await http::read_body(c, req);
      if (!body) co_return;
      co_await http::respond(c, req, 200, "application/octet-stream", *body);
    } else if (req.target() == "/plaintext") {
      co_await http::respond(c, req, 200, "text/plain", "Hello, World!");
    } else {
      co_await http::respond(c, req, 404, "text/plain", "not found\n");
    }
  }
}

struct fixture {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, app};
  lancer::fake_source fake;
  fixture() {
    lancer::set_log_level(lancer::log_level::warn);
    srv.attach_source(fake);
    srv.run();
  }
  ~fixture() { lancer::set_log_level(lancer::log_level::info); }
};

// The status and the body of the first response in `reply` (test/support/http_app.hpp).
using lancer_test::body_of;
using lancer_test::status_of;

std::size_t count(const std::string& s, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
    ++n;
  return n;
}

}  // namespace

TEST_CASE("a GET is answered with Date, Server, Content-Type, Content-Length and the body") {
  fixture f;
  fake_client c = f.fake.connect();
  const std::string reply = c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(reply) == 200);
  CHECK(reply.find("\r\nServer: lancer\r\n") != std::string::npos);
  CHECK(reply.find("\r\nDate: ") != std::string::npos);
  CHECK(reply.find("\r\nContent-Type: text/plain\r\n") != std::string::npos);
  CHECK(reply.find("\r\nContent-Length: 13\r\n") != std::string::npos);
  CHECK(body_of(reply) == "Hello, World!");
  CHECK_FALSE(c.server_done());  // HTTP/1.1 stays open
}

TEST_CASE("keep-alive serves several requests on one connection; Connection: close ends it") {
  fixture f;
  fake_client c = f.fake.connect();
  for (int i = 0; i < 3; ++i) {
    CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  }
  const std::string last =
      c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(status_of(last) == 200);
  CHECK(last.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(c.server_done());
}

TEST_CASE("HTTP/1.0 closes by default and stays open with keep-alive") {
  fixture f;
  fake_client a = f.fake.connect();
  CHECK(status_of(a.exchange("GET /plaintext HTTP/1.0\r\n\r\n")) == 200);
  CHECK(a.server_done());
  fake_client b = f.fake.connect();
  const std::string reply = b.exchange("GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(reply.find("\r\nConnection: keep-alive\r\n") != std::string::npos);
  CHECK_FALSE(b.server_done());
}

TEST_CASE("HEAD gets the headers of a GET and no body") {
  fixture f;
  fake_client c = f.fake.connect();
  const std::string reply = c.exchange("HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(reply) == 200);
  CHECK(reply.find("\r\nContent-Length: 13\r\n") != std::string::npos);
  CHECK(body_of(reply).empty());
}

TEST_CASE("pipelined requests are answered in order, in one write") {
  fixture f;
  fake_client c = f.fake.connect();
  c.set_window(0);  // hold the server's output until everything is answered
  c.write(
      "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  f.sched.run_until_idle();
  c.set_window(1 << 20);  // one transport write carries all three
  const std::string reply = c.read();
  CHECK(count(reply, "HTTP/1.1 ") == 3);
  const std::size_t first = reply.find("Hello, World!");
  const std::size_t second = reply.find("not found");
  const std::size_t third = reply.find("abc");
  CHECK(first < second);
  CHECK(second < third);
  CHECK(third != std::string::npos);
}

TEST_CASE("a request arriving one byte at a time is waited for, never answered early") {
  fixture f;
  fake_client c = f.fake.connect();
  const std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  for (std::size_t i = 0; i + 1 < request.size(); ++i) {
    CHECK(c.exchange(request.substr(i, 1)).empty());
  }
  const std::string reply = c.exchange(request.substr(request.size() - 1));
  CHECK(status_of(reply) == 200);
  CHECK(body_of(reply) == "hello");
}

TEST_CASE("a chunked body is decoded; extensions are ignored and trailers dropped") {
  fixture f;
  fake_client c = f.fake.connect();
  const std::string reply = c.exchange(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: yes\r\n\r\n");
  CHECK(status_of(reply) == 200);
  CHECK(body_of(reply) == "hello world");
  CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
}

TEST_CASE("Expect: 100-continue gets 100 only when the handler reads the body") {
  fixture f;
  fake_client c = f.fake.connect();
  const std::string first = c.exchange(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  CHECK(first == "HTTP/1.1 100 Continue\r\n\r\n");
  CHECK(body_of(c.exchange("ok")) == "ok");
  fake_client d = f.fake.connect();
  const std::string unread = d.exchange(
      "POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  CHECK(status_of(unread) == 404);  // answered without the body: no 100, and the connection closes
  CHECK(unread.find("100 Continue") == std::string::npos);
  CHECK(d.server_done());
}

TEST_CASE("an unread fixed body is skipped so the next request is read right") {
  fixture f;
  fake_client c = f.fake.connect();
  CHECK(status_of(c.exchange(
            "POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")) == 404);
  CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
}

namespace {
struct bad_case {
  const char* what;
  std::string request;
  unsigned status;
};
}  // namespace

TEST_CASE("bad input is answered with its status and Connection: close, then closed") {
  const std::string long_target(9000, 'a');
  const std::string nul(1, '\0');
  std::string many_fields;
  for (int i = 0; i < 101; ++i)
    many_fields += "X-" + std::to_string(i) + ": v\r\n";
  const std::vector<bad_case> cases = {
      {"missing Host on 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"negative Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
      {"non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ab\r\n\r\n",
       400},
      {"overflowing Content-Length",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
      {"signed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400},
      {"differing Content-Length list",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n", 400},
      {"Content-Length with Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"unknown Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
       501},
      {"chunked not last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
       400},
      {"chunked twice",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       400},
      {"whitespace before the colon of Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
      {"Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"chunk size not hex",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"chunk size overflowing",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
       400},
      {"negative chunk size",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", 400},
      {"control character in a value",
       "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01"
       "b\r\n\r\n",
       400},
      {"NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: a" + nul + "b\r\n\r\n", 400},
      {"invalid character in a field name", "GET / HTTP/1.1\r\nHost: x\r\nX(y): v\r\n\r\n", 400},
      {"whitespace before a colon", "GET / HTTP/1.1\r\nHost: x\r\nX : v\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
      {"bare CR", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400},
      {"bad version", "GET / HTTP/x.y\r\nHost: x\r\n\r\n", 400},
      {"missing version", "GET /\r\nHost: x\r\n\r\n", 400},
      {"missing version, then a space", "GET / \r\n\r\n", 400},
      {"version with a bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400},
      {"unsupported version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
      {"invalid method token", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"NUL in the target", "GET /a" + nul + "b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"request line over the limit", "GET /" + long_target + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
      {"header block over the limit",
       "GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(9000, 'v') + "\r\n\r\n", 431},
      {"too many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + many_fields + "\r\n", 431},
      {"body over the limit", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
       413},
  };
  for (const bad_case& bc : cases) {
    const std::string what = bc.what;
    CAPTURE(what);
    fixture f;
    fake_client c = f.fake.connect();
    const std::string reply = c.exchange(bc.request);
    CHECK(status_of(reply) == bc.status);
    CHECK(reply.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(c.server_done());
  }
}

TEST_CASE("a header that never ends gets 408 at the header timeout") {
  fixture f;
  const auto start = f.sched.now();
  fake_client c = f.fake.connect();
  CHECK(c.exchange("GET / HTTP/1.1\r\nHost: x\r\n").empty());
  f.sched.advance(9s);
  CHECK(c.read().empty());
  f.sched.advance(1s);
  const std::string reply = c.read();
  CHECK(status_of(reply) == 408);
  CHECK(c.server_done());
  CHECK(f.sched.now() == start + 10s);
}

TEST_CASE("an idle keep-alive connection is closed quietly at the idle timeout") {
  fixture f;
  fake_client c = f.fake.connect();
  CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  f.sched.advance(59s);
  CHECK_FALSE(c.server_done());
  f.sched.advance(1s);
  CHECK(c.read().empty());  // no 408 for a connection between requests
  CHECK(c.server_done());
}

TEST_CASE("status tables map codes and reasons both ways") {
  CHECK(http::code2status(404) == "Not Found");
  CHECK(http::code2status(200) == "OK");
  CHECK(http::code2status(999).empty());
  CHECK(http::status2code("not found") == 404);
  CHECK(http::status2code("Request Header Fields Too Large") == 431);
  CHECK(http::status2code("no such reason") == 0);
  CHECK(http::default_methods().find("GET") != std::string_view::npos);
}

TEST_CASE("headers are found case-insensitively, repeated names are all kept") {
  std::vector<std::string> seen;
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, [&](connection& c, frame&, pubframe&) -> task<> {
                       http::request req;
                       while (co_await http::wait_for_request(c, req)) {
                         const http::headers& h = req.headers();
                         seen.emplace_back(h.get("x-THING"));
                         seen.push_back(std::to_string(h.count("x-thing")));
                         seen.push_back(h.has_token("connection", "Upgrade") ? "upgrade" : "no");
                         co_await http::respond(c, req, 204, "", "");
                       }
                     }};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  fake_client c = fake.connect();
  c.exchange(
      "GET / HTTP/1.1\r\nHost: x\r\nX-Thing: one\r\nx-thing: two\r\nConnection: keep-alive, "
      "Upgrade\r\n\r\n");
  CHECK(seen == std::vector<std::string>{"one", "2", "upgrade"});
}

TEST_CASE("serve answers 500 when the request handler throws before responding") {
  lancer_test::log_capture logs;
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{
      sched, http::serve([](connection& c, http::request& req, frame&, pubframe&) -> task<> {
        if (req.target() == "/boom") throw std::runtime_error("kaput");
        if (req.target() == "/silent") co_return;  // forgets to answer
        co_await http::respond(c, req, 200, "text/plain", "fine");
      })};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  fake_client a = fake.connect();
  CHECK(status_of(a.exchange("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  const std::string reply = a.exchange("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(reply) == 500);
  CHECK(reply.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(a.server_done());
  CHECK(logs.contains("handler failed on GET /boom: kaput"));
  fake_client b = fake.connect();
  CHECK(status_of(b.exchange("GET /silent HTTP/1.1\r\nHost: x\r\n\r\n")) == 500);
  CHECK(logs.contains("returned without answering GET /silent"));
  fake_client other = fake.connect();
  CHECK(status_of(other.exchange("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
}

namespace {

// A server around one connection handler, for the tests below.
struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv;
  lancer::fake_source fake;
  explicit bed(lancer::server::handler h) : srv(sched, std::move(h)) {
    lancer::set_log_level(lancer::log_level::warn);
    srv.attach_source(fake);
    srv.run();
  }
  ~bed() { lancer::set_log_level(lancer::log_level::info); }
};

// Decodes a chunked body ("5\r\nhello\r\n0\r\n\r\n" -> "hello"); "?" if malformed.
std::string dechunk(std::string_view in) {
  std::string out;
  for (;;) {
    const std::size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return "?";
    const std::size_t n = std::stoul(std::string(in.substr(0, eol)), nullptr, 16);
    in.remove_prefix(eol + 2);
    if (n == 0) return out;
    out += in.substr(0, n);
    in.remove_prefix(n + 2);
  }
}

}  // namespace

TEST_CASE("wait_for_request reads the whole body before it returns") {
  std::vector<std::string> bodies;
  bed b{[&](connection& c, frame&, pubframe&) -> task<> {
    http::request req;
    while (co_await http::wait_for_request(c, req)) {
      bodies.emplace_back(req.body());
      co_await http::respond(c, req, 204, "", "");
    }
  }};
  fake_client c = b.fake.connect();
  CHECK(status_of(c.exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")) == 204);
  CHECK(status_of(c.exchange("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "2\r\nde\r\n1\r\nf\r\n0\r\n\r\n")) == 204);
  CHECK(bodies == std::vector<std::string>{"abc", "def"});
}

TEST_CASE("read_body_some streams a large body in bounded pieces") {
  std::size_t total = 0, pieces = 0, max_buffered = 0;
  bool intact = true;
  http::limits lim;
  lim.body = 64u << 20;
  bed b{[&](connection& c, frame&, pubframe&) -> task<> {
    http::request req;
    while (co_await http::wait_for_headers(c, req, lim)) {
      for (;;) {
        const auto piece = co_await http::read_body_some(c, req, 16 * 1024, lim);
        if (!piece) co_return;
        if (piece->empty()) break;
        for (std::size_t i = 0; i < piece->size(); i += 997) {
          intact = intact && (*piece)[i] == static_cast<char>('a' + (total + i) % 26);
        }
        total += piece->size();
        ++pieces;
        max_buffered = std::max(max_buffered, c.buffered().size());
      }
      co_await http::respond(c, req, 200, "text/plain", std::to_string(total));
    }
  }};
  for (const bool chunked : {false, true}) {
    CAPTURE(chunked);
    total = pieces = max_buffered = 0;
    fake_client c = b.fake.connect();
    constexpr std::size_t size = 8u << 20;
    c.write(chunked ? "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    : "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(size) +
                          "\r\n\r\n");
    std::string block;
    for (std::size_t sent = 0; sent < size; sent += 32 * 1024) {
      block.clear();
      for (std::size_t i = 0; i < 32 * 1024; ++i)
        block += static_cast<char>('a' + (sent + i) % 26);
      if (chunked) c.write("8000\r\n");
      c.write(block);
      if (chunked) c.write("\r\n");
      b.sched.run_until_idle();
    }
    const std::string reply = c.exchange(chunked ? "0\r\n\r\n" : "");
    CHECK(body_of(reply) == std::to_string(size));
    CHECK(intact);
    CHECK(pieces > 100);
    CHECK(max_buffered < 256 * 1024);  // never the whole 8 MiB
  }
}

TEST_CASE("a chunked response streams its pieces; HEAD gets the head only; 1.0 runs to close") {
  bed b{[](connection& c, frame&, pubframe&) -> task<> {
    http::request req;
    while (co_await http::wait_for_headers(c, req)) {
      http::start_chunked(c, req, 200, "text/plain");
      for (const char* piece : {"one ", "two ", "three"})
        co_await http::send_chunk(c, req, piece);
      co_await http::end_chunked(c, req);
    }
  }};
  fake_client c = b.fake.connect();
  const std::string reply = c.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(reply.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(reply.find("Content-Length") == std::string::npos);
  CHECK(dechunk(body_of(reply)) == "one two three");
  const std::string head = c.exchange("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(head) == 200);
  CHECK(body_of(head).empty());
  CHECK_FALSE(c.server_done());
  fake_client old = b.fake.connect();
  const std::string reply10 = old.exchange("GET / HTTP/1.0\r\n\r\n");
  CHECK(body_of(reply10) == "one two three");
  CHECK(reply10.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(old.server_done());
}

TEST_CASE("a body that stops arriving gets 408 after the body timeout") {
  bed b{http::serve([](connection& c, http::request& req, frame&, pubframe&) -> task<> {
    const auto body = co_await http::read_body(c, req);  // limits: body_timeout 30 s
    if (body) co_await http::respond(c, req, 200, "text/plain", *body);
  })};
  const auto start = b.sched.now();
  fake_client c = b.fake.connect();
  CHECK(c.exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab").empty());
  b.sched.advance(30s);
  CHECK(c.read().empty());  // the 2 bytes that came earned 2/1024 s more
  b.sched.advance(2ms);
  const std::string reply = c.read();
  CHECK(status_of(reply) == 408);
  CHECK(reply.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(c.server_done());
  CHECK(b.sched.now() - start == 30s + 2ms);
}

TEST_CASE("a body trickling a byte every 29 s gets 408 once below the minimum rate") {
  bed b{http::serve([](connection& c, http::request& req, frame&, pubframe&) -> task<> {
    const auto body = co_await http::read_body(c, req);  // 30 s, plus 1 s per 1024 bytes
    if (body) co_await http::respond(c, req, 200, "text/plain", *body);
  })};
  const auto start = b.sched.now();
  fake_client c = b.fake.connect();
  CHECK(c.exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").empty());
  std::string reply;
  for (int second = 1; second <= 100 && reply.empty(); ++second) {
    b.sched.advance(1s);
    reply = c.read();
    if (reply.empty() && second % 29 == 0) reply = c.exchange("x");
  }
  CHECK(status_of(reply) == 408);
  // 30 s, and the 1 ms that the byte sent at 29 s earns at 1024 bytes/s.
  CHECK(b.sched.now() - start == 31s);
}

TEST_CASE("a body at the minimum rate or faster may take longer than the body timeout") {
  http::limits lim;
  lim.body = 1 << 20;
  bed b{http::serve(
      [&](connection& c, http::request& req, frame&, pubframe&) -> task<> {
        const auto body = co_await http::read_body(c, req, lim);
        if (body) co_await http::respond(c, req, 200, "text/plain", std::to_string(body->size()));
      },
      lim)};
  fake_client c = b.fake.connect();
  const std::size_t size = 200 * 1024;
  CHECK(c.exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(size) +
                   "\r\n\r\n")
            .empty());
  // 2 KiB every second: twice the minimum rate, 100 s in all.
  std::string reply;
  for (std::size_t sent = 0; sent < size; sent += 2048) {
    b.sched.advance(1s);
    reply += c.exchange(std::string(2048, 'b'));
  }
  CHECK(status_of(reply) == 200);
  CHECK(body_of(reply) == std::to_string(size));
}

TEST_CASE("with no minimum rate, progress restarts the body timeout") {
  http::limits lim;
  lim.body_min_rate = 0;
  bed b{http::serve(
      [&](connection& c, http::request& req, frame&, pubframe&) -> task<> {
        const auto body = co_await http::read_body(c, req, lim);
        if (body) co_await http::respond(c, req, 200, "text/plain", *body);
      },
      lim)};
  const auto start = b.sched.now();
  fake_client c = b.fake.connect();
  CHECK(c.exchange("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab").empty());
  b.sched.advance(20s);
  CHECK(c.exchange("cd").empty());  // progress at 20 s: the 30 s start again
  b.sched.advance(29s);
  CHECK(c.read().empty());
  b.sched.advance(1s);
  CHECK(status_of(c.read()) == 408);
  CHECK(b.sched.now() == start + 50s);
}

TEST_CASE("a 408 for a stalled body reaches the access log with its status") {
  std::vector<std::string> lines;
  bed b{http::serve(
      [](connection& c, http::request& req, frame&, pubframe&) -> task<> {
        const auto body = co_await http::read_body(c, req);
        if (body) co_await http::respond(c, req, 200, "text/plain", *body);
      },
      {},
      [&](const connection& c, const http::request& req) {
        lines.push_back(http::access_line(c, req));
      })};
  fake_client c = b.fake.connect();
  c.exchange("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
  b.sched.advance(31s);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("\"POST /slow HTTP/1.1\" 408 16 ") != std::string::npos);
}

TEST_CASE("a request line without a version is answered 400 as soon as the line ends") {
  fixture f;
  fake_client c = f.fake.connect();
  const std::string reply = c.exchange("GET / \r\n\r\n");
  CHECK(status_of(reply) == 400);
  CHECK(c.server_done());
  fake_client d = f.fake.connect();
  CHECK(status_of(d.exchange("GET /\r\n")) == 400);  // HTTP/0.9's form
}

TEST_CASE("HTTP/1.2 to 1.9 are answered as HTTP/1.1; other majors get 505") {
  for (char minor = '2'; minor <= '9'; ++minor) {
    CAPTURE(minor);
    fixture f;
    fake_client c = f.fake.connect();
    const std::string reply =
        c.exchange(std::string("GET /plaintext HTTP/1.") + minor + "\r\nHost: x\r\n\r\n");
    CHECK(reply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(body_of(reply) == "Hello, World!");
    CHECK_FALSE(c.server_done());  // kept alive, as 1.1 is
  }
  for (const char* v : {"HTTP/0.9", "HTTP/2.0", "HTTP/3.1"}) {
    CAPTURE(v);
    fixture f;
    fake_client c = f.fake.connect();
    CHECK(status_of(c.exchange(std::string("GET / ") + v + "\r\nHost: x\r\n\r\n")) == 505);
  }
}

TEST_CASE("an absolute-form target: the handler sees the path, the authority is the host") {
  std::vector<std::string> seen;
  bed b{http::serve([&](connection& c, http::request& req, frame&, pubframe&) -> task<> {
    seen.push_back(std::string(req.host()) + " " + std::string(req.target()));
    co_await http::respond(c, req, 200, "text/plain", "ok");
  })};
  fake_client c = b.fake.connect();
  CHECK(status_of(c.exchange(
            "GET http://example.com/plaintext?a=1 HTTP/1.1\r\nHost: other\r\n\r\n")) == 200);
  CHECK(status_of(c.exchange("GET HTTPS://Example.com:8443 HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  CHECK(status_of(c.exchange("GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n")) == 200);
  CHECK(status_of(c.exchange("GET /plain HTTP/1.1\r\nHost: h:81\r\n\r\n")) == 200);
  CHECK(seen == std::vector<std::string>{"example.com /plaintext?a=1", "Example.com:8443 /",
                                         "h /?q", "h:81 /plain"});
}

TEST_CASE("targets in no form their method allows get 400") {
  for (const char* line : {"GET ftp://example.com/ HTTP/1.1", "GET plaintext HTTP/1.1",
                           "GET * HTTP/1.1", "GET http:///x HTTP/1.1", "GET http://a@b/ HTTP/1.1",
                           "CONNECT / HTTP/1.1", "CONNECT a b:1 HTTP/1.1"}) {
    CAPTURE(line);
    fixture f;
    fake_client c = f.fake.connect();
    CHECK(status_of(c.exchange(std::string(line) + "\r\nHost: x\r\n\r\n")) == 400);
  }
  fixture f;
  fake_client c = f.fake.connect();
  CHECK(status_of(c.exchange("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")) == 404);  // app's answer
}

TEST_CASE("a Host that is not a valid host gets 400") {
  for (const std::string host : {"a b", "a/b", "a\tb", "a@b", "[::1",
                                 "a\xff"
                                 "b",
                                 "a:b:c", "a:8o", "[::1]x", "a%zz"}) {
    CAPTURE(host);
    fixture f;
    fake_client c = f.fake.connect();
    CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: " + host + "\r\n\r\n")) == 400);
  }
  for (const std::string host : {"example.com", "a-b.c_d~e", "127.0.0.1:8080", "[::1]:80",
                                 "xn--bcher-kva.example", "", "h:"}) {
    CAPTURE(host);
    CHECK(http::valid_host(host));
    fixture f;
    fake_client c = f.fake.connect();
    CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: " + host + "\r\n\r\n")) == 200);
  }
}

TEST_CASE("a few empty lines before a request line are ignored; many are refused") {
  fixture f;
  fake_client c = f.fake.connect();
  CHECK(status_of(c.exchange("\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  // After a request, as a client that ends a body with a stray CRLF sends them.
  CHECK(status_of(c.exchange("\r\n\n\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  std::string split;
  for (const char ch : std::string("\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"))
    split += c.exchange(std::string(1, ch));
  CHECK(status_of(split) == 200);
  fake_client d = f.fake.connect();
  CHECK(status_of(d.exchange("\r\n\r\n\r\n\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) ==
        400);
  CHECK(d.server_done());
}

TEST_CASE("access_line writes nginx's combined format, escaping what the client sent") {
  std::string line;
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, http::serve(
                                [](connection& c, http::request& req, frame&, pubframe&) -> task<> {
                                  co_await http::respond(c, req, 200, "text/plain", "12345");
                                },
                                {},
                                [&](const connection& c, const http::request& req) {
                                  line = http::access_line(c, req);
                                })};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  fake_client c = fake.connect();
  c.exchange("GET /x?y HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\nUser-Agent: a\"b\r\n\r\n");
  CHECK(line.rfind("fake/1 - - [", 0) == 0);
  CHECK(line.find("] \"GET /x?y HTTP/1.1\" 200 5 \"http://r/\" \"a\\x22b\"") != std::string::npos);
}

TEST_CASE("regression: a chunked body whose first chunk is the last, sent byte by byte") {
  // Found by the fuzzer: Beast 1.81 asserted in parse_chunk_header on "0\r\n" followed by a
  // trailer arriving one byte at a time (builds with asserts aborted).
  fixture f;
  fake_client c = f.fake.connect();
  const std::string request =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: v\r\n\r\n";
  std::string reply;
  for (const char ch : request)
    reply += c.exchange(std::string(1, ch));
  CHECK(status_of(reply) == 200);
  CHECK(body_of(reply).empty());
  const std::string again =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n";
  reply.clear();
  for (const char ch : again)
    reply += c.exchange(std::string(1, ch));
  CHECK(body_of(reply) == "abc");
}

TEST_CASE("a peer's doing is logged at INFO, the server's own faults at ERROR") {
  lancer_test::log_capture logs;
  lancer::set_log_level(lancer::log_level::info);
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{
      sched, http::serve([](connection& c, http::request& req, frame&, pubframe&) -> task<> {
        if (req.target() == "/boom") throw std::runtime_error("kaput");
        const auto body = co_await http::read_body(c, req);
        if (body) co_await http::respond(c, req, 200, "text/plain", *body);
      })};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  for (int i = 0; i < 1000; ++i) {
    fake_client c = fake.connect();
    c.exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
    c.reset();  // in the middle of the body
    sched.run_until_idle();
  }
  fake_client w = fake.connect();
  w.exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
  w.fail_reads(std::errc::connection_reset);
  sched.run_until_idle();
  std::size_t errors = 0, resets = 0;
  for (const std::string& l : logs.lines) {
    errors += l.find(" ERROR ") != std::string::npos;
    resets += l.find(" INFO conn/") != std::string::npos &&
              l.find("POST /echo: conn/") != std::string::npos;
  }
  CHECK(errors == 0);
  CHECK(resets == 1001);
  fake_client b = fake.connect();
  CHECK(status_of(b.exchange("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")) == 500);
  CHECK(logs.contains("ERROR conn/" + std::to_string(b.id()) +
                      "] handler failed on GET /boom: kaput"));
  CHECK(srv.stats().handler_errors == 0);  // serve answered it: the handler's thread went on
  lancer::set_log_level(lancer::log_level::info);
}

// --- drain: no request that reached the server goes unanswered --------------------------------

TEST_CASE("drain: a request being read is answered, with Connection: close") {
  fixture f;
  fake_client c = f.fake.connect();
  CHECK(c.exchange("GET /plaintext HTTP/1.1\r\nHo").empty());
  f.srv.drain(f.sched.now() + 10s);
  const std::string reply = c.exchange("st: x\r\n\r\n");
  CHECK(status_of(reply) == 200);
  CHECK(reply.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(c.server_done());
  CHECK_FALSE(c.server_reset());
}

TEST_CASE("drain: an idle connection waits drain_grace for a request on its way, then closes") {
  fixture f;
  fake_client busy = f.fake.connect();
  fake_client quiet = f.fake.connect();
  CHECK(status_of(busy.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  CHECK(status_of(quiet.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  const auto start = f.sched.now();
  f.srv.drain(start + 10s);
  f.sched.run_until_idle();
  CHECK_FALSE(busy.server_done());
  CHECK_FALSE(quiet.server_done());
  f.sched.advance(500ms);
  const std::string reply = busy.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(reply) == 200);  // a request during the grace is answered
  CHECK(reply.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(busy.server_done());
  f.sched.advance(499ms);
  CHECK_FALSE(quiet.server_done());
  f.sched.advance(1ms);
  CHECK(quiet.server_done());  // the grace is over: a FIN, at 1 s exactly
  CHECK(quiet.read().empty());
  quiet.shutdown_write();
  busy.shutdown_write();
  f.sched.run_until_idle();
  CHECK(quiet.server_closed());
  CHECK(busy.server_closed());
  CHECK_FALSE(quiet.server_reset());
  CHECK_FALSE(busy.server_reset());
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("drain: pipelined requests already buffered are all answered; the last one closes") {
  fixture f;
  fake_client c = f.fake.connect();
  CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  f.srv.drain(f.sched.now() + 10s);
  const std::string reply = c.exchange(
      "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(count(reply, "HTTP/1.1 ") == 3);
  CHECK(count(reply, "Connection: close") == 1);
  CHECK(reply.find("Connection: close") > reply.find("abc"));  // on the last answer only
  CHECK(c.server_done());
  CHECK_FALSE(c.server_reset());
}

TEST_CASE("drain: at its deadline a request still in progress is cut off and logged") {
  lancer_test::log_capture logs;
  fixture f;
  lancer::set_log_level(lancer::log_level::warn);
  fake_client c = f.fake.connect();
  CHECK(c.exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n").empty());
  const auto start = f.sched.now();
  f.srv.drain(start + 3s);
  for (int i = 0; i < 5 && !c.server_closed(); ++i) {
    f.sched.advance(1s);
    if (!c.server_closed()) c.exchange("0123456789");  // steady progress, fast enough
  }
  CHECK(c.server_closed());
  CHECK(f.sched.now() - start == 3s);
  CHECK(logs.contains("WARN conn/" + std::to_string(c.id()) + "] cut off at the drain deadline"));
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("drain: a request that arrived unseen at the grace's end is read and answered") {
  fixture f;
  fake_client c = f.fake.connect();
  CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  f.srv.drain(f.sched.now() + 10s);
  f.sched.advance(999ms);
  // It came just now, and the server has not seen it yet: the last look before the close
  // finds it.
  c.write_unseen("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
  f.sched.advance(1ms);
  const std::string reply = c.read();
  CHECK(status_of(reply) == 200);
  CHECK(reply.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(c.server_done());
  CHECK_FALSE(c.server_reset());
}

TEST_CASE("drain: a grace that ends at the drain's deadline still ends quietly") {
  lancer_test::log_capture logs;
  fixture f;
  lancer::set_log_level(lancer::log_level::warn);
  fake_client c = f.fake.connect();
  CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  const auto start = f.sched.now();
  f.srv.drain(start + 1s);  // as `lancer-serve --drain 1`: the grace (1 s) reaches the deadline
  f.sched.advance(1s);
  CHECK(c.server_done());
  CHECK(f.srv.stats().cut_off == 0);
  CHECK_FALSE(logs.contains("cut off"));
  c.shutdown_write();
  f.sched.run_until_idle();
  CHECK(c.server_closed());
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("a stray CRLF after a request is not a request: the idle timeout still applies") {
  fixture f;
  fake_client c = f.fake.connect();
  const std::string reply =
      c.exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n");
  CHECK(status_of(reply) == 200);
  f.sched.advance(30s);  // past the header timeout (10 s): no 408
  CHECK(c.read().empty());
  CHECK_FALSE(c.server_done());
  CHECK(status_of(c.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  // At a drain, the stray CRLF is no request waiting: the answer closes.
  fake_client d = f.fake.connect();
  f.srv.drain(f.sched.now() + 10s);
  const std::string last =
      d.exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\r\n");
  CHECK(last.find("\r\nConnection: close\r\n") != std::string::npos);
  CHECK(d.server_done());
}

TEST_CASE("a header ending in bare LFs is refused at once, not after the header timeout") {
  fixture f;
  for (const char* request :
       {"GET /plaintext HTTP/1.1\r\nHost: x\n\n", "GET /plaintext HTTP/1.1\r\nHost: x\n\r\n",
        "GET /plaintext HTTP/1.1\r\nHost: x\r\n\n"}) {
    CAPTURE(request);
    fake_client c = f.fake.connect();
    CHECK(status_of(c.exchange(request)) == 400);
  }
}
