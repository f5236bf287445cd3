// WebSocket (RFC 6455) through the public API: http::serve with an upgrade for "websocket",
// ws::accept and an echo, driven by ws::test_client on the fake source, in virtual time. Every
// answer is checked to the byte or to the close code, and every test checks that the server
// broke no rule the client checks (test_client::violations()).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/http/httputil.hpp"
#include "lancer/http/router.hpp"
#include "lancer/http/test_client.hpp"
#include "lancer/http/upgrade.hpp"
#include "lancer/sched/scheduler.hpp"
#include "lancer/ws/route.hpp"
#include "lancer/ws/socket.hpp"
#include "lancer/ws/test_client.hpp"

// Every operator new in this binary is counted (counting_new_all.cpp).
namespace lancer_test {
long operator_new_count() noexcept;
}  // namespace lancer_test

namespace ws = lancer::ws;
namespace http = lancer::http;
using lancer::task;
using ws::opcode;
using namespace std::chrono_literals;

namespace {

// What the app saw, for the tests to check.
struct app_state;
using app_body = task<> (*)(ws::socket&, app_state&);

struct app_state {
  ws::options opts;         // outlives every socket (the state outlives the server)
  app_body body = nullptr;  // what the app does once the socket is open; null: echo
  int accepted = 0;         // sockets opened
  int ended = 0;            // bodies that returned
  bool read_ended = false;  // the echo's read() returned nullopt
  std::uint16_t code = 0;   // close_code() when the body returned
  std::string reason;       // close_reason() then
  std::string subprotocol;  // subprotocol() at the start
  bool deflated = false;    // deflated() at the start
  std::size_t sent = 0;     // messages send() took (flood)
  ws::socket* live = nullptr;
  lancer::clock::time_point ended_at{};
  std::vector<bool> posted;  // what post() returned, in order (post_from_afar)
};

task<> echo(ws::socket& s, app_state& st) {
  for (;;) {
    std::optional<ws::message> m = co_await s.read();
    if (!m) {
      st.read_ended = true;
      co_return;
    }
    const bool ok = co_await s.send(*m);
    if (!ok) co_return;
  }
}

// Reads one message, then closes with 4000 "done".
task<> close_after_one(ws::socket& s, app_state&) {
  std::optional<ws::message> m = co_await s.read();
  if (!m) co_return;
  co_await s.close(4000, "done");
}

// Reads one message, then sends 1000 binary messages of 1 KiB (counting them), then reads on.
task<> flood(ws::socket& s, app_state& st) {
  std::optional<ws::message> m = co_await s.read();
  if (!m) co_return;
  const std::string chunk(1024, 'x');
  for (int i = 0; i < 1000; ++i) {
    const bool ok = co_await s.send_binary(chunk);
    if (!ok) co_return;
    ++st.sent;
  }
  for (;;) {
    std::optional<ws::message> more = co_await s.read();
    if (!more) co_return;
  }
}

task<> serve_ws(lancer::connection& c, http::request& req, std::shared_ptr<app_state> st) {
  std::unique_ptr<ws::socket> s = co_await ws::accept(c, req, st->opts);
  if (!s) co_return;
  ++st->accepted;
  st->subprotocol = std::string(s->subprotocol());
  st->deflated = s->deflated();
  st->live = s.get();
  app_body body = st->body != nullptr ? st->body : &echo;
  co_await body(*s, *st);
  st->code = s->close_code();
  st->reason = std::string(s->close_reason());
  st->live = nullptr;
  st->ended_at = lancer::scheduler::current()->now();
  ++st->ended;
}

// Plain HTTP: /ws goes to ws::accept all the same (which answers 426), the rest is "plain".
task<> plain(lancer::connection& c, http::request& req, std::shared_ptr<app_state> st) {
  if (req.target() == "/ws") {
    co_await serve_ws(c, req, st);
    co_return;
  }
  co_await http::respond(c, req, 200, "text/plain", "plain\n");
}

lancer::server::handler app(const std::shared_ptr<app_state>& st) {
  http::upgrades up;
  up.add("websocket", [st](lancer::connection& c, http::request& req, lancer::frame&,
                           lancer::pubframe&) { return serve_ws(c, req, st); });
  return http::serve([st](lancer::connection& c, http::request& req, lancer::frame&,
                          lancer::pubframe&) { return plain(c, req, st); },
                     {}, {}, std::move(up));
}

using violations = std::vector<std::string>;

// The bytes of an unmasked server frame with a short payload.
std::string server_frame(std::uint8_t first, std::string_view payload) {
  std::string out;
  out += static_cast<char>(first);
  out += static_cast<char>(payload.size());
  out += payload;
  return out;
}

std::string all_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 7 + i / 256) & 0xff);
  return s;
}

}  // namespace

// --- the opening handshake ------------------------------------------------------------------

TEST_CASE("ws: the handshake: 101, Sec-WebSocket-Accept, Server and Date, then an echo") {
  // RFC 6455 1.3's example, worked out independently of the server.
  CHECK(ws::test_client::accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  const auto& r = t.response();
  CHECK(r.raw.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  CHECK(r.status == 101);
  CHECK(r.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(http::iequals(r.header("Upgrade"), "websocket"));
  CHECK(http::iequals(r.header("Connection"), "upgrade"));
  CHECK(r.count("Server") == 1);
  CHECK(r.header("Server") == "lancer");
  // Date is optional in a 1xx (RFC 9110 6.6.1); if sent, once, on the manual clock.
  CHECK(r.count("Date") <= 1);
  if (r.count("Date") == 1) CHECK(r.header("Date") == "Thu, 01 Jan 1970 01:00:00 GMT");
  CHECK(r.count("Content-Length") == 0);  // RFC 9110 8.6: not in a 1xx
  CHECK(r.count("Transfer-Encoding") == 0);
  CHECK(r.count("Sec-WebSocket-Protocol") == 0);
  CHECK(r.count("Sec-WebSocket-Extensions") == 0);
  CHECK(t.received().empty());
  CHECK(st->accepted == 1);
  t.send_text("hello");
  const auto f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == server_frame(0x81, "hello"));
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: a plain GET to a WebSocket resource gets 426 with Upgrade: websocket") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  const auto r = t.http_client().get("/ws");
  CHECK(r.status == 426);
  CHECK(r.header("Upgrade") == "websocket");
  CHECK(!r.closed);  // an HTTP answer: the connection goes on
  CHECK(t.http_client().get("/").body == "plain\n");
  // The same through the client, with no Upgrade and no Connection field.
  ws::handshake h;
  h.upgrade = "";
  CHECK(!t.connect("/ws", h));
  CHECK(t.response().status == 426);
  CHECK(t.response().header("Upgrade") == "websocket");
  CHECK(st->accepted == 0);
}

TEST_CASE("ws: a bad Sec-WebSocket-Key gets 400") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  const auto answer = [&](ws::handshake h) {
    CHECK(!t.connect("/ws", h));
    return t.response().status;
  };
  ws::handshake none;
  none.send_key = false;
  CHECK(answer(none) == 400);
  ws::handshake shorter;
  shorter.key = "dGhlIHNhbXBsZSBub25jZQ";  // no padding: 22 characters
  CHECK(answer(shorter) == 400);
  ws::handshake longer;
  longer.key = "dGhlIHNhbXBsZSBub25jZSE=";  // 17 bytes
  CHECK(answer(longer) == 400);
  ws::handshake junk;
  junk.key = "@@@@@@@@@@@@@@@@@@@@@@==";  // 24 characters, not base64
  CHECK(answer(junk) == 400);
  ws::handshake two;
  two.extra.add("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==");
  CHECK(answer(two) == 400);
  CHECK(st->accepted == 0);
  CHECK(t.connect("/ws"));  // and a good one still works
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: version 12 gets 426 with Sec-WebSocket-Version: 13") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  ws::handshake h;
  h.version = "12";
  CHECK(!t.connect("/ws", h));
  CHECK(t.response().status == 426);
  CHECK(t.response().header("Sec-WebSocket-Version") == "13");
  h.version = "";  // none at all
  CHECK(!t.connect("/ws", h));
  CHECK(t.response().status >= 400);
  CHECK(t.response().status < 500);
  CHECK(st->accepted == 0);
}

TEST_CASE("ws: an origin refused gets 403; an origin allowed opens") {
  auto st = std::make_shared<app_state>();
  st->opts.check_origin = [](std::string_view o) { return o == "https://good.example"; };
  ws::test_client t{app(st)};
  ws::handshake bad;
  bad.origin = "https://evil.example";
  CHECK(!t.connect("/ws", bad));
  CHECK(t.response().status == 403);
  CHECK(!t.connect("/ws"));  // no Origin: the check sees ""
  CHECK(t.response().status == 403);
  ws::handshake good;
  good.origin = "https://good.example";
  CHECK(t.connect("/ws", good));
  CHECK(t.response().status == 101);
  CHECK(st->accepted == 1);
  CHECK(t.violations() == violations{});
}

TEST_CASE(
    "ws: the subprotocol is the server's first that the client offers; none in common: none") {
  auto st = std::make_shared<app_state>();
  st->opts.subprotocols = {"v2.chat", "v1.chat"};
  ws::test_client t{app(st)};
  ws::handshake both;
  both.protocols = {"v1.chat", "v2.chat"};
  REQUIRE(t.connect("/ws", both));
  CHECK(t.subprotocol() == "v2.chat");
  CHECK(t.response().count("Sec-WebSocket-Protocol") == 1);
  CHECK(st->subprotocol == "v2.chat");
  ws::handshake one;
  one.protocols = {"x", "v1.chat"};
  REQUIRE(t.connect("/ws", one));
  CHECK(t.subprotocol() == "v1.chat");
  CHECK(st->subprotocol == "v1.chat");
  ws::handshake other;
  other.protocols = {"mqtt"};
  REQUIRE(t.connect("/ws", other));
  CHECK(t.response().count("Sec-WebSocket-Protocol") == 0);
  CHECK(st->subprotocol.empty());
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: an h2c upgrade and an unknown token are answered as plain HTTP/1.1") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  ws::handshake h2c;
  h2c.upgrade = "h2c";
  h2c.connection = "Upgrade, HTTP2-Settings";
  h2c.send_key = false;
  h2c.version = "";
  h2c.extra.add("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA");
  CHECK(!t.connect("/", h2c));
  CHECK(t.response().raw.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(t.response().body == "plain\n");
  CHECK(t.response().count("Upgrade") == 0);
  ws::handshake foo;
  foo.upgrade = "foo/2";
  CHECK(!t.connect("/", foo));
  CHECK(t.response().status == 200);
  CHECK(t.response().body == "plain\n");
  // To the WebSocket resource, an unknown upgrade is a plain request: 426.
  CHECK(!t.connect("/ws", foo));
  CHECK(t.response().status == 426);
  CHECK(st->accepted == 0);
}

TEST_CASE("ws: a frame sent in the same write as the upgrade request is echoed") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  ws::handshake h;
  h.after = t.frame_bytes(opcode::text, "early") + t.frame_bytes(opcode::binary, "bird");
  REQUIRE(t.connect("/ws", h));
  const auto a = t.next_frame();
  REQUIRE(a);
  CHECK(a->raw == server_frame(0x81, "early"));
  const auto b = t.next_frame();
  REQUIRE(b);
  CHECK(b->raw == server_frame(0x82, "bird"));
  CHECK(t.violations() == violations{});
}

// --- messages -------------------------------------------------------------------------------

TEST_CASE("ws: text, binary, empty and 64 KiB messages are echoed as they were") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  t.send_text("Grüße, 世界");
  auto m = t.read_message();
  REQUIRE(m);
  CHECK(m->type == ws::kind::text);
  CHECK(m->data == "Grüße, 世界");
  const std::string bin("\x00\x01\xfe\xff", 4);
  t.send_binary(bin);
  auto f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == server_frame(0x82, bin));
  t.send_text("");
  f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == std::string("\x81\x00", 2));
  t.send_binary("");
  f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == std::string("\x82\x00", 2));
  // 126 bytes: the 16-bit length.
  const std::string mid(126, 'm');
  t.send_text(mid);
  f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == std::string("\x81\x7e\x00\x7e", 4) + mid);
  const std::string big = all_bytes(64 * 1024);
  t.send_binary(big);
  m = t.read_message();
  REQUIRE(m);
  CHECK(m->type == ws::kind::binary);
  CHECK(m->data.size() == big.size());
  CHECK(m->data == big);
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: a text in 3 fragments with a ping between: the pong first, then the whole echo") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  ws::frame_options more;
  more.fin = false;
  t.send_frame(opcode::text, "Hel", more);
  t.send_ping("p");
  t.send_frame(opcode::continuation, "lo, ", more);
  t.send_frame(opcode::continuation, "world");
  const auto pong = t.next_frame();
  REQUIRE(pong);
  CHECK(pong->raw == server_frame(0x8a, "p"));
  const auto m = t.read_message();
  REQUIRE(m);
  CHECK(m->type == ws::kind::text);
  CHECK(m->data == "Hello, world");
  CHECK(t.controls().empty());
  // A binary message in fragments too, and a UTF-8 character cut between two fragments.
  t.send_frame(opcode::binary, "ab", more);
  t.send_frame(opcode::continuation, "cd");
  const auto b = t.read_message();
  REQUIRE(b);
  CHECK(b->type == ws::kind::binary);
  CHECK(b->data == "abcd");
  t.send_frame(opcode::text, "\xe2\x82", more);
  t.send_frame(opcode::continuation, "\xac");
  const auto euro = t.read_message();
  REQUIRE(euro);
  CHECK(euro->data == "\xe2\x82\xac");
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: a ping gets a pong with its payload; an unsolicited pong is ignored") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  t.send_ping("abc");
  auto f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == server_frame(0x8a, "abc"));
  t.send_ping();
  f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == std::string("\x8a\x00", 2));
  const std::string most(125, 'q');
  t.send_ping(most);
  f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == server_frame(0x8a, most));
  t.send_pong("unasked");
  CHECK(!t.next_frame(0s));  // nothing back
  t.send_text("after");
  f = t.next_frame();
  REQUIRE(f);
  CHECK(f->raw == server_frame(0x81, "after"));
  CHECK(st->ended == 0);
  CHECK(t.violations() == violations{});
}

// --- protocol errors ------------------------------------------------------------------------

TEST_CASE("ws: bad UTF-8 in a text message closes 1007, whole or across fragments") {
  const auto run = [](const std::vector<std::pair<std::string, bool>>& frames) {
    auto st = std::make_shared<app_state>();
    ws::test_client t{app(st)};
    REQUIRE(t.connect("/ws"));
    bool first = true;
    for (const auto& [payload, fin] : frames) {
      ws::frame_options o;
      o.fin = fin;
      t.send_frame(first ? opcode::text : opcode::continuation, payload, o);
      first = false;
    }
    const ws::test_close c = t.expect_close();
    CHECK(c.received);
    CHECK(c.code == 1007);
    CHECK(t.wait_closed(6s));
    CHECK(st->ended == 1);
    CHECK(st->code == 1007);
    CHECK(t.skipped().empty());  // nothing echoed
    CHECK(t.violations() == violations{});
  };
  SUBCASE("whole") {
    run({{"ok \xff\xfe", true}});
  }
  SUBCASE("an overlong form") {
    run({{"\xc0\xaf", true}});
  }
  SUBCASE("a surrogate") {
    run({{"\xed\xa0\x80", true}});
  }
  SUBCASE("cut short at the end") {
    run({{"abc\xe2\x82", true}});
  }
  SUBCASE("across fragments") {
    run({{"a\xe2", false}, {"\x28 b", true}});
  }
  SUBCASE("in a middle fragment") {
    run({{"fine", false}, {"\xf5", false}, {"end", true}});
  }
}

TEST_CASE("ws: a message over max_message closes 1009; one at the limit is echoed") {
  auto st = std::make_shared<app_state>();
  st->opts.max_message = 1000;
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  const std::string limit(1000, 'a');
  t.send_text(limit);
  const auto m = t.read_message();
  REQUIRE(m);
  CHECK(m->data == limit);
  SUBCASE("one frame") {
    t.send_binary(std::string(1001, 'b'));
  }
  SUBCASE("fragments") {
    ws::frame_options more;
    more.fin = false;
    t.send_frame(opcode::binary, std::string(600, 'c'), more);
    t.send_frame(opcode::continuation, std::string(600, 'c'));
  }
  const ws::test_close c = t.expect_close();
  CHECK(c.received);
  CHECK(c.code == 1009);
  CHECK(t.wait_closed(6s));
  CHECK(st->code == 1009);
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: protocol errors close 1002") {
  struct bad {
    const char* what;
    std::vector<std::string> frames;  // the bytes to send, frame by frame
  };
  ws::test_client maker{app(std::make_shared<app_state>())};  // builds the frames
  ws::frame_options unmasked;
  unmasked.masked = false;
  ws::frame_options r1;
  r1.rsv1 = true;
  ws::frame_options r2;
  r2.rsv2 = true;
  ws::frame_options r3;
  r3.rsv3 = true;
  ws::frame_options more;
  more.fin = false;
  const std::vector<bad> cases = {
      {"an unmasked frame", {maker.frame_bytes(opcode::text, "hi", unmasked)}},
      {"RSV1 with no extension", {maker.frame_bytes(opcode::text, "hi", r1)}},
      {"RSV2", {maker.frame_bytes(opcode::text, "hi", r2)}},
      {"RSV3", {maker.frame_bytes(opcode::binary, "hi", r3)}},
      {"opcode 3", {maker.frame_bytes(opcode{3}, "hi")}},
      {"opcode 0xb", {maker.frame_bytes(opcode{0xb}, "")}},
      {"a fragmented ping", {maker.frame_bytes(opcode::ping, "p", more)}},
      {"a ping of 126 bytes", {maker.frame_bytes(opcode::ping, std::string(126, 'p'))}},
      {"a continuation with no message", {maker.frame_bytes(opcode::continuation, "x")}},
      {"a text inside a fragmented text",
       {maker.frame_bytes(opcode::text, "a", more), maker.frame_bytes(opcode::text, "b")}},
      {"a close payload of 1 byte", {maker.frame_bytes(opcode::close, "\x03")}},
      {"close code 1005", {maker.frame_bytes(opcode::close, "\x03\xed")}},
      {"close code 999", {maker.frame_bytes(opcode::close, "\x03\xe7")}},
      {"close code 2999", {maker.frame_bytes(opcode::close, "\x0b\xb7")}},
  };
  for (const bad& b : cases) {
    CAPTURE(b.what);
    auto st = std::make_shared<app_state>();
    ws::test_client t{app(st)};
    REQUIRE(t.connect("/ws"));
    for (const std::string& f : b.frames)
      t.send_raw(f);
    const ws::test_close c = t.expect_close();
    CHECK(c.received);
    CHECK(c.code == 1002);
    CHECK(t.skipped().empty());
    CHECK(t.wait_closed(6s));
    CHECK(st->ended == 1);
    CHECK(st->code == 1002);
    CHECK(t.violations() == violations{});
  }
}

// --- closing --------------------------------------------------------------------------------

TEST_CASE("ws: the client closes 1000 \"bye\": the server echoes 1000, then closes") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  t.send_close(1000, "bye");
  const ws::test_close c = t.expect_close();
  CHECK(c.received);
  CHECK(c.code == 1000);
  CHECK(t.closed());  // at once: no time passed
  CHECK(st->ended == 1);
  CHECK(st->read_ended);
  CHECK(st->code == 1000);
  CHECK(st->reason == "bye");
  CHECK(t.skipped().empty());
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: the server closes 4000 \"done\": the client sees it, answers, the server closes") {
  auto st = std::make_shared<app_state>();
  st->body = &close_after_one;
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  t.send_text("x");
  const auto f = t.next_frame(0s);
  REQUIRE(f);
  CHECK(f->raw == server_frame(0x88,
                               "\x0f\xa0"
                               "done"));
  CHECK(f->close_code() == 4000);
  CHECK(f->close_reason() == "done");
  CHECK(!t.closed());  // it waits for the client's close frame
  t.send_close(4000);
  CHECK(t.closed());
  CHECK(st->ended == 1);
  CHECK(st->code == 4000);
  CHECK(st->reason == "done");
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: a client that never answers the server's close is dropped after close_timeout") {
  auto st = std::make_shared<app_state>();
  st->body = &close_after_one;
  st->opts.close_timeout = 5s;
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  const auto start = t.sched().now();
  t.send_text("x");
  const ws::test_close c = t.expect_close(false, 0s);
  CHECK(c.code == 4000);
  t.advance(5s - 1ms);
  CHECK(!t.closed());
  CHECK(st->ended == 0);
  t.advance(1ms);
  CHECK(t.closed());
  CHECK(st->ended == 1);
  CHECK(st->ended_at - start == 5s);
  CHECK(t.violations() == violations{});
}

// --- timeouts -------------------------------------------------------------------------------

TEST_CASE("ws: a client that does not answer pings is dropped; one that answers stays") {
  auto st = std::make_shared<app_state>();
  st->opts.ping_interval = 30s;
  st->opts.ping_timeout = 20s;
  ws::test_client t{app(st)};
  SUBCASE("silent") {
    REQUIRE(t.connect("/ws"));
    const auto start = t.sched().now();
    const auto ping = t.next_frame();
    REQUIRE(ping);
    CHECK(ping->op == opcode::ping);
    CHECK(t.sched().now() - start == 30s);
    t.advance(20s - 1ms);
    CHECK(!t.closed());
    CHECK(st->ended == 0);
    t.advance(1ms);
    CHECK(t.closed());
    CHECK(st->ended == 1);
    CHECK(st->read_ended);
    CHECK(st->code == 1006);
    CHECK(st->ended_at - start == 50s);
    t.shutdown_write();
    CHECK(t.srv().connections() == 0);
  }
  SUBCASE("answering") {
    t.answer_pings(true);
    REQUIRE(t.connect("/ws"));
    t.advance(5min);
    CHECK(!t.closed());
    CHECK(st->ended == 0);
    std::size_t pings = 0;
    while (const auto f = t.next_frame(0s)) {
      CHECK(f->op == opcode::ping);
      ++pings;
    }
    CHECK(pings == 10);  // one per 30 s of quiet
    t.send_text("still here");
    const auto m = t.read_message(0s);
    REQUIRE(m);
    CHECK(m->data == "still here");
  }
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: a connection with no message for idle_timeout is closed 1001") {
  auto st = std::make_shared<app_state>();
  st->opts.idle_timeout = 60s;
  st->opts.ping_interval = {};  // never
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  const auto start = t.sched().now();
  t.advance(40s);
  t.send_text("a message");  // restarts the wait
  const auto m = t.read_message(0s);
  REQUIRE(m);
  CHECK(t.next_frame(60s - 1ms).has_value() == false);
  const ws::test_close c = t.expect_close(true);
  CHECK(c.received);
  CHECK(c.code == 1001);
  CHECK(t.sched().now() - start == 100s);
  CHECK(t.closed());
  CHECK(st->code == 1001);
  CHECK(t.violations() == violations{});
}

// --- the peer goes away, or does not read ---------------------------------------------------

TEST_CASE("ws: a client that vanishes mid-message: read() returns nullopt (1006), nothing left") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  ws::frame_options more;
  more.fin = false;
  t.send_frame(opcode::text, "half a mess", more);
  CHECK(st->ended == 0);
  t.vanish();
  CHECK(st->ended == 1);
  CHECK(st->read_ended);
  CHECK(st->code == 1006);
  CHECK(t.srv().connections() == 0);
  t.advance(1h);  // nothing wakes up later
  CHECK(st->ended == 1);
  CHECK(t.srv().connections() == 0);
}

TEST_CASE("ws: a client that does not read: send() waits, memory stays bounded") {
  auto st = std::make_shared<app_state>();
  st->body = &flood;
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  t.stop_reading(4096);
  t.send_text("go");
  const std::size_t stuck = st->sent;
  CHECK(stuck > 0);
  CHECK(stuck < 1000);
  // At most the window, the connection's high-water mark and one message are in flight.
  const std::size_t frame = 1024 + 4;
  CHECK(stuck * frame <= 4096 + t.srv().options().high_water + 2 * frame);
  CHECK(t.unread() <= 4096);
  REQUIRE(st->live != nullptr);
  CHECK(st->live->conn().unsent() <= t.srv().options().high_water + frame);
  t.resume_reading();
  CHECK(st->sent == 1000);
  std::size_t got = 0;
  bool same = true;
  while (const auto m = t.read_message(0s)) {
    same = same && m->type == ws::kind::binary && m->data == std::string(1024, 'x');
    ++got;
  }
  CHECK(got == 1000);
  CHECK(same);
  CHECK(t.violations() == violations{});
}

// post() from a thread of the socket's scheduler other than the one in read(): a broadcast.
task<> post_two(ws::socket* s, std::vector<bool>* ok, std::string a, std::string b, ws::kind kb) {
  ok->push_back(s->post(a));
  ok->push_back(s->post(b, kb));
  co_return;
}

TEST_CASE("ws: post() from another thread is delivered; over max_queued closes 1008") {
  auto st = std::make_shared<app_state>();
  st->opts.max_queued = 1000;
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  REQUIRE(st->live != nullptr);
  ws::socket* s = st->live;
  std::vector<bool> ok;
  t.sched().spawn(post_two(s, &ok, "from afar", std::string("\x01\x02", 2), ws::kind::binary));
  t.sched().run_until_idle();
  CHECK(ok == std::vector<bool>{true, true});
  auto m = t.read_message(0s);
  REQUIRE(m);
  CHECK(m->type == ws::kind::text);
  CHECK(m->data == "from afar");
  m = t.read_message(0s);
  REQUIRE(m);
  CHECK(m->type == ws::kind::binary);
  CHECK(m->data == std::string("\x01\x02", 2));
  // The client stops reading; posts pile up beyond max_queued.
  t.stop_reading(0);
  ok.clear();
  t.sched().spawn(post_two(s, &ok, std::string(600, 'a'), std::string(600, 'b'), ws::kind::text));
  t.sched().run_until_idle();
  CHECK(ok == std::vector<bool>{true, false});
  t.resume_reading();
  const ws::test_close c = t.expect_close(true, 0s);
  CHECK(c.received);
  CHECK(c.code == 1008);
  CHECK(t.wait_closed(6s));
  CHECK(st->code == 1008);
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: a server drain closes an open socket with 1001") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  t.srv().drain(t.sched().now() + 10s);
  const ws::test_close c = t.expect_close(true, 0s);
  CHECK(c.received);
  CHECK(c.code == 1001);
  CHECK(t.closed());
  CHECK(st->ended == 1);
  CHECK(st->code == 1001);
  t.shutdown_write();  // the server's linger ends with the client's EOF
  CHECK(t.srv().is_drained());
  CHECK(t.violations() == violations{});
}

// --- splits ---------------------------------------------------------------------------------

namespace {

// A whole conversation: the upgrade request and frames of every kind, ending with a close.
std::string conversation() {
  ws::test_client maker{app(std::make_shared<app_state>())};
  ws::frame_options more;
  more.fin = false;
  std::string in = maker.request_bytes("/ws");
  in += maker.frame_bytes(opcode::text, "Hello");
  in += maker.frame_bytes(opcode::text, "ab", more);
  in += maker.frame_bytes(opcode::ping, "p");
  in += maker.frame_bytes(opcode::continuation, "c\xe2\x82", more);
  in += maker.frame_bytes(opcode::continuation,
                          "\xac"
                          "d");
  in += maker.frame_bytes(opcode::binary, std::string(130, 'z'));
  in += maker.frame_bytes(opcode::pong, "unasked");
  in += maker.frame_bytes(opcode::close,
                          "\x03\xe8"
                          "bye");
  return in;
}

// What the server sends for `input` cut at `cuts`, each piece after the server has done all
// it can with the one before; "<FIN>" at the end if the server closed.
std::string converse(std::string_view input, std::span<const std::size_t> cuts) {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  lancer::fake_client c = t.http_client().source().connect();
  std::string out;
  std::size_t from = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t to = i < cuts.size() ? std::min(cuts[i], input.size()) : input.size();
    if (to > from) c.write(input.substr(from, to - from));
    from = std::max(from, to);
    t.sched().run_until_idle();
    out += c.read();
  }
  t.sched().run_until_idle();
  out += c.read();
  if (c.server_done()) out += "<FIN>";
  return out;
}

}  // namespace

TEST_CASE("ws: the conversation cut at every byte, and byte by byte, gets the same answer") {
  const std::string input = conversation();
  const std::string whole = converse(input, {});
  // What the whole gets, spelled out: 101, the echoes, the pong, the close, the FIN.
  const std::size_t head = whole.find("\r\n\r\n");
  REQUIRE(head != std::string::npos);
  CHECK(whole.rfind("HTTP/1.1 101 ", 0) == 0);
  const std::string frames = whole.substr(head + 4);
  const std::string echoes = server_frame(0x81, "Hello") + server_frame(0x8a, "p") +
                             server_frame(0x81,
                                          "abc\xe2\x82\xac"
                                          "d") +
                             std::string("\x82\x7e\x00\x82", 4) + std::string(130, 'z');
  // The close frame echoes the code; the reason may come back too.
  const bool exact = frames == echoes + server_frame(0x88, "\x03\xe8") + "<FIN>" ||
                     frames == echoes +
                                   server_frame(0x88,
                                                "\x03\xe8"
                                                "bye") +
                                   "<FIN>";
  CHECK_MESSAGE(exact, "the server sent: ", frames);
  for (std::size_t i = 1; i < input.size(); ++i) {
    const std::size_t cut[] = {i};
    const std::string got = converse(input, cut);
    if (got != whole) {
      CAPTURE(i);
      CHECK(got == whole);
      break;
    }
  }
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i < input.size(); ++i)
    bytes.push_back(i);
  CHECK(converse(input, bytes) == whole);
}

TEST_CASE("ws: frames written in pieces through the client give the same echoes") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  const std::string big = all_bytes(70000);  // the 64-bit length
  const std::string bytes = t.frame_bytes(opcode::binary, big);
  const std::size_t cuts[] = {1, 2, 3, 9, 13, 14, 1000, 69999};
  t.send_pieces(bytes, cuts);
  auto m = t.read_message(0s);
  REQUIRE(m);
  CHECK(m->data == big);
  t.send_bytewise(t.frame_bytes(opcode::text, std::string(300, 't')));
  m = t.read_message(0s);
  REQUIRE(m);
  CHECK(m->data == std::string(300, 't'));
  CHECK(t.violations() == violations{});
}

// --- permessage-deflate ---------------------------------------------------------------------

TEST_CASE("ws: permessage-deflate is negotiated and messages round-trip compressed") {
  auto st = std::make_shared<app_state>();
  st->opts.deflate = true;
  ws::test_client t{app(st)};
  ws::handshake h;
  h.deflate = true;
  REQUIRE(t.connect("/ws", h));
  CHECK(t.deflated());
  CHECK(st->deflated);
  CHECK(t.response().header("Sec-WebSocket-Extensions").starts_with("permessage-deflate"));
  std::string text;
  for (int i = 0; i < 100; ++i)
    text += "lancer speaks websocket, compressed; ";
  // Sent plain: the echo comes compressed (over deflate_threshold).
  t.send_text(text);
  const std::size_t before = t.received().size();
  auto m = t.read_message(0s);
  REQUIRE(m);
  CHECK(m->compressed);
  CHECK(m->data == text);
  CHECK(t.received().size() - before < text.size() / 4);
  // Sent compressed, three times (the server keeps its context between messages).
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    t.send_compressed(ws::kind::text, text);
    m = t.read_message(0s);
    REQUIRE(m);
    CHECK(m->compressed);
    CHECK(m->data == text);
  }
  t.send_compressed(ws::kind::binary, all_bytes(5000));
  m = t.read_message(0s);
  REQUIRE(m);
  CHECK(m->type == ws::kind::binary);
  CHECK(m->data == all_bytes(5000));
  // Under the threshold: sent as it is.
  t.send_text("hi");
  m = t.read_message(0s);
  REQUIRE(m);
  CHECK(!m->compressed);
  CHECK(m->data == "hi");
  CHECK(t.violations() == violations{});
}

TEST_CASE("ws: permessage-deflate only when both sides want it") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  ws::handshake h;
  h.deflate = true;
  REQUIRE(t.connect("/ws", h));  // the server has it off
  CHECK(!t.deflated());
  CHECK(t.response().count("Sec-WebSocket-Extensions") == 0);
  st->opts.deflate = true;
  REQUIRE(t.connect("/ws"));  // the client does not offer it
  CHECK(!t.deflated());
  CHECK(t.response().count("Sec-WebSocket-Extensions") == 0);
  t.send_text(std::string(500, 'a'));
  const auto m = t.read_message(0s);
  REQUIRE(m);
  CHECK(!m->compressed);
  CHECK(t.violations() == violations{});
}

// --- the client's own checks ----------------------------------------------------------------

namespace {

task<> rogue_run(lancer::connection& c, std::string accept) {
  while (c.buffered().find("\r\n\r\n") == std::string_view::npos) {
    const std::size_t n = co_await c.read();
    if (n == 0) co_return;
  }
  c.consume(c.buffered().size());
  c.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      accept + "\r\n\r\n");
  c.write(std::string("\x81\x82\x01\x02\x03\x04\x69\x6b", 8));  // masked "hi"
  c.write(std::string("\xc1\x02hi", 4));                        // RSV1, no extension
  c.write(std::string("\x81\x7e\x00\x02hi", 6));                // a 16-bit length of 2
  c.write(std::string("\x81\x02\xff\xfe", 4));                  // not UTF-8
  c.write(std::string("\x88\x02\x03\xed", 4));                  // close code 1005
  c.write(std::string("\x81\x00", 2));                          // after the close
  co_await c.flush();
}

// A server that answers the upgrade by hand (with `accept`) and then breaks every rule the
// client checks, one frame each.
lancer::server::handler rogue(std::string accept) {
  return [accept](lancer::connection& c, lancer::frame&, lancer::pubframe&) {
    return rogue_run(c, accept);
  };
}

}  // namespace

TEST_CASE("ws::test_client: a wrong Sec-WebSocket-Accept fails the handshake") {
  ws::test_client t{rogue("s3pPLMBiTxaQ9kYGzzhZRbK+xOo")};
  CHECK(!t.connect("/"));
  CHECK(t.response().status == 101);
  CHECK(t.violations() ==
        violations{"handshake: Sec-WebSocket-Accept 's3pPLMBiTxaQ9kYGzzhZRbK+xOo', expected "
                   "'s3pPLMBiTxaQ9kYGzzhZRbK+xOo='"});
}

TEST_CASE("ws::test_client: every breach of the server's is a line in violations()") {
  ws::test_client t{rogue("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")};
  REQUIRE(t.connect("/"));
  const auto masked = t.next_frame(0s);
  REQUIRE(masked);
  CHECK(masked->masked);
  CHECK(masked->payload == "hi");  // unmasked by the client
  std::size_t frames = 1;
  while (t.read_message(0s))
    ++frames;
  CHECK(frames == 4);
  const ws::test_close c = t.expect_close(false, 0s);
  CHECK(c.code == 1005);
  CHECK(t.next_frame(0s).has_value());  // the frame after the close
  CHECK(t.violations() ==
        violations{"text frame (opcode 1): masked (a server must not mask)",
                   "text frame (opcode 1): RSV1 set, permessage-deflate not negotiated",
                   "a text frame's length 2 is not minimally encoded",
                   "close frame (opcode 8): close code 1005 may not be sent",
                   "text frame (opcode 1): sent after the close frame",
                   "a text message that is not UTF-8"});
}

// --- allocations ----------------------------------------------------------------------------

TEST_CASE("ws: an echoed message in steady state allocates nothing in the server") {
  auto st = std::make_shared<app_state>();
  ws::test_client t{app(st)};
  REQUIRE(t.connect("/ws"));
  auto& c = *t.conn();
  const std::string payload(100, 'e');
  const std::string in = t.frame_bytes(opcode::text, payload);
  const std::string expect = server_frame(0x81, payload);
  const long probe = lancer_test::operator_new_count();
  auto counted = std::make_unique<std::string>(100, 'x');  // the counter counts
  CHECK(lancer_test::operator_new_count() > probe);
  long news = 0;
  int wrong = 0;
  for (int i = 0; i < 250; ++i) {
    c.write(in);
    const long before = lancer_test::operator_new_count();
    t.sched().run_until_idle();
    if (i >= 50) news += lancer_test::operator_new_count() - before;  // the first 50 warm up
    if (c.read() != expect) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(news == 0);
  CHECK(t.violations() == violations{});
}

// --- the router ---------------------------------------------------------------------------

task<> room_echo(http::context& x, ws::socket& s) {
  // The capture stays valid after the switch: the context owns its copy of the target.
  const bool greeted = co_await s.send(std::string("room ") + std::string(x.param("room")));
  if (!greeted) co_return;
  for (;;) {
    const std::optional<ws::message> m = co_await s.read();
    if (!m) break;
    const bool sent = co_await s.send(*m);
    if (!sent) break;
  }
}

TEST_CASE("ws: ws::route makes a router route that speaks WebSocket, with its captures") {
  http::router app;
  app.get("/rooms/{room}", ws::route(room_echo));
  app.get("/plain", [](http::context& x) -> task<> { co_await x.respond(200, "text/plain", "p"); });
  ws::test_client t{app.handler()};
  REQUIRE(t.connect("/rooms/blue%20sky"));
  auto m = t.read_message();
  REQUIRE(m);
  CHECK(m->data == "room blue sky");
  t.send_text("héllo");
  m = t.read_message();
  REQUIRE(m);
  CHECK(m->type == ws::kind::text);
  CHECK(m->data == "héllo");
  t.send_close(1000, "bye");
  const ws::test_close c = t.expect_close();
  CHECK(c.code == 1000);
  CHECK(t.violations() == violations{});

  // A plain request to the route: 426 with Upgrade; other routes answer as usual.
  http::test_client h{app.handler()};
  const http::test_response r = h.get("/rooms/blue");
  CHECK(r.status == 426);
  CHECK(r.header("Upgrade") == "websocket");
  CHECK(h.get("/plain").body == "p");
}
