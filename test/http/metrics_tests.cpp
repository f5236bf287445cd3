// http::metrics: request counts by status class, the latency histogram in virtual time, byte
// counts, connections open and timeouts from a watched server, reloads, the scrape handler,
// and a render that parses back as the Prometheus text format.
#include "lancer/http/metrics.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/fake.hpp"
#include "metrics_text.hpp"

using namespace std::chrono_literals;
namespace http = lancer::http;
using lancer::connection;
using lancer::fake_client;
using lancer::frame;
using lancer::pubframe;
using lancer::task;
using lancer_test::exposition;
using lancer_test::parse_exposition;

namespace {

// GET /ok: 200 "ok"; GET /slow: 200 after 30 ms; POST /echo: the body back; else 404.
task<> app(connection& c, http::request& req, frame&, pubframe&) {
  const std::string_view target = req.target();
  if (target == "/ok") {
    co_await http::respond(c, req, 200, "text/plain", "ok");
  } else if (target == "/slow") {
    co_await lancer::sleep_for(30ms);
    co_await http::respond(c, req, 200, "text/plain", "slow");
  } else if (target == "/echo") {
    const auto body = co_await http::read_body(c, req, {.body = 100});
    if (body) co_await http::respond(c, req, 200, "application/octet-stream", *body);
  } else {
    co_await http::respond(c, req, 404, "text/plain", "Not Found\n");
  }
}

// A watched server on the fake source, in virtual time, counting into `m`.
struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  http::metrics m;
  lancer::server srv{sched, http::serve(app, {.body = 100}, m.hook())};
  lancer::fake_source fake;
  bed() {
    lancer::set_log_level(lancer::log_level::warn);
    srv.attach_source(fake);
    srv.run();
    m.watch(srv);
  }
  ~bed() { lancer::set_log_level(lancer::log_level::info); }
  exposition scrape() const { return parse_exposition(m.render()); }
};

}  // namespace

TEST_CASE("metrics: requests are counted by status class") {
  bed b;
  fake_client c = b.fake.connect();
  c.exchange("GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
  c.exchange("GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n");
  // A body over the limit is refused from its header (413), before any handler runs.
  fake_client big = b.fake.connect();
  big.exchange("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n");
  // A chunked body over the limit is refused by read_body, in the handler.
  fake_client chunked = b.fake.connect();
  chunked.exchange("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   std::string("c8\r\n") + std::string(200, 'x') + "\r\n0\r\n\r\n");
  // A bad request line (400) and an unsupported version (505).
  fake_client bad = b.fake.connect();
  bad.exchange("GET / HTTP/x.y\r\n\r\n");
  fake_client old = b.fake.connect();
  old.exchange("GET / HTTP/2.0\r\nHost: h\r\n\r\n");
  const exposition e = b.scrape();
  CHECK(e.value("lancer_requests_total{code=\"1xx\"}") == 0);
  CHECK(e.value("lancer_requests_total{code=\"2xx\"}") == 2);
  CHECK(e.value("lancer_requests_total{code=\"3xx\"}") == 0);
  CHECK(e.value("lancer_requests_total{code=\"4xx\"}") == 4);
  CHECK(e.value("lancer_requests_total{code=\"5xx\"}") == 1);
  CHECK(e.value("lancer_request_duration_seconds_count") == 7);
}

TEST_CASE("metrics: the latency histogram follows the scheduler's clock") {
  bed b;
  fake_client fast = b.fake.connect();
  fast.exchange("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
  fake_client slow = b.fake.connect();
  slow.write("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
  b.sched.run_until_idle();
  b.sched.advance(30ms);
  CHECK(slow.read().find("slow") != std::string::npos);
  const exposition e = b.scrape();
  const auto bucket = [&](const char* le) {
    return e.value(std::string("lancer_request_duration_seconds_bucket{le=\"") + le + "\"}");
  };
  CHECK(bucket("0.0005") == 1);  // the fast one: 0 s in virtual time
  CHECK(bucket("0.01") == 1);
  CHECK(bucket("0.025") == 1);
  CHECK(bucket("0.05") == 2);  // the slow one: 30 ms
  CHECK(bucket("10") == 2);
  CHECK(bucket("+Inf") == 2);
  CHECK(e.value("lancer_request_duration_seconds_count") == 2);
  CHECK(e.value("lancer_request_duration_seconds_sum") == doctest::Approx(0.030));
  CHECK(e.text("lancer_request_duration_seconds_sum") == "0.030000000");
}

TEST_CASE("metrics: bytes in and out are the requests' and responses' bytes") {
  bed b;
  fake_client c = b.fake.connect();
  std::size_t in = 0, out = 0;
  const auto send = [&](const std::string& request) {
    in += request.size();
    const std::string reply = c.exchange(request);
    out += reply.size();
    return reply;
  };
  // A fixed body, a chunked body, and two pipelined requests in one write.
  send("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  const std::string chunked = send(
      "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: t\r\n\r\n");
  CHECK(chunked.ends_with("abcdefg"));
  send("GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /nothing HTTP/1.1\r\nHost: h\r\n\r\n");
  // A body that arrives in pieces, after a 100 Continue.
  const std::string head =
      "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n";
  const std::string cont = send(head);
  CHECK(cont == "HTTP/1.1 100 Continue\r\n\r\n");
  send("01234");
  send("56789");
  const exposition e = b.scrape();
  CHECK(e.value("lancer_requests_total{code=\"2xx\"}") == 4);
  CHECK(e.value("lancer_received_bytes_total") == static_cast<double>(in));
  CHECK(e.value("lancer_sent_bytes_total") == static_cast<double>(out));
}

TEST_CASE("metrics: a refused request counts its bytes and its answer's") {
  bed b;
  fake_client c = b.fake.connect();
  const std::string request = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n";
  const std::string reply = c.exchange(request);
  CHECK(reply.starts_with("HTTP/1.1 413 "));
  const exposition e = b.scrape();
  CHECK(e.value("lancer_received_bytes_total") == static_cast<double>(request.size()));
  CHECK(e.value("lancer_sent_bytes_total") == static_cast<double>(reply.size()));
}

TEST_CASE("metrics: connections open and timeouts come from the watched server") {
  bed b;
  CHECK(b.scrape().value("lancer_connections_open") == 0);
  fake_client a = b.fake.connect();
  fake_client slow = b.fake.connect();
  a.exchange("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
  slow.write("GET /ok HTTP/1.1\r\n");  // a header that never ends
  b.sched.run_until_idle();
  CHECK(b.scrape().value("lancer_connections_open") == 2);
  CHECK(b.scrape().value("lancer_timeouts_total") == 0);
  b.sched.advance(11s);  // past the header timeout: 408
  CHECK(slow.read().starts_with("HTTP/1.1 408 "));
  b.sched.advance(5s);  // the linger after it
  exposition e = b.scrape();
  CHECK(e.value("lancer_timeouts_total") == 1);
  CHECK(e.value("lancer_requests_total{code=\"4xx\"}") == 1);
  CHECK(e.value("lancer_connections_open") == 1);
  a.shutdown_write();
  b.sched.run_until_idle();
  b.sched.advance(5s);
  e = b.scrape();
  CHECK(e.value("lancer_connections_open") == 0);
}

TEST_CASE("metrics: a destroyed server stops being watched, and its counts stay") {
  lancer::scheduler sched{lancer::clock::manual()};
  http::metrics m;
  {
    lancer::server srv{sched, http::serve(app, {.header_timeout = 1s}, m.hook())};
    lancer::fake_source fake;
    srv.attach_source(fake);
    srv.run();
    m.watch(srv);
    fake_client c = fake.connect();
    c.write("GET /ok HTTP/1.1\r\n");
    sched.run_until_idle();
    sched.advance(2s);
    fake_client d = fake.connect();
    sched.run_until_idle();
    CHECK(parse_exposition(m.render()).value("lancer_connections_open") >= 1);
  }
  // Turns after the server's end run no callback of it.
  lancer::fake_source other;
  lancer::server next{sched, http::serve(app)};
  next.attach_source(other);
  next.run();
  fake_client c = other.connect();
  c.exchange("GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
  const exposition e = parse_exposition(m.render());
  CHECK(e.value("lancer_connections_open") == 0);
  CHECK(e.value("lancer_timeouts_total") == 1);
  CHECK(e.value("lancer_requests_total{code=\"4xx\"}") == 1);
}

TEST_CASE("metrics: reloads are counted by result") {
  http::metrics m;
  m.count_reload(true);
  m.count_reload(true);
  m.count_reload(false);
  const exposition e = parse_exposition(m.render());
  CHECK(e.value("lancer_reloads_total{result=\"ok\"}") == 2);
  CHECK(e.value("lancer_reloads_total{result=\"failed\"}") == 1);
}

TEST_CASE("metrics: the render is Prometheus text format, every family shown from the start") {
  http::metrics m;
  const exposition empty = parse_exposition(m.render());  // checks the format itself
  CHECK(empty.types ==
        std::map<std::string, std::string>{{"lancer_connections_open", "gauge"},
                                           {"lancer_requests_total", "counter"},
                                           {"lancer_request_duration_seconds", "histogram"},
                                           {"lancer_received_bytes_total", "counter"},
                                           {"lancer_sent_bytes_total", "counter"},
                                           {"lancer_timeouts_total", "counter"},
                                           {"lancer_reloads_total", "counter"}});
  CHECK(empty.value("lancer_request_duration_seconds_bucket{le=\"+Inf\"}") == 0);
  CHECK(empty.samples.size() == 1 + 5 + 15 + 2 + 1 + 1 + 1 + 2);
  bed b;
  fake_client c = b.fake.connect();
  c.exchange("GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  const exposition e = b.scrape();
  CHECK(e.value("lancer_request_duration_seconds_bucket{le=\"+Inf\"}") == 2);
}

TEST_CASE("metrics: the handler answers GET and HEAD with the render, and 405 otherwise") {
  lancer::scheduler sched{lancer::clock::manual()};
  http::metrics m;
  lancer::server srv{sched, http::serve(m.handler(), {}, m.hook())};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  fake_client c = fake.connect();
  const std::string get = c.exchange("GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(get.starts_with("HTTP/1.1 200 "));
  CHECK(get.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
        std::string::npos);
  const std::string body = get.substr(get.find("\r\n\r\n") + 4);
  const exposition e = parse_exposition(body);
  CHECK(e.value("lancer_requests_total{code=\"2xx\"}") == 0);  // counted after its answer
  const std::string head = c.exchange("HEAD /metrics HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(head.starts_with("HTTP/1.1 200 "));
  CHECK(head.ends_with("\r\n\r\n"));
  const std::string post = c.exchange("POST /metrics HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(post.starts_with("HTTP/1.1 405 "));
  CHECK(post.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  CHECK(parse_exposition(m.render()).value("lancer_requests_total{code=\"2xx\"}") == 2);
}
