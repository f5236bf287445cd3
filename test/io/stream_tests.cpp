// lancer::stream, the fake network, the Asio bridge and layers, in virtual time where it can.
#include "lancer/io/stream.hpp"

#include <doctest/doctest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/io/asio.hpp"
#include "lancer/io/fake_network.hpp"
#include "lancer/io/layer.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/fake.hpp"

using namespace std::chrono_literals;
using lancer::stream;
using lancer::task;

namespace {

lancer::address at(const char* text) {
  return lancer::parse_address(text, true);
}

// Runs `body` as a thread on a manual-clock scheduler until everything is done.
struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::fake_network net;
};

// Echoes what it reads until EOF.
task<> echo_peer(stream& s) {
  for (;;) {
    const std::size_t n = co_await s.read();
    if (!s.buffered().empty()) {
      co_await s.send(s.buffered());
      s.consume(s.buffered().size());
    }
    if (n == 0 && s.at_eof()) co_return;
  }
}

}  // namespace

TEST_CASE(
    "a stream to a scripted peer: write, read, half-close, EOF, and a read after EOF throws") {
  bed b;
  b.net.serve(at("tcp/10.0.0.1:7"), echo_peer);
  std::string got;
  bool threw = false;
  b.sched.run_until_complete([&]() -> task<> {
    auto s = co_await b.net.connect(at("tcp/10.0.0.1:7"), 1s);
    CHECK(s->name() == "tcp/10.0.0.1:7");
    s->write("hello ");
    s->write("stream");
    co_await s->flush();
    s->close();  // half-close: the echo ends, and so does our input
    for (;;) {
      const std::size_t n = co_await s->read();
      if (n == 0 && s->at_eof()) break;
    }
    got = std::string(s->buffered());
    try {
      co_await s->read();
    } catch (const std::system_error&) {
      threw = true;
    }
  }());
  CHECK(got == "hello stream");
  CHECK(threw);
  CHECK(b.net.connections(at("tcp/10.0.0.1:7")) == 1);
}

TEST_CASE("a stream counts the bytes it received and the bytes written to it") {
  bed b;
  b.net.serve(at("tcp/10.0.0.1:7"), echo_peer);
  std::uint64_t before_read = 1, received = 0, written = 0;
  b.sched.run_until_complete([&]() -> task<> {
    auto s = co_await b.net.connect(at("tcp/10.0.0.1:7"), 1s);
    s->write("abc");
    co_await s->send("defg");
    before_read = s->bytes_received();
    s->close();
    for (;;) {
      const std::size_t n = co_await s->read();
      if (n == 0 && s->at_eof()) break;
      s->consume(1);  // consumed bytes were still received
    }
    received = s->bytes_received();
    written = s->bytes_written();
  }());
  CHECK(before_read == 0);
  CHECK(received == 7);
  CHECK(written == 7);
}

TEST_CASE("one thread reads a stream while another writes it") {
  bed b;
  std::vector<std::string> events;
  lancer::fake_end* hand = nullptr;
  auto [t, end] = lancer::make_fake_link("peer", &b.sched);
  hand = &end;
  hand->set_window(0);  // the peer reads nothing yet: a write must wait
  b.sched.run_until_complete([&]() -> task<> {
    auto s = lancer::make_stream(std::move(t), "peer", lancer::stream_options{.high_water = 4});
    const lancer::thread_id writer =
        b.sched.spawn([](stream& st, std::vector<std::string>& ev) -> task<> {
          co_await st.send("0123456789");  // above the high-water mark: waits for the window
          ev.push_back("written");
        }(*s, events));
    co_await lancer::wakeback_later();  // the writer parks in its send
    hand->write("ping");
    const std::size_t n = co_await s->read();  // while the writer still waits
    events.push_back("read " + std::to_string(n));
    hand->set_window(100);
    while (b.sched.alive(writer))
      co_await lancer::wakeback_later();
  }());
  CHECK(events == std::vector<std::string>{"read 4", "written"});
  CHECK(hand->read() == "0123456789");
}

TEST_CASE("two threads reading one stream is refused") {
  bed b;
  auto [t, end] = lancer::make_fake_link("peer", &b.sched);
  std::string error;
  b.sched.run_until_complete([&]() -> task<> {
    auto s = lancer::make_stream(std::move(t), "peer");
    b.sched.spawn([](stream& st) -> task<> {
      try {
        co_await st.read();
      } catch (const lancer::connection_error&) {  // the abort below ends it
      }
    }(*s));
    co_await lancer::wakeback_later();  // the first reader parks
    try {
      co_await s->read();
    } catch (const std::logic_error& e) {
      error = e.what();
    }
    s->abort(std::make_error_code(std::errc::operation_canceled));  // ends the first reader
    co_await lancer::wakeback_later();
  }());
  CHECK(error == "lancer::stream: two threads wait to read peer");
}

TEST_CASE("a stream's deadline ends both its waits with timed_out, in virtual time") {
  bed b;
  auto [t, end] = lancer::make_fake_link("peer", &b.sched);
  end.set_window(0);
  std::vector<std::string> events;
  const auto start = b.sched.now();
  b.sched.run_until_complete([&]() -> task<> {
    auto s = lancer::make_stream(std::move(t), "peer", lancer::stream_options{.high_water = 1});
    s->set_timeout(5s);
    const lancer::thread_id w =
        b.sched.spawn([](stream& st, std::vector<std::string>& ev) -> task<> {
          try {
            co_await st.send("blocked");
          } catch (const lancer::timed_out&) {
            ev.push_back("writer timed out");
          }
        }(*s, events));
    try {
      co_await s->read();
    } catch (const lancer::timed_out&) {
      events.push_back("reader timed out at " + std::to_string((b.sched.now() - start) / 1ms) +
                       " ms");
    }
    while (b.sched.alive(w))
      co_await lancer::wakeback_later();
    bool again = false;
    try {
      co_await s->read();
    } catch (const lancer::timed_out&) {
      again = true;  // reads fail from then on
    }
    CHECK(again);
  }());
  REQUIRE(events.size() == 2);
  CHECK(events[0] == "reader timed out at 5000 ms");
  CHECK(events[1] == "writer timed out");
}

TEST_CASE("the fake network refuses, resets and holds connections on demand") {
  bed b;
  const lancer::address up = at("tcp/10.0.0.2:80");
  std::vector<std::string> errors;
  b.sched.run_until_complete([&]() -> task<> {
    for (const auto trouble :
         {lancer::fake_network::trouble::refuse, lancer::fake_network::trouble::reset,
          lancer::fake_network::trouble::hold}) {
      b.net.fail(up, trouble);
      const auto before = b.sched.now();
      try {
        co_await b.net.connect(up, 3s);
      } catch (const lancer::connection_error& e) {
        errors.push_back(std::string(e.what()) + " after " +
                         std::to_string((b.sched.now() - before) / 1s) + " s");
      }
    }
    try {
      co_await b.net.connect(at("tcp/10.9.9.9:1"), 1s);  // nobody serves it
    } catch (const lancer::connection_error& e) {
      errors.emplace_back(e.what());
    }
  }());
  REQUIRE(errors.size() == 4);
  CHECK(errors[0].find("tcp/10.0.0.2:80: Connection refused after 0 s") == 0);
  CHECK(errors[1].find("tcp/10.0.0.2:80: Connection reset by peer after 0 s") == 0);
  CHECK(errors[2].find("tcp/10.0.0.2:80: connect timed out") == 0);
  CHECK(errors[2].find("after 3 s") != std::string::npos);
  CHECK(errors[3].find("tcp/10.9.9.9:1: Connection refused") == 0);
}

TEST_CASE("the fake network carries a program's connection to a real server on a fake source") {
  bed b;
  lancer::set_log_level(lancer::log_level::warn);
  lancer::server srv{
      b.sched, [](lancer::connection& c, lancer::frame&, lancer::pubframe&) -> task<> {
        co_await c.read();
        c.write("served " + std::string(c.buffered()) + " for " + std::string(c.peer_address()));
      }};
  lancer::fake_source src;
  srv.attach_source(src);
  srv.run();
  b.net.serve(at("tcp/10.0.0.3:80"), src.dialer());
  std::string got;
  b.sched.run_until_complete([&]() -> task<> {
    auto s = co_await b.net.connect(at("tcp/10.0.0.3:80"), 1s);
    s->write("x");
    for (;;) {
      const std::size_t n = co_await s->read();
      if (n == 0 && s->at_eof()) break;
    }
    got = std::string(s->buffered());
  }());
  CHECK(got == "served x for fake/c1");
  lancer::set_log_level(lancer::log_level::info);
}

namespace {

// A test layer: each unit is a length byte and up to 255 bytes, every byte plus one. It
// proves bytes pass through a layer both ways, split across reads, on any transport.
class frame_layer final : public lancer::layer {
 public:
  using layer::layer;

 protected:
  std::error_code decode(lancer::buffer& raw, lancer::buffer& plain) override {
    for (;;) {
      const std::string_view in = raw.view();
      if (in.empty()) return {};
      const std::size_t len = static_cast<unsigned char>(in[0]);
      if (len == 0) return std::make_error_code(std::errc::protocol_error);
      if (in.size() < 1 + len) return {};  // half a unit: wait for the rest
      std::string unit(in.substr(1, len));
      for (char& c : unit)
        c = static_cast<char>(c - 1);
      plain.append(unit);
      raw.consume(1 + len);
    }
  }
  void encode(lancer::buffer& plain, lancer::buffer& raw) override {
    std::string_view in = plain.view();
    while (!in.empty()) {
      const std::size_t len = std::min<std::size_t>(in.size(), 255);
      std::string unit(1, static_cast<char>(len));
      for (const char c : in.substr(0, len))
        unit += static_cast<char>(c + 1);
      raw.append(unit);
      in.remove_prefix(len);
    }
    plain.consume(plain.size());
  }
};

}  // namespace

TEST_CASE("a layer sits between a server's connections and the fake source: bytes pass both ways") {
  bed b;
  lancer::set_log_level(lancer::log_level::warn);
  lancer::server srv{b.sched,
                     [](lancer::connection& c, lancer::frame&, lancer::pubframe&) -> task<> {
                       for (;;) {  // an echo that sees plain bytes
                         const std::size_t n = co_await c.read();
                         c.write(c.buffered());
                         c.consume(c.buffered().size());
                         if (n == 0 && c.at_eof()) break;
                       }
                     }};
  srv.set_layer([](std::unique_ptr<lancer::transport> t) -> std::unique_ptr<lancer::transport> {
    return std::make_unique<frame_layer>(std::move(t));
  });
  lancer::fake_source src;
  srv.attach_source(src);
  srv.run();
  lancer::fake_client c = src.connect();
  // "abc" framed: 3, 'b', 'c', 'd'; sent a byte at a time, the layer waits for the whole unit.
  std::string reply;
  for (const char ch : std::string("\x03"
                                   "bcd"
                                   "\x02"
                                   "ij"))
    reply += c.exchange(std::string(1, ch));
  CHECK(reply == std::string("\x03"
                             "bcd"
                             "\x02"
                             "ij"));  // "abc", "hi" echoed, framed again
  c.write(std::string("\x00", 1));    // not what the layer speaks: the connection fails
  b.sched.run_until_idle();
  CHECK(c.server_done());
  lancer::set_log_level(lancer::log_level::info);
}

TEST_CASE("the Asio bridge awaits an Asio timer, and a cancelled wait cancels the operation") {
  lancer::scheduler sched;  // Asio timers run on the steady clock
  std::vector<std::string> events;
  // Outlives the waits: only the bridge's cancellation can end its hour-long wait. If it
  // did not, run_until_complete would wait the hour (the test would hang, and fail).
  boost::asio::steady_timer forever(sched.reactor(), 1h);
  const auto start = std::chrono::steady_clock::now();
  sched.run_until_complete([&]() -> task<> {
    boost::asio::steady_timer timer(sched.reactor(), 10ms);
    auto [ec] = co_await timer.async_wait(lancer::use_signal);
    events.push_back(ec ? ec.message() : "fired");
    const lancer::thread_id waiter =
        sched.spawn([](boost::asio::steady_timer& t, std::vector<std::string>& ev) -> task<> {
          try {
            co_await t.async_wait(lancer::use_signal);
            ev.push_back("woke");
          } catch (const lancer::cancelled&) {
            ev.push_back("cancelled");
          }
        }(forever, events));
    co_await lancer::wakeback_later();  // it parks
    sched.cancel(waiter);
    while (sched.alive(waiter))
      co_await lancer::wakeback_later();
  }());
  sched.run();  // nothing left: the timer's wait was cancelled with the thread's
  CHECK(events == std::vector<std::string>{"fired", "cancelled"});
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("resuming a coroutine directly instead of by a signal is caught") {
  lancer::scheduler sched;
  std::string caught;
  struct bad_awaitable {  // breaks the rule: resumes the handle from a completion handler
    lancer::scheduler& s;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      s.park(h, lancer::mask_of(lancer::signal_kind::resume));
      boost::asio::post(s.reactor(), [h] { h.resume(); });
    }
    void await_resume() const noexcept {}
  };
  const lancer::thread_id t = sched.spawn([](lancer::scheduler& s, std::string& out) -> task<> {
    co_await bad_awaitable{s};
    try {
      co_await bad_awaitable{s};  // parks again, from outside any thread the scheduler runs
    } catch (const std::logic_error& e) {
      out = e.what();
    }
  }(sched, caught));
  sched.run();
  CHECK(caught.find("resumed outside the scheduler") != std::string::npos);
  if (sched.alive(t)) sched.discard(t);
}
