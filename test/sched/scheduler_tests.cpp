// The by-signal scheduler: turns, queues, delivery rules, cancellation, errors, threads.
#include "lancer/sched/scheduler.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "log_capture.hpp"

using namespace std::chrono_literals;
using lancer::scheduler;
using lancer::signal_kind;
using lancer::task;
using lancer::thread_id;

namespace {

// Waits for one signal and records (its value, the turn it arrived in).
struct arrival {
  std::uint64_t value;
  std::uint64_t turn;
};

task<> receive(int count, std::vector<arrival>* log) {
  for (int i = 0; i < count; ++i) {
    const lancer::signal s = co_await lancer::wait_signal();
    log->push_back({s.value, scheduler::current()->stats().turns});
  }
}

task<> send_values(std::vector<thread_id> targets, std::uint64_t first_value) {
  co_await lancer::wakeback_later();  // let every receiver park first
  std::uint64_t v = first_value;
  for (thread_id t : targets) {
    scheduler::current()->push(lancer::signal{t, signal_kind::value_ready, 0, v++, {}});
  }
}

struct raii_flag {
  bool* flag;
  ~raii_flag() { *flag = true; }
};

task<> wait_forever(bool* unwound, bool* saw_cancelled, bool* later_await_threw) {
  raii_flag g{unwound};
  try {
    co_await lancer::wait_signal();
  } catch (const lancer::cancelled&) {
    *saw_cancelled = true;
  }
  try {
    co_await lancer::wakeback_later();  // a cancelled thread cannot go on waiting
  } catch (const lancer::cancelled&) {
    *later_await_threw = true;
    throw;
  }
}

task<> count_yields(int n, long* total) {
  for (int i = 0; i < n; ++i) {
    co_await lancer::wakeback_later();
    ++*total;
  }
}

}  // namespace

TEST_CASE("signals queued for a turn are delivered in the order they were pushed") {
  scheduler s;
  std::vector<arrival> got;
  std::vector<int> order;
  const thread_id a = s.spawn(receive(1, &got));
  const thread_id b = s.spawn(receive(1, &got));
  const thread_id c = s.spawn(receive(1, &got));
  s.spawn(send_values({c, a, b}, 100));
  s.run();
  REQUIRE(got.size() == 3);
  CHECK(got[0].value == 100);  // c first, as pushed
  CHECK(got[1].value == 101);
  CHECK(got[2].value == 102);
  CHECK(got[0].turn == got[2].turn);  // one turn carried all three
}

TEST_CASE("a signal pushed during a turn is delivered in the next turn") {
  scheduler s;
  std::vector<arrival> got;
  std::uint64_t sent_in_turn = 0;
  const thread_id a = s.spawn(receive(1, &got));
  s.spawn([](thread_id target, std::uint64_t* turn) -> task<> {
    co_await lancer::wakeback_later();
    *turn = scheduler::current()->stats().turns;
    scheduler::current()->push(lancer::signal{target, signal_kind::value_ready, 0, 1, {}});
  }(a, &sent_in_turn));
  s.run();
  REQUIRE(got.size() == 1);
  CHECK(got[0].turn == sent_in_turn + 1);
}

TEST_CASE("a second signal to one thread in one turn waits for the next turn") {
  scheduler s;
  s.set_check_handler([](std::string_view) {});
  std::vector<arrival> got;
  const thread_id a = s.spawn(receive(2, &got));
  s.spawn(send_values({a, a}, 7));
  s.run();
  REQUIRE(got.size() == 2);  // nothing lost
  CHECK(got[0].value == 7);
  CHECK(got[1].value == 8);
  CHECK(got[1].turn == got[0].turn + 1);
  CHECK(s.stats().deferred == 1);
}

TEST_CASE("builds with checks report a second signal to one thread in one turn" *
          doctest::skip(!scheduler::checks_enabled())) {
  scheduler s;
  std::vector<std::string> reports;
  s.set_check_handler([&](std::string_view what) { reports.emplace_back(what); });
  std::vector<arrival> got;
  const thread_id a = s.spawn(receive(2, &got));
  s.spawn(send_values({a, a}, 1));
  s.run();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].find("second signal") != std::string::npos);
}

TEST_CASE("a spawned thread first runs in the next turn") {
  scheduler s;
  long total = 0;
  s.spawn(count_yields(3, &total));
  CHECK(total == 0);
  s.run();
  CHECK(total == 3);
  CHECK(s.stats().turns == 4);  // start + three yields
  CHECK(s.live_threads() == 0);
}

TEST_CASE("cancelling a parked thread makes its co_await throw and unwinds its RAII") {
  scheduler s;
  bool unwound = false, saw_cancelled = false, later_threw = false;
  const thread_id t = s.spawn(wait_forever(&unwound, &saw_cancelled, &later_threw));
  s.spawn([](thread_id victim) -> task<> {
    co_await lancer::wakeback_later();
    scheduler::current()->cancel(victim);
  }(t));
  s.run();
  CHECK(saw_cancelled);
  CHECK(later_threw);
  CHECK(unwound);
  CHECK_FALSE(s.alive(t));
}

TEST_CASE("a thread cancelled before it starts never runs") {
  scheduler s;
  long total = 0;
  const thread_id t = s.spawn(count_yields(1, &total));
  s.cancel(t);
  s.run();
  CHECK(total == 0);
  CHECK_FALSE(s.alive(t));
  CHECK(s.live_threads() == 0);
}

namespace {
// Records how each of its threads ended.
struct recording_owner final : lancer::thread_owner {
  std::vector<std::string> ends;
  void thread_ended(thread_id, bool finished, std::exception_ptr error) noexcept override {
    std::string what = finished ? "finished" : "destroyed";
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        what += std::string(" by ") + e.what();
      }
    }
    ends.push_back(what);
  }
};
}  // namespace

TEST_CASE("a thread's owner is told how it ended: returned, threw, or destroyed unfinished") {
  scheduler s;
  recording_owner owner;
  bool handler_called = false;
  s.set_error_handler([&](thread_id, std::exception_ptr) { handler_called = true; });
  long total = 0;
  s.spawn(count_yields(2, &total), &owner);
  s.spawn(
      []() -> task<> {
        co_await lancer::wakeback_later();
        throw std::runtime_error("boom");
      }(),
      &owner);
  const thread_id never = s.spawn(count_yields(1, &total), &owner);
  s.cancel(never);  // before its first turn: it never runs
  bool unwound = false, saw = false, later = false;
  const thread_id parked = s.spawn(wait_forever(&unwound, &saw, &later), &owner);
  s.run();
  REQUIRE(owner.ends.size() == 3);
  CHECK(owner.ends[0] == "destroyed");         // the cancelled one, reaped in the first turn
  CHECK(owner.ends[1] == "finished by boom");  // the second turn
  CHECK(owner.ends[2] == "finished");          // the third: it yielded twice
  CHECK_FALSE(handler_called);                 // an owned thread's error goes to its owner only
  s.discard(parked);
  REQUIRE(owner.ends.size() == 4);
  CHECK(owner.ends[3] == "destroyed");
  CHECK(unwound);
}

TEST_CASE("on a steady clock now() is read once per turn: a turn sees one time") {
  scheduler s;
  std::vector<lancer::clock::time_point> seen;
  s.spawn([](std::vector<lancer::clock::time_point>* out) -> task<> {
    scheduler& me = *scheduler::current();
    out->push_back(me.now());
    const auto until = std::chrono::steady_clock::now() + 2ms;
    while (std::chrono::steady_clock::now() < until) {
    }
    out->push_back(me.now());  // same turn: the same time, though 2 ms went by
    co_await lancer::wakeback_later();
    out->push_back(me.now());  // a later turn: read again
  }(&seen));
  const auto before = s.now();
  s.run();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] >= before);
  CHECK(seen[1] == seen[0]);
  CHECK(seen[2] >= seen[0] + 2ms);
  CHECK(s.now() >= seen[2]);  // outside a turn: the clock itself
}

TEST_CASE("a timeout signal makes the pending co_await throw timed_out; later awaits work") {
  scheduler s;
  std::string seen;
  const thread_id t = s.spawn([](std::string* out) -> task<> {
    try {
      co_await lancer::wait_signal();
    } catch (const lancer::timed_out&) {
      *out += "timed_out;";
    }
    co_await lancer::wakeback_later();
    *out += "went on";
  }(&seen));
  s.spawn([](thread_id victim) -> task<> {
    co_await lancer::wakeback_later();
    scheduler::current()->push(lancer::signal{victim, signal_kind::timeout, 0, 0, {}});
  }(t));
  s.run();
  CHECK(seen == "timed_out;went on");
}

TEST_CASE("a thread that throws goes to the error handler and the others carry on") {
  scheduler s;
  std::vector<std::string> errors;
  s.set_error_handler([&](thread_id, std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      errors.emplace_back(ex.what());
    }
  });
  long total = 0;
  s.spawn([]() -> task<> {
    co_await lancer::wakeback_later();
    throw std::runtime_error("handler failed");
  }());
  s.spawn(count_yields(5, &total));
  s.run();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "handler failed");
  CHECK(total == 5);
  CHECK(s.live_threads() == 0);
}

TEST_CASE("without an error handler a failing thread is logged as one ERROR line") {
  std::vector<std::string> lines;
  lancer::set_log_sink([&](lancer::log_level, std::string_view line) { lines.emplace_back(line); });
  {
    scheduler s;
    s.spawn([]() -> task<> {
      throw std::runtime_error("bad input");
      co_return;
    }());
    s.run();
  }
  lancer::set_log_sink({});
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find(" ERROR sched] thread/0 ended with an exception: bad input") !=
        std::string::npos);
}

TEST_CASE("signals to a finished thread or to an ended wait are dropped") {
  scheduler s;
  long total = 0;
  const thread_id done = s.spawn(count_yields(0, &total));
  s.run();
  CHECK_FALSE(s.alive(done));
  s.push(lancer::signal{done, signal_kind::value_ready, 0, 1, {}});
  std::vector<arrival> got;
  const thread_id waiting = s.spawn([](std::vector<arrival>* out) -> task<> {
    co_await lancer::wakeback_later();  // suspension 1
    co_await receive(1, out);           // suspension 2
  }(&got));
  s.run();
  // A signal naming the ended suspension 1 must not wake suspension 2.
  s.push(lancer::signal{waiting, signal_kind::value_ready, 1, 5, {}});
  s.run();
  CHECK(got.empty());
  CHECK(s.alive(waiting));
  CHECK(s.stats().dropped == 2);
  s.push(lancer::signal{waiting, signal_kind::value_ready, 0, 6, {}});
  s.run();
  REQUIRE(got.size() == 1);
  CHECK(got[0].value == 6);
}

TEST_CASE("a slot reused by a new thread does not take signals meant for the old one") {
  scheduler s;
  long total = 0;
  const thread_id old_id = s.spawn(count_yields(0, &total));
  s.run();
  std::vector<arrival> got;
  const thread_id new_id = s.spawn(receive(1, &got));
  s.run();
  CHECK(new_id.index == old_id.index);
  CHECK(new_id.generation != old_id.generation);
  s.push(lancer::signal{old_id, signal_kind::value_ready, 0, 1, {}});
  s.run();
  CHECK(got.empty());
}

TEST_CASE("run returns when nothing is left and leaves forever-waiting threads parked") {
  scheduler s;
  std::vector<arrival> got;
  const thread_id t = s.spawn(receive(1, &got));
  s.run();
  CHECK(s.alive(t));
  CHECK(got.empty());
  CHECK_THROWS_AS(s.run_until_complete(receive(1, &got)), std::logic_error);
}

TEST_CASE("100k spawned coroutines all finish and give back their slots") {
  scheduler s;
  long total = 0;
  for (int i = 0; i < 100'000; ++i)
    s.spawn(count_yields(2, &total));
  CHECK(s.live_threads() == 100'000);
  s.run();
  CHECK(total == 200'000);
  CHECK(s.live_threads() == 0);
  CHECK(s.stats().finished == 100'000);
  // A second wave reuses the slots: ids stay below the first wave's count.
  const thread_id again = s.spawn(count_yields(1, &total));
  CHECK(again.index < 100'000);
  s.run();
}

TEST_CASE("a scheduler destroyed with parked threads unwinds them") {
  bool unwound = false, saw = false, later = false;
  {
    scheduler s;
    s.spawn(wait_forever(&unwound, &saw, &later));
    s.run();
    CHECK_FALSE(unwound);
  }
  CHECK(unwound);
  CHECK_FALSE(saw);  // destroyed, not resumed
}

TEST_CASE("reactor completion handlers run inside the scheduler's turns") {
  scheduler s;
  std::vector<arrival> got;
  const thread_id t = s.spawn(receive(1, &got));
  boost::asio::post(s.reactor(), [&s, t] {
    s.push(lancer::signal{t, signal_kind::value_ready, 0, 99, {}});
  });
  s.run();
  REQUIRE(got.size() == 1);
  CHECK(got[0].value == 99);
}

TEST_CASE("a signal pushed from another OS thread wakes a blocked scheduler") {
  scheduler s;
  std::vector<arrival> got;
  std::atomic<bool> waiting{false};
  const thread_id t = s.spawn([](std::vector<arrival>* out, std::atomic<bool>* w) -> task<> {
    *w = true;  // it parks in this same resumption, before any signal can be delivered
    const lancer::signal sig = co_await lancer::wait_signal();
    out->push_back({sig.value, 0});
    scheduler::current()->stop();
  }(&got, &waiting));
  std::atomic<bool> started{false};
  std::thread other([&] {
    while (!waiting)
      std::this_thread::sleep_for(1ms);  // t has parked
    started = true;
    std::this_thread::sleep_for(20ms);  // the scheduler is blocked in the reactor by now
    s.push(lancer::signal{t, signal_kind::value_ready, 0, 42, {}});
  });
  s.run_forever();
  other.join();
  CHECK(started);
  REQUIRE(got.size() == 1);
  CHECK(got[0].value == 42);
  CHECK(s.stats().idle_waits >= 1);
}

TEST_CASE("stop from another OS thread ends run_forever") {
  scheduler s;
  std::thread other([&] {
    std::this_thread::sleep_for(10ms);
    s.stop();
  });
  s.run_forever();
  other.join();
  CHECK(s.live_threads() == 0);
}

TEST_CASE("after-turn callbacks run at the end of each turn that delivered, in order") {
  scheduler s;
  std::vector<std::string> events;
  s.add_after_turn([&] { events.push_back("a" + std::to_string(s.stats().turns)); });
  s.add_after_turn([&] { events.push_back("b" + std::to_string(s.stats().turns)); });
  s.spawn([](std::vector<std::string>* ev) -> task<> {
    ev->push_back("t1");  // turn 1
    co_await lancer::wakeback_later();
    ev->push_back("t2");  // turn 2
  }(&events));
  s.run();
  CHECK(events == std::vector<std::string>{"t1", "a1", "b1", "t2", "a2", "b2"});
  CHECK(s.stats().turns == 2);
}

TEST_CASE("an after-turn callback may push a signal (next turn) and remove callbacks") {
  scheduler s;
  std::vector<arrival> got;
  const thread_id a = s.spawn(receive(1, &got));
  int first_calls = 0;
  int second_calls = 0;
  scheduler::turn_callback_id second = 0;
  const scheduler::turn_callback_id first = s.add_after_turn([&] {
    if (++first_calls == 1) {
      s.push(lancer::signal{a, signal_kind::value_ready, 0, 5, {}});
      s.remove_after_turn(second);  // later in this very run: skipped already
    }
  });
  second = s.add_after_turn([&] { ++second_calls; });
  s.run();
  REQUIRE(got.size() == 1);
  CHECK(got[0].value == 5);
  CHECK(got[0].turn == 2);
  CHECK(first_calls == 2);
  CHECK(second_calls == 0);
  s.remove_after_turn(first);
  s.remove_after_turn(first);  // again: a no-op
  s.spawn([]() -> task<> { co_return; }());
  s.run();
  CHECK(first_calls == 2);
}

TEST_CASE("an after-turn callback that throws is logged and the scheduler carries on") {
  lancer_test::log_capture logs;
  scheduler s;
  int calls = 0;
  s.add_after_turn([&] {
    ++calls;
    throw std::runtime_error("disk on fire");
  });
  s.spawn([]() -> task<> { co_await lancer::wakeback_later(); }());
  s.run();
  CHECK(calls == 2);
  CHECK(logs.contains("an after-turn callback threw: disk on fire"));
}

TEST_CASE("adding an after-turn callback from one, or an empty one, is refused") {
  scheduler s;
  bool refused = false;
  s.add_after_turn([&] {
    try {
      s.add_after_turn([] {});
    } catch (const std::logic_error&) {
      refused = true;
    }
  });
  s.spawn([]() -> task<> { co_return; }());
  s.run();
  CHECK(refused);
  CHECK_THROWS_AS(s.add_after_turn({}), std::logic_error);
}

TEST_CASE("a turn that delivers nothing runs no after-turn callback") {
  scheduler s{lancer::clock::manual()};
  int calls = 0;
  s.add_after_turn([&] { ++calls; });
  s.run_until_idle();
  s.advance(5s);
  CHECK(calls == 0);
  s.spawn([]() -> task<> { co_await lancer::sleep_for(1s); }());
  s.run();
  CHECK(calls == 2);  // the start, the wake-up
}
