// The server core through the fake source: handlers, deadlines, errors, backpressure, drain.
#include "lancer/core/server.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "echo.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/fake.hpp"
#include "log_capture.hpp"

using namespace std::chrono_literals;
using lancer::clock;
using lancer::connection;
using lancer::fake_client;
using lancer::frame;
using lancer::pubframe;
using lancer::scheduler;
using lancer::server;
using lancer::server_options;
using lancer::task;

namespace lancer {
// Reaches what the public API does not show (style: a friend tester, not test-only accessors).
struct connection_tester {
  static std::size_t buffer_capacity(const connection& c) {
    return c.in_.capacity() + c.out_.capacity();
  }
};
}  // namespace lancer

namespace {

struct fixture {
  scheduler sched{clock::manual()};
  server srv;
  lancer::fake_source fake;

  explicit fixture(server::handler h, server_options o = {}) : srv(sched, std::move(h), o) {
    srv.attach_source(fake);
    srv.run();
    sched.run_until_idle();
  }
};

}  // namespace

TEST_CASE("an echo handler answers through the fake source") {
  fixture f{lancer_test::echo};
  fake_client c = f.fake.connect();
  CHECK(c.exchange("hello") == "hello");
  CHECK(c.exchange("again") == "again");
  CHECK(f.srv.connections() == 1);
  c.shutdown_write();
  f.sched.run_until_idle();
  CHECK(c.server_closed());
  CHECK(f.srv.connections() == 0);
  CHECK(f.srv.stats().closed == 1);
}

TEST_CASE("input arriving in fragments and byte by byte is all seen, in order") {
  fixture f{lancer_test::echo};
  fake_client c = f.fake.connect();
  const std::string message = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string got;
  for (char ch : message)
    got += c.exchange(std::string_view(&ch, 1));
  CHECK(got == message);
  got.clear();
  for (std::size_t i = 0; i < message.size(); i += 5)
    got += c.exchange(message.substr(i, 5));
  CHECK(got == message);
}

TEST_CASE("a deadline closes an idle connection at exactly the configured virtual time") {
  server_options o;
  o.timeout = 30s;
  std::vector<clock::time_point> ended;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
              try {
                co_await c.read();
              } catch (const lancer::timed_out&) {
                ended.push_back(scheduler::current()->now());
                throw;
              }
            },
            o};
  const clock::time_point start = f.sched.now();
  fake_client c = f.fake.connect();
  f.sched.run_until_idle();
  f.sched.advance(29s);
  CHECK_FALSE(c.server_closed());
  CHECK(ended.empty());
  f.sched.advance(1s);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0] == start + 30s);
  CHECK(c.server_done());
  CHECK(f.srv.stats().timed_out == 1);
}

TEST_CASE("a handler sleeping past its deadline is woken at the deadline, not after") {
  server_options o;
  o.timeout = 10s;
  clock::time_point woke{};
  bool timed_out = false;
  fixture f{[&](connection&, frame&, pubframe&) -> task<> {
              try {
                co_await lancer::sleep_for(1h);
              } catch (const lancer::timed_out&) {
                timed_out = true;
              }
              woke = scheduler::current()->now();
            },
            o};
  const clock::time_point start = f.sched.now();
  fake_client c = f.fake.connect();
  f.sched.advance(2h);
  CHECK(timed_out);
  CHECK(woke == start + 10s);
  CHECK(c.server_closed());
}

TEST_CASE("set_timeout moves a connection's deadline, earlier or later") {
  std::vector<clock::time_point> ended;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    c.set_timeout(5s);
    try {
      co_await c.read();
    } catch (const lancer::timed_out&) {
      ended.push_back(scheduler::current()->now());
    }
  }};
  const clock::time_point start = f.sched.now();
  fake_client c = f.fake.connect();
  f.sched.advance(60s);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0] == start + 5s);  // not the default 60 s
}

TEST_CASE("a deadline moved later fires at its new time, not at the one it replaced") {
  std::vector<clock::time_point> ended;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    c.set_timeout(10s);
    try {
      for (;;) {
        co_await c.read();
        c.consume(c.buffered().size());
        c.set_timeout(10s);  // each message buys ten more seconds, as keep-alive does
      }
    } catch (const lancer::timed_out&) {
      ended.push_back(scheduler::current()->now());
    }
  }};
  const clock::time_point start = f.sched.now();
  fake_client c = f.fake.connect();
  f.sched.advance(8s);
  c.write("a");
  f.sched.advance(8s);
  c.write("b");
  f.sched.run_until_idle();
  CHECK(ended.empty());
  f.sched.advance(9s);  // 25 s in: the first deadlines (10 s, 18 s) have passed harmlessly
  CHECK(ended.empty());
  f.sched.advance(2s);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0] == start + 26s);
}

TEST_CASE("a deadline moved later and then earlier fires at the earlier time") {
  std::vector<clock::time_point> ended;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    c.set_timeout(30s);
    c.set_timeout(50s);
    CHECK(c.deadline() == scheduler::current()->now() + 50s);
    co_await c.read();
    c.set_timeout(5s);
    try {
      co_await c.read();
    } catch (const lancer::timed_out&) {
      ended.push_back(scheduler::current()->now());
    }
  }};
  const clock::time_point start = f.sched.now();
  fake_client c = f.fake.connect();
  f.sched.advance(20s);
  c.write("x");
  f.sched.advance(60s);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0] == start + 25s);
}

TEST_CASE("a connection stopped before its handler ever ran is closed and reaped") {
  bool ran = false;
  fixture f{[&](connection&, frame&, pubframe&) -> task<> {
    ran = true;
    co_return;
  }};
  fake_client c = f.fake.connect();  // handed over; its thread has not had a turn yet
  f.srv.stop();
  f.sched.run_until_idle();
  CHECK_FALSE(ran);
  CHECK(c.server_closed());
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("a handler that throws before returning its coroutine fails only its connection") {
  lancer_test::log_capture logs;
  int calls = 0;
  fixture f{[&](connection& c, frame& fr, pubframe& p) -> task<> {
    if (++calls == 1) throw std::runtime_error("no coroutine for you");
    return lancer_test::echo(c, fr, p);
  }};
  fake_client bad = f.fake.connect();
  fake_client good = f.fake.connect();
  f.sched.run_until_idle();
  CHECK(bad.server_closed());
  CHECK(logs.contains("ERROR conn/" + std::to_string(bad.id()) +
                      "] handler failed to start: no coroutine for you"));
  CHECK(good.exchange("hi") == "hi");
  CHECK(f.srv.stats().handler_errors == 1);
}

TEST_CASE("a handler that throws is logged with its connection id; the others carry on") {
  lancer_test::log_capture logs;
  fixture f{[](connection& c, frame&, pubframe&) -> task<> {
    for (;;) {
      co_await c.read();
      if (c.buffered() == "boom") throw std::runtime_error("bad thing");
      c.write(c.buffered());
      c.consume(c.buffered().size());
    }
  }};
  fake_client good = f.fake.connect();
  fake_client bad = f.fake.connect();
  CHECK(good.exchange("fine") == "fine");
  CHECK(bad.exchange("boom").empty());
  CHECK(bad.server_closed());
  CHECK(logs.contains("ERROR conn/" + std::to_string(bad.id()) + "] handler failed: bad thing"));
  CHECK(f.srv.stats().handler_errors == 1);
  CHECK(good.exchange("still fine") == "still fine");
  CHECK_FALSE(good.server_closed());
}

TEST_CASE("a handler that never finishes is cut off after its deadline and its RAII runs") {
  server_options o;
  o.timeout = 10s;
  o.grace = 2s;
  bool destroyed = false;
  clock::time_point cut{};
  fixture f{[&](connection&, frame&, pubframe&) -> task<> {
              struct guard {
                bool* flag;
                ~guard() { *flag = true; }
              } g{&destroyed};
              for (;;) {
                try {
                  co_await lancer::sleep_for(1h);
                } catch (const lancer::timed_out&) {
                  // ignores its deadline on purpose
                } catch (const lancer::cancelled&) {
                  cut = scheduler::current()->now();
                  throw;
                }
              }
            },
            o};
  const clock::time_point start = f.sched.now();
  fake_client c = f.fake.connect();
  f.sched.advance(11s);
  CHECK_FALSE(destroyed);
  f.sched.advance(5s);
  CHECK(destroyed);
  CHECK(cut == start + 12s);
  CHECK(c.server_closed());
  CHECK(f.srv.stats().cut_off == 1);
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("a slow reader keeps server memory bounded while the handler sends 100 MB") {
  server_options o;
  o.high_water = 256 * 1024;
  o.timeout = 0s;
  constexpr std::size_t chunk = 64 * 1024;
  constexpr std::size_t total = 100u * 1024 * 1024;
  std::size_t max_unsent = 0;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
              std::string block(chunk, '\0');
              for (std::size_t sent = 0; sent < total; sent += chunk) {
                for (std::size_t i = 0; i < chunk; ++i)
                  block[i] = static_cast<char>((sent + i) % 251);
                co_await c.send(block);
                max_unsent = std::max(max_unsent, c.unsent());
              }
              co_await c.flush();
            },
            o};
  fake_client c = f.fake.connect();
  c.set_window(16 * 1024);  // a small receive window
  std::size_t received = 0;
  bool intact = true;
  while (received < total) {
    f.sched.run_until_idle();
    const std::string got = c.read();  // frees the window: the stalled write goes on
    for (std::size_t i = 0; i < got.size() && intact; i += 4093) {
      intact = static_cast<unsigned char>(got[i]) == (received + i) % 251;
    }
    received += got.size();
    if (got.empty()) break;  // stuck: the checks below say so
  }
  f.sched.run_until_idle();
  CHECK(c.server_done());
  CHECK(received == total);
  CHECK(intact);
  CHECK(max_unsent <= o.high_water + chunk);
}

TEST_CASE("a reset in the middle of a write fails the handler's flush, not the server") {
  lancer_test::log_capture logs;
  server_options o;
  o.timeout = 0s;
  std::string outcome;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
              c.write(std::string(100'000, 'x'));
              try {
                co_await c.flush();
                outcome = "flushed";
              } catch (const std::system_error& e) {
                outcome = e.code() == std::errc::broken_pipe ? "broken pipe" : e.what();
              }
            },
            o};
  fake_client c = f.fake.connect();
  c.set_window(1000);
  f.sched.run_until_idle();
  CHECK(c.read().size() == 1000);  // part of it went out
  f.sched.run_until_idle();
  c.reset();
  f.sched.run_until_idle();
  CHECK(outcome == "broken pipe");
  CHECK(f.srv.connections() == 0);
  fake_client other = f.fake.connect();
  CHECK(f.srv.connections() == 1);  // the server still takes connections
}

TEST_CASE("injected transport faults reach the handler once or for good") {
  std::vector<std::string> seen;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    for (int i = 0; i < 3; ++i) {
      try {
        co_await c.read();
        seen.push_back("data");
        c.consume(c.buffered().size());
      } catch (const std::system_error& e) {
        seen.push_back(e.code() == std::errc::io_error ? "io_error" : "other");
        co_return;
      }
    }
  }};
  fake_client c = f.fake.connect();
  c.exchange("a");
  c.fail_reads(std::errc::io_error);  // one shot
  f.sched.run_until_idle();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == "data");
  CHECK(seen[1] == "io_error");
  CHECK(c.server_closed());
}

TEST_CASE("drain lets busy handlers finish, wakes idle ones, and closes the rest at its deadline") {
  server_options o;
  o.timeout = 0s;
  std::vector<std::string> events;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
              const std::size_t n = co_await c.read();
              if (n == 0 && f.srv.draining()) {
                events.push_back("idle left");
                co_return;
              }
              if (c.buffered() == "slow") {
                co_await lancer::sleep_for(5s);
                c.write("done");
                events.push_back("slow finished");
              } else {
                co_await lancer::sleep_for(1h);  // stuck
              }
            },
            o};
  fake_client idle = f.fake.connect();
  fake_client slow = f.fake.connect();
  fake_client stuck = f.fake.connect();
  slow.write("slow");
  stuck.write("stuck");
  f.sched.run_until_idle();
  f.srv.drain(f.sched.now() + 10s);
  f.sched.run_until_idle();
  CHECK(idle.server_done());
  fake_client late = f.fake.connect();
  CHECK(late.server_closed());  // refused while draining
  f.sched.advance(6s);
  CHECK(slow.read() == "done");
  CHECK(slow.server_done());
  CHECK_FALSE(stuck.server_closed());
  f.sched.advance(5s);
  CHECK(stuck.server_closed());
  CHECK(f.srv.connections() == 0);
  f.sched.run();  // the managing coroutine has ended: run() returns
  CHECK(f.sched.live_threads() == 0);
  CHECK(events == std::vector<std::string>{"idle left", "slow finished"});
}

TEST_CASE("100k idle fake connections cost nothing per turn: the active few are served") {
  server_options o;
  o.timeout = 0s;
  fixture f{lancer_test::echo, o};
  std::vector<fake_client> idle;
  idle.reserve(100'000);
  for (int i = 0; i < 100'000; ++i)
    idle.push_back(f.fake.connect());
  f.sched.run_until_idle();
  CHECK(f.srv.connections() == 100'000);
  std::vector<fake_client> active;
  for (int i = 0; i < 3; ++i)
    active.push_back(f.fake.connect());
  f.sched.run_until_idle();  // every handler is now parked in read()
  const std::uint64_t wakebacks = f.srv.stats().wakebacks;
  for (int round = 0; round < 50; ++round) {
    for (auto& c : active)
      CHECK(c.exchange("ping") == "ping");
  }
  // Only the active connections were woken: 3 x 50 wakebacks, none for the idle ones.
  CHECK(f.srv.stats().wakebacks - wakebacks == 150);
  f.srv.stop();
  f.sched.run_until_idle();
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("a handler waiting for input with nothing buffered holds no buffer memory") {
  connection* seen = nullptr;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    seen = &c;
    for (;;) {
      co_await c.read();
      c.write(c.buffered());
      c.consume(c.buffered().size());
    }
  }};
  fake_client c = f.fake.connect();
  CHECK(c.exchange(std::string(3000, 'a')).size() == 3000);
  REQUIRE(seen != nullptr);
  CHECK(lancer::connection_tester::buffer_capacity(*seen) == 0);
}

TEST_CASE("replies written for several buffered requests leave in one transport write") {
  fixture f{[](connection& c, frame&, pubframe&) -> task<> {
    for (;;) {
      co_await c.read();
      std::string_view in = c.buffered();
      std::size_t nl;
      while ((nl = in.find('\n')) != std::string_view::npos) {
        c.write("ok\n");  // one reply per line, all before the next read flushes them
        in.remove_prefix(nl + 1);
      }
      c.consume(c.buffered().size() - in.size());
    }
  }};
  fake_client c = f.fake.connect();
  c.set_window(0);  // hold everything the server sends until the test opens the window
  c.write("a\nb\nc\n");
  f.sched.run_until_idle();
  c.set_window(1 << 20);  // one write now carries all three replies
  CHECK(c.read() == "ok\nok\nok\n");
}

TEST_CASE("pubframe is shared by every connection and frame belongs to one") {
  fixture f{[](connection& c, frame& mine, pubframe& shared) -> task<> {
    for (;;) {
      co_await c.read();
      c.consume(c.buffered().size());
      ++mine.get_or_emplace<int>(0);
      ++shared.get_or_emplace<int>(0);
      c.write(std::to_string(*mine.get<int>()) + "/" + std::to_string(*shared.get<int>()));
    }
  }};
  fake_client a = f.fake.connect();
  fake_client b = f.fake.connect();
  CHECK(a.exchange("x") == "1/1");
  CHECK(a.exchange("x") == "2/2");
  CHECK(b.exchange("x") == "1/3");
}

TEST_CASE("read_and_wait returns buffered bytes at once and waits only when there are none") {
  std::vector<std::string> seen;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    for (;;) {
      const std::string_view in = co_await c.read_and_wait();
      if (in.empty()) break;  // EOF
      seen.emplace_back(in.substr(0, 1));
      c.consume(1);  // one byte at a time: the rest stays buffered for the next call
    }
  }};
  fake_client c = f.fake.connect();
  c.write("abc");
  c.shutdown_write();
  f.sched.run_until_idle();
  CHECK(seen == std::vector<std::string>{"a", "b", "c"});
  CHECK(c.server_closed());
}

TEST_CASE("a read after EOF was reported throws instead of spinning") {
  lancer_test::log_capture logs;
  int zeros = 0;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    for (;;) {
      if (co_await c.read() == 0) ++zeros;  // a buggy handler ignoring at_eof()
    }
  }};
  fake_client c = f.fake.connect();
  c.shutdown_write();
  f.sched.run_until_idle();
  CHECK(zeros == 1);
  CHECK(c.server_closed());
  CHECK(logs.contains("read after EOF"));
}

TEST_CASE("require_wakeback ends a pending read but not a pending flush") {
  std::vector<std::string> events;
  connection* conn = nullptr;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    conn = &c;
    events.push_back("read returned " + std::to_string(co_await c.read()));
    c.write(std::string(5000, 'x'));
    co_await c.flush();
    events.push_back("flushed");
  }};
  fake_client c = f.fake.connect();
  c.set_window(0);  // nothing the server sends is taken yet
  f.sched.run_until_idle();
  REQUIRE(conn != nullptr);
  conn->require_wakeback();
  f.sched.run_until_idle();
  REQUIRE(events.size() == 1);
  CHECK(events[0] == "read returned 0");
  c.set_window(1000);
  f.sched.run_until_idle();
  conn->require_wakeback();  // the flush must go on waiting: 4000 bytes are still unsent
  f.sched.run_until_idle();
  CHECK(events.size() == 1);
  c.set_window(1 << 20);
  c.read();
  f.sched.run_until_idle();
  CHECK(events.size() == 2);
}

TEST_CASE("after its handler a connection sends a FIN, drops what still comes, and closes at EOF") {
  fixture f{[](connection& c, frame&, pubframe&) -> task<> {
    co_await c.read();
    c.write("bye");  // answers the first bytes and hangs up, whatever else was sent
  }};
  fake_client c = f.fake.connect();
  CHECK(c.exchange("first") == "bye");
  CHECK(c.server_done());  // the FIN
  CHECK_FALSE(c.server_closed());
  c.write("more, unread by any handler");
  f.sched.run_until_idle();
  CHECK_FALSE(c.server_closed());
  c.shutdown_write();
  f.sched.run_until_idle();
  CHECK(c.server_closed());  // at the client's EOF, at once
  CHECK_FALSE(c.server_reset());
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("a connection lingers at most server_options::linger, then closes") {
  server_options o;
  o.linger = 3s;
  fixture f{[](connection& c, frame&, pubframe&) -> task<> {
              co_await c.read();
              c.write("bye");
            },
            o};
  fake_client c = f.fake.connect();
  c.write("first and second at once");
  c.set_window(0);
  f.sched.run_until_idle();
  c.set_window(1 << 20);
  const auto start = f.sched.now();
  CHECK(c.exchange("") == "bye");
  f.sched.advance(2999ms);
  CHECK_FALSE(c.server_closed());
  f.sched.advance(1ms);
  CHECK(c.server_closed());
  CHECK(f.sched.now() - start == 3s);
  CHECK_FALSE(c.server_reset());
}

TEST_CASE("with linger 0 the server closes at once, and unread input means a reset") {
  server_options o;
  o.linger = 0s;
  fixture f{[](connection& c, frame&, pubframe&) -> task<> {
              co_await c.read();
              c.write("bye");
            },
            o};
  fake_client c = f.fake.connect();
  c.set_window(0);  // the server's answer waits, so the next bytes arrive before its close
  c.write("first");
  f.sched.run_until_idle();
  c.write("second");
  c.set_window(1 << 20);
  f.sched.run_until_idle();
  CHECK(c.read() == "bye");
  CHECK(c.server_closed());
  CHECK(c.server_reset());  // what a staged close avoids
}

TEST_CASE("a drain's deadline is a bound: a later deadline set after it does not extend it") {
  lancer_test::log_capture logs;
  fixture f{[](connection& c, frame&, pubframe&) -> task<> {
    for (;;) {
      c.set_timeout(30s);  // as a body reader restarts its timeout on progress
      const std::size_t n = co_await c.read();
      if (n == 0 && c.at_eof()) co_return;
      c.consume(c.buffered().size());  // a drain's wakeback (n == 0) is not the end here
    }
  }};
  fake_client c = f.fake.connect();
  c.exchange("a");
  const auto start = f.sched.now();
  f.srv.drain(start + 1s);
  for (int i = 0; i < 9; ++i) {
    f.sched.advance(100ms);
    c.exchange("b");  // progress, every 100 ms
  }
  CHECK_FALSE(c.server_closed());
  f.sched.advance(100ms);
  CHECK(c.server_closed());
  CHECK(f.sched.now() - start == 1s);
  CHECK(f.srv.connections() == 0);
  CHECK(logs.contains("WARN conn/" + std::to_string(c.id()) + "] cut off at the drain deadline"));
}

TEST_CASE("wake_at wakes a waiting handler without closing anything") {
  std::vector<std::string> events;
  fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    c.wake_at(c.now() + 5s);
    const std::size_t n = co_await c.read();
    events.push_back(n == 0 && !c.at_eof() ? "woken" : "data");
    c.write("still open");
  }};
  const auto start = f.sched.now();
  fake_client c = f.fake.connect();
  f.sched.advance(5s);
  CHECK(events == std::vector<std::string>{"woken"});
  CHECK(f.sched.now() - start == 5s);
  CHECK(c.read() == "still open");
}

namespace {

// A thread that waits for the server's drain and notes when it ended and what it saw.
struct drain_watch {
  bool done = false;
  bool result = false;
  clock::time_point at{};
  std::size_t connections_seen = 0;
};

task<> watch_drain(server& srv, drain_watch& w) {
  co_await srv.drained();
  w.done = true;
  w.at = scheduler::current()->now();
  w.connections_seen = srv.connections();
}

task<> watch_drain_until(server& srv, clock::time_point deadline, drain_watch& w) {
  w.result = co_await srv.drained_until(deadline);
  w.done = true;
  w.at = scheduler::current()->now();
}

}  // namespace

TEST_CASE("drained() resumes its waiters when the last connection is reaped after drain()") {
  server_options o;
  o.timeout = 0s;
  o.linger = 0s;
  fixture f{[](connection& c, frame&, pubframe&) -> task<> {
              co_await c.read();
              if (c.buffered() == "slow") co_await lancer::sleep_for(3s);
            },
            o};
  fake_client idle = f.fake.connect();
  fake_client slow = f.fake.connect();
  slow.write("slow");
  f.sched.run_until_idle();
  drain_watch w1, w2;
  f.sched.spawn(watch_drain(f.srv, w1));
  f.sched.spawn(watch_drain(f.srv, w2));
  std::vector<clock::time_point> called;
  f.srv.on_drained([&] { called.push_back(f.sched.now()); });
  f.sched.run_until_idle();
  CHECK_FALSE(w1.done);
  CHECK(called.empty());
  const auto start = f.sched.now();
  f.srv.drain(start + 10s);
  f.sched.run_until_idle();
  CHECK(idle.server_closed());  // the idle one left at once
  CHECK(f.srv.connections() == 1);
  CHECK_FALSE(f.srv.is_drained());
  CHECK_FALSE(w1.done);
  CHECK(called.empty());
  f.sched.advance(2s);
  CHECK_FALSE(w1.done);
  f.sched.advance(2s);  // the slow handler ends at start + 3 s: its connection is the last
  CHECK(slow.server_closed());
  CHECK(f.srv.is_drained());
  REQUIRE(w1.done);
  REQUIRE(w2.done);
  CHECK(w1.at == start + 3s);
  CHECK(w2.at == start + 3s);
  CHECK(w1.connections_seen == 0);
  CHECK(called == std::vector<clock::time_point>{start + 3s});
}

TEST_CASE("drained() returns at once when a drain finds no connection, and not before drain()") {
  fixture f{lancer_test::echo};
  fake_client c = f.fake.connect();
  CHECK(c.exchange("hi") == "hi");
  drain_watch before;
  f.sched.spawn(watch_drain(f.srv, before));
  int called = 0;
  f.srv.on_drained([&] { ++called; });
  c.shutdown_write();
  f.sched.run_until_idle();
  CHECK(c.server_closed());
  CHECK(f.srv.connections() == 0);  // no connection left, but no drain either
  CHECK_FALSE(f.srv.is_drained());
  f.sched.advance(1h);
  CHECK_FALSE(before.done);
  CHECK(called == 0);

  const auto start = f.sched.now();
  f.srv.drain(start + 10s);  // nothing to wait for
  CHECK(f.srv.is_drained());
  CHECK(called == 1);  // the callback is called from drain() itself
  f.sched.run_until_idle();
  CHECK(before.done);
  CHECK(before.at == start);

  drain_watch after;  // a wait that starts after the drain ended does not suspend
  f.sched.spawn(watch_drain(f.srv, after));
  f.sched.run_until_idle();
  CHECK(after.done);
  CHECK(after.at == start);
  f.srv.on_drained([&] { ++called; });  // called at once
  CHECK(called == 2);
}

TEST_CASE("drained_until gives up at its deadline; stop() ends a drain too") {
  server_options o;
  o.timeout = 0s;
  fixture f{[](connection&, frame&, pubframe&) -> task<> {
              for (;;)
                co_await lancer::sleep_for(1h);  // ignores the drain
            },
            o};
  fake_client c = f.fake.connect();
  f.sched.run_until_idle();
  const auto start = f.sched.now();
  drain_watch early, late;
  f.sched.spawn(watch_drain_until(f.srv, start + 2s, early));
  f.sched.spawn(watch_drain_until(f.srv, start + 1h, late));
  f.srv.drain(start + 30s);
  f.sched.advance(2s);
  REQUIRE(early.done);
  CHECK_FALSE(early.result);
  CHECK(early.at == start + 2s);
  CHECK_FALSE(late.done);
  f.srv.stop();
  f.sched.run_until_idle();
  REQUIRE(late.done);
  CHECK(late.result);
  CHECK(late.at == start + 2s);
  CHECK(c.server_closed());
}

TEST_CASE("a thread waiting for a drain is resumed if the server goes first") {
  scheduler sched{clock::manual()};
  drain_watch w;
  {
    server srv{sched, lancer_test::echo};
    sched.spawn(watch_drain_until(srv, clock::time_point::max(), w));
    sched.run_until_idle();
    CHECK_FALSE(w.done);
  }
  sched.run_until_idle();
  CHECK(w.done);
  CHECK(w.result);
}
