// The test client: parsed answers, keep-alive and reconnects, cookies, virtual time, Date.
#include <doctest/doctest.h>

#include <string>

#include "lancer/http/app.hpp"
#include "lancer/sched/awaitables.hpp"
#include "log_capture.hpp"

namespace http = lancer::http;
using lancer::task;
using namespace std::chrono_literals;

namespace {

http::router app() {
  http::router r;
  r.get("/hi", [](http::context& x) { return x.respond(200, "text/plain", "hi"); });
  r.get("/slow", [](http::context& x) -> task<> {
    co_await lancer::sleep_for(2s);
    co_await x.respond(200, "text/plain", "late");
  });
  r.get("/stream", [](http::context& x) -> task<> {
    http::start_chunked(x.conn(), x.req(), 200, "text/plain");
    co_await http::send_chunk(x.conn(), x.req(), "one,");
    co_await http::send_chunk(x.conn(), x.req(), "two");
    co_await http::end_chunked(x.conn(), x.req());
  });
  r.get("/set", [](http::context& x) {
    x.fields().set_cookie("a", "1").set_cookie("b", "2");
    return x.respond(200, "text/plain", "set");
  });
  r.get("/unset", [](http::context& x) {
    http::cookie_options gone;
    gone.max_age = 0s;
    x.fields().set_cookie("a", "", gone);
    return x.respond(200, "text/plain", "unset");
  });
  r.get("/cookies", [](http::context& x) {
    return x.respond(200, "text/plain", x.req().headers().get("Cookie"));
  });
  r.get("/never", [](http::context&) -> task<> { co_await lancer::sleep_for(24h); });
  return r;
}

}  // namespace

TEST_CASE("test_client: status, fields and body, parsed; HEAD; chunked bodies") {
  http::test_client t{app().handler()};
  const auto r = t.get("/hi");
  CHECK(r.status == 200);
  CHECK(r.header("content-type") == "text/plain");
  CHECK(r.header("Content-Length") == "2");
  CHECK(r.count("Server") == 1);
  CHECK(r.body == "hi");
  CHECK(!r.closed);
  CHECK(t.request("HEAD", "/hi").body.empty());
  CHECK(t.get("/hi").body == "hi");  // the HEAD answer left nothing behind
  CHECK(t.get("/stream").body == "one,two");
  CHECK(t.get("/nowhere").status == 404);
}

TEST_CASE("test_client: Date follows the manual clock, so whole answers compare") {
  http::test_client a{app().handler()};
  http::test_client b{app().handler()};
  const auto ra = a.get("/hi");
  CHECK(ra.header("Date") == "Thu, 01 Jan 1970 01:00:00 GMT");
  CHECK(ra.raw == b.get("/hi").raw);
  a.advance(61s);
  CHECK(a.get("/hi").header("Date") == "Thu, 01 Jan 1970 01:01:01 GMT");
}

TEST_CASE("test_client: virtual time for a slow handler; a handler that never answers") {
  http::test_client t{app().handler()};
  const auto start = t.sched().now();
  CHECK(t.get("/slow").body == "late");
  CHECK(t.sched().now() - start == 2s);
  // The server's own limit answers it: the body timeout (30 s by default) bounds the handler.
  const auto stuck = t.get("/never");
  CHECK(stuck.status == 0);
  CHECK(stuck.closed);
  CHECK(t.get("/hi").body == "hi");  // a new connection
}

TEST_CASE("test_client: keep-alive, a reconnect after the server closes") {
  http::test_client t{app().handler()};
  CHECK(t.get("/hi").status == 200);
  const std::uint64_t accepted = t.srv().stats().accepted;
  CHECK(t.get("/hi").status == 200);
  CHECK(t.srv().stats().accepted == accepted);  // the same connection
  http::fields close;
  close.add("Connection", "close");
  const auto last = t.get("/hi", close);
  CHECK(last.closed);
  CHECK(!t.connected());
  CHECK(t.get("/hi").status == 200);
  CHECK(t.srv().stats().accepted == accepted + 1);
}

TEST_CASE("test_client: cookies are kept, sent back and deleted") {
  http::test_client t{app().handler()};
  CHECK(t.get("/cookies").body.empty());
  t.get("/set");
  CHECK(t.cookies().size() == 2);
  CHECK(t.get("/cookies").body == "a=1; b=2");
  t.get("/unset");
  CHECK(t.get("/cookies").body == "b=2");
}

TEST_CASE("test_client: log lines below its level are dropped, and the level comes back") {
  lancer_test::log_capture logs;
  const lancer::log_level before = lancer::get_log_level();
  {
    http::test_client t{app().handler()};
    t.get("/hi");
    CHECK(lancer::get_log_level() == lancer::log_level::warn);
  }
  CHECK(lancer::get_log_level() == before);
  CHECK(!logs.contains("INFO"));
}

TEST_CASE("test_client: 100 Continue is passed over; send_raw drops later answers") {
  http::router r;
  r.post("/size", [](http::context& x) -> task<> {
    const auto body = co_await x.body();
    if (!body) co_return;
    co_await x.respond(200, "text/plain", std::to_string(body->size()));
  });
  r.get("/a", [](http::context& x) { return x.respond(200, "text/plain", "aaaa"); });
  http::limits lim;
  lim.body = 1 << 20;
  http::test_client t{r.handler(lim)};
  http::fields expect;
  expect.add("Expect", "100-continue");
  const auto r1 = t.post("/size", std::string(200 * 1024, 'x'), "text/plain", expect);
  CHECK(r1.status == 200);
  CHECK(r1.body == "204800");
  CHECK(t.send_raw("GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /a HTTP/1.1\r\nHost: h\r\n\r\n").body ==
        "aaaa");
  CHECK(t.get("/a").body == "aaaa");  // not confused by the HEAD answer
}
