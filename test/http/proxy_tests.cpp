// http::proxy on the fake network, in virtual time: no socket at all.
#include "lancer/http/proxy.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "http_app.hpp"
#include "lancer/io/fake_network.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/fake.hpp"
#include "log_capture.hpp"

using namespace std::chrono_literals;
namespace http = lancer::http;
using lancer::task;

namespace {

lancer::address at(const char* text) {
  return lancer::parse_address(text, true);
}

// A proxy server in front of `up`, and (served at tcp/10.0.0.2:80 unless a test changes it)
// a real upstream server running the tests' app, both on fake sources.
struct proxy_bed {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::fake_network net;
  const lancer::address up = at("tcp/10.0.0.2:80");  // before `front`, which uses it
  lancer::server upstream{sched, http::serve(lancer_test::http_app)};
  lancer::fake_source upstream_src;
  lancer::server front;
  lancer::fake_source front_src;

  explicit proxy_bed(http::proxy_options o = {}) : front(sched, make(o)) {
    lancer::set_log_level(lancer::log_level::error);
    upstream.attach_source(upstream_src);
    upstream.run();
    net.serve(up, upstream_src.dialer());
    front.attach_source(front_src);
    front.run();
  }
  ~proxy_bed() { lancer::set_log_level(lancer::log_level::info); }
  lancer::server::handler make(http::proxy_options o) {
    o.net = &net;
    return http::serve(http::proxy(up, std::move(o)));
  }
};

using lancer_test::body_of;
using lancer_test::status_of;

// Reads one request's header (and a Content-Length body) from `s`; "" at EOF.
task<std::string> read_request(lancer::stream& s) {
  for (;;) {
    const std::string_view in = s.buffered();
    const std::size_t end = in.find("\r\n\r\n");
    if (end != std::string_view::npos) {
      std::size_t length = 0;
      if (const std::size_t cl = in.find("Content-Length: "); cl < end) {
        length = std::stoul(std::string(in.substr(cl + 16, in.find("\r\n", cl) - cl - 16)));
      }
      if (in.size() >= end + 4 + length) {
        std::string req(in.substr(0, end + 4 + length));
        s.consume(req.size());
        co_return req;
      }
    }
    const std::size_t n = co_await s.read();
    if (n == 0 && s.at_eof()) co_return "";
  }
}

}  // namespace

TEST_CASE("a request goes through the proxy: hop-by-hop fields dropped, forwarding fields added") {
  proxy_bed b;
  lancer::fake_client c = b.front_src.connect();
  const std::string reply = c.exchange(
      "GET /fields?q=1 HTTP/1.1\r\nHost: shop.example\r\nX-Keep: yes\r\n"
      "Connection: keep-alive, X-Secret\r\nX-Secret: hop\r\nKeep-Alive: timeout=5\r\n"
      "TE: trailers\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n");
  CHECK(status_of(reply) == 200);
  const std::string fields = body_of(reply);
  CHECK(fields.find("Host=shop.example\n") != std::string::npos);
  CHECK(fields.find("X-Keep=yes\n") != std::string::npos);
  CHECK(fields.find("X-Secret") == std::string::npos);
  CHECK(fields.find("Keep-Alive") == std::string::npos);
  CHECK(fields.find("TE=") == std::string::npos);
  CHECK(fields.find("X-Forwarded-For=203.0.113.7, fake/1\n") != std::string::npos);
  CHECK(fields.find("X-Forwarded-Proto=http\n") != std::string::npos);
  CHECK(fields.find("X-Forwarded-Host=shop.example\n") != std::string::npos);
  CHECK(fields.find("Forwarded=for=fake/1;proto=http;host=\"shop.example\"\n") !=
        std::string::npos);
}

TEST_CASE("bodies go through both ways, Content-Length and chunked, on one pooled connection") {
  proxy_bed b;
  lancer::fake_client c = b.front_src.connect();
  std::string reply =
      c.exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
  CHECK(status_of(reply) == 200);
  CHECK(reply.find("\r\nContent-Length: 11\r\n") != std::string::npos);
  CHECK(body_of(reply) == "hello world");
  reply = c.exchange(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
  CHECK(body_of(reply) == "abcdefg");
  lancer::fake_client d = b.front_src.connect();
  CHECK(status_of(d.exchange("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
  CHECK(b.net.connections(b.up) == 1);  // every request went on the same upstream connection
}

TEST_CASE("a chunked answer stays chunked; HEAD and 304 get no body") {
  proxy_bed b;
  b.net.serve(b.up, [](lancer::stream& s) -> task<> {
    for (;;) {
      const std::string req = co_await read_request(s);
      if (req.empty()) co_return;
      if (req.rfind("HEAD", 0) == 0) {
        s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n");
      } else if (req.find("/cached") != std::string::npos) {
        s.write("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
      } else {
        s.write(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
      }
      co_await s.flush();
    }
  });
  lancer::fake_client c = b.front_src.connect();
  std::string reply = c.exchange("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(reply.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(body_of(reply).find("abcde") != std::string::npos);
  reply = c.exchange("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(reply.find("\r\nContent-Length: 5\r\n") != std::string::npos);
  CHECK(body_of(reply).empty());
  reply = c.exchange("GET /cached HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(reply) == 304);
  CHECK(reply.find("\r\nETag: \"v1\"\r\n") != std::string::npos);
  CHECK(status_of(c.exchange("GET /again HTTP/1.1\r\nHost: x\r\n\r\n")) == 200);
}

TEST_CASE("a refused or reset upstream gets 502, one that does not connect or answer gets 504") {
  lancer_test::log_capture logs;
  http::proxy_options o;
  o.connect_timeout = 2s;
  o.response_timeout = 7s;
  proxy_bed b{o};
  lancer::set_log_level(lancer::log_level::warn);
  b.net.fail(b.up, lancer::fake_network::trouble::refuse);
  lancer::fake_client c1 = b.front_src.connect();
  CHECK(status_of(c1.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 502);
  b.net.fail(b.up, lancer::fake_network::trouble::reset);
  lancer::fake_client c2 = b.front_src.connect();
  CHECK(status_of(c2.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 502);
  b.net.fail(b.up, lancer::fake_network::trouble::hold);
  lancer::fake_client c3 = b.front_src.connect();
  CHECK(c3.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n").empty());
  b.sched.advance(2s);
  CHECK(status_of(c3.read()) == 504);
  b.net.serve(b.up, [](lancer::stream& s) -> task<> {  // reads the request, never answers
    co_await read_request(s);
    co_await lancer::sleep_for(1h);
  });
  lancer::fake_client c4 = b.front_src.connect();
  const auto start = b.sched.now();
  CHECK(c4.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n").empty());
  b.sched.advance(6s);
  CHECK(c4.read().empty());
  b.sched.advance(1s);
  CHECK(status_of(c4.read()) == 504);
  CHECK(b.sched.now() - start == 7s);
  CHECK(logs.contains("upstream tcp/10.0.0.2:80: Connection refused (502)"));
  CHECK(logs.contains("upstream tcp/10.0.0.2:80: connect timed out: Connection timed out (504)"));
  CHECK(logs.contains("upstream tcp/10.0.0.2:80: no answer in time (504)"));
}

TEST_CASE("a request goes to an upstream twice only if it is idempotent and has no body") {
  proxy_bed b;
  int requests = 0;
  // Each connection answers its first request, then drops the next one unanswered: what a
  // pooled connection the upstream has just closed looks like to the proxy.
  b.net.serve(b.up, [&requests](lancer::stream& s) -> task<> {
    const std::string first = co_await read_request(s);
    if (first.empty()) co_return;
    ++requests;
    s.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    co_await s.flush();
    const std::string second = co_await read_request(s);
    if (!second.empty()) ++requests;
    s.abort(std::make_error_code(std::errc::connection_reset));
  });
  lancer::fake_client c = b.front_src.connect();
  CHECK(body_of(c.exchange("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")) == "first");
  CHECK(requests == 1);
  // A GET on the pooled connection: dropped, then sent again on a fresh one and answered.
  CHECK(body_of(c.exchange("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")) == "first");
  CHECK(requests == 3);
  CHECK(b.net.connections(b.up) == 2);
  // A POST on the pooled connection: dropped, and never sent again.
  const std::string reply =
      c.exchange("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  CHECK(status_of(reply) == 502);
  CHECK(requests == 4);
  CHECK(b.net.connections(b.up) == 2);
}

TEST_CASE("an upstream that fails in the middle of its answer cuts the client's connection") {
  proxy_bed b;
  b.net.serve(b.up, [](lancer::stream& s) -> task<> {
    co_await read_request(s);
    s.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
    co_await s.flush();
    s.abort(std::make_error_code(std::errc::connection_reset));
  });
  lancer::fake_client c = b.front_src.connect();
  const std::string reply = c.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(reply.find("\r\nContent-Length: 100\r\n") != std::string::npos);
  CHECK(body_of(reply) == "only part");
  CHECK(c.server_done());  // cut: the client knows the answer is incomplete
}

TEST_CASE("an interim answer and the final one in one write: the final one is not waited for") {
  proxy_bed b;
  b.net.serve(b.up, [](lancer::stream& s) -> task<> {
    co_await read_request(s);
    s.write(
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    co_await s.flush();
    co_await lancer::sleep_for(1h);  // and keeps the connection open
  });
  lancer::fake_client c = b.front_src.connect();
  const std::string reply = c.exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // no time passes
  CHECK(status_of(reply) == 200);
  CHECK(body_of(reply) == "ok");
}

TEST_CASE("a retry never takes a second pooled connection") {
  proxy_bed b;
  int requests = 0;
  b.net.serve(b.up, [&requests](lancer::stream& s) -> task<> {
    const std::string first = co_await read_request(s);
    if (first.empty()) co_return;
    ++requests;
    s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    co_await s.flush();
    if (!(co_await read_request(s)).empty()) ++requests;
    s.abort(std::make_error_code(std::errc::connection_reset));  // the second: dropped
  });
  // Two pooled connections, both about to drop their next request.
  lancer::fake_client c1 = b.front_src.connect();
  lancer::fake_client c2 = b.front_src.connect();
  c1.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
  c2.write("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  b.sched.run_until_idle();
  c1.read();
  c2.read();
  REQUIRE(b.net.connections(b.up) == 2);
  // A GET: the first pooled one drops it; the retry goes on a fresh connection, not the
  // second pooled one (which would drop it too).
  CHECK(body_of(c1.exchange("GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")) == "ok");
  CHECK(b.net.connections(b.up) == 3);
}

TEST_CASE("a pooled connection its upstream has closed is seen before it is used: no retry") {
  proxy_bed b;
  int requests = 0;
  // Each connection answers one request and closes.
  b.net.serve(b.up, [&requests](lancer::stream& s) -> task<> {
    if ((co_await read_request(s)).empty()) co_return;
    ++requests;
    s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    co_await s.flush();
    s.close();
  });
  lancer_test::log_capture logs;
  lancer::set_log_level(lancer::log_level::debug);
  lancer::fake_client c = b.front_src.connect();
  CHECK(body_of(c.exchange("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")) == "ok");
  b.sched.run_until_idle();  // the close reaches the pooled connection
  // A GET and a POST: each on a fresh connection, neither sent on the closed one first.
  CHECK(body_of(c.exchange("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")) == "ok");
  b.sched.run_until_idle();
  CHECK(body_of(c.exchange("POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")) == "ok");
  CHECK(requests == 3);
  CHECK(b.net.connections(b.up) == 3);
  CHECK_FALSE(logs.contains("a pooled connection was dead"));
  lancer::set_log_level(lancer::log_level::error);
}
