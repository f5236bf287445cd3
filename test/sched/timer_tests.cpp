// Timers, sleeps and the manual clock.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "lancer/sched.hpp"

using namespace std::chrono_literals;
using lancer::clock;
using lancer::scheduler;
using lancer::task;

namespace {

task<> sleeper(std::chrono::seconds d, int id, std::vector<int>* order,
               std::vector<clock::time_point>* woke_at) {
  co_await lancer::sleep_for(d);
  order->push_back(id);
  woke_at->push_back(lancer::scheduler::current()->now());
}

task<> sleep_hour_in_seconds(int* ticks) {
  for (int i = 0; i < 3600; ++i) {
    co_await lancer::sleep_for(1s);
    ++*ticks;
  }
}

task<> sleep_long(bool* unwound) {
  struct guard {
    bool* flag;
    ~guard() { *flag = true; }
  } g{unwound};
  co_await lancer::sleep_for(1h);
}

task<> sleep_in_past(bool* returned) {
  co_await lancer::sleep_until(lancer::scheduler::current()->now() - 1s);
  *returned = true;
}

task<> sleep_steady(std::chrono::milliseconds d, clock::duration* slept) {
  const auto start = std::chrono::steady_clock::now();
  co_await lancer::sleep_for(d);
  *slept = std::chrono::steady_clock::now() - start;
}

}  // namespace

TEST_CASE("manual-clock timers fire in deadline order, ties in arrival order, at exact times") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  std::vector<int> order;
  std::vector<clock::time_point> woke;
  s.spawn(sleeper(30s, 1, &order, &woke));
  s.spawn(sleeper(10s, 2, &order, &woke));
  s.spawn(sleeper(20s, 3, &order, &woke));
  s.spawn(sleeper(10s, 4, &order, &woke));
  s.run();
  CHECK(order == std::vector<int>{2, 4, 3, 1});
  REQUIRE(woke.size() == 4);
  CHECK(woke[0] == start + 10s);
  CHECK(woke[1] == start + 10s);
  CHECK(woke[2] == start + 20s);
  CHECK(woke[3] == start + 30s);
  CHECK(s.now() == start + 30s);
}

TEST_CASE("an hour of virtual one-second sleeps ends exactly an hour later") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  int ticks = 0;
  s.spawn(sleep_hour_in_seconds(&ticks));
  s.run();
  CHECK(ticks == 3600);
  CHECK(s.now() == start + 1h);
}

TEST_CASE("cancelling a sleeping thread unwinds it and unschedules its timer") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  bool unwound = false;
  const lancer::thread_id t = s.spawn(sleep_long(&unwound));
  s.spawn([](scheduler* sch, lancer::thread_id victim) -> task<> {
    co_await lancer::sleep_for(5s);
    sch->cancel(victim);
  }(&s, t));
  s.run();
  CHECK(unwound);
  CHECK_FALSE(s.alive(t));
  CHECK(s.now() == start + 5s);  // the hour-long timer went with its thread
}

TEST_CASE("a sleep until a time already passed returns without suspending") {
  scheduler s{clock::manual()};
  bool returned = false;
  s.spawn(sleep_in_past(&returned));
  s.run();
  CHECK(returned);
  CHECK(s.stats().turns == 1);  // the spawn's turn only
}

TEST_CASE("a steady-clock sleep lasts at least its duration and blocks instead of spinning") {
  scheduler s;
  clock::duration slept{};
  s.spawn(sleep_steady(30ms, &slept));
  s.run();
  CHECK(slept >= 30ms);
  // Two turns (start, wake); a spinning scheduler would have waited thousands of times.
  CHECK(s.stats().turns == 2);
  CHECK(s.stats().idle_waits <= 3);
}

TEST_CASE("discarding a sleeping thread removes its timer from the heap") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  bool unwound = false;
  const lancer::thread_id t = s.spawn(sleep_long(&unwound));
  s.spawn([](scheduler* sch, lancer::thread_id victim) -> task<> {
    co_await lancer::wakeback_later();  // let the victim fall asleep first
    sch->discard(victim);
  }(&s, t));
  s.run();
  CHECK(unwound);
  CHECK(s.now() == start);  // no timer left to jump to
}

TEST_CASE("the timer heap pops in (deadline, arrival) order after random removals") {
  lancer::detail::timer_heap heap;
  std::mt19937 rng(12345);
  std::vector<lancer::detail::timer_node> nodes(2000);
  std::multiset<std::pair<clock::time_point, std::uint64_t>> model;
  for (auto& n : nodes) {
    n.deadline = clock::time_point{} + std::chrono::seconds(rng() % 100);
    heap.push(n);
    model.emplace(n.deadline, n.order);
  }
  for (std::size_t i = 0; i < nodes.size(); i += 3) {
    model.erase(model.find({nodes[i].deadline, nodes[i].order}));
    heap.remove(nodes[i]);
    CHECK_FALSE(nodes[i].scheduled());
  }
  CHECK(heap.size() == model.size());
  while (!heap.empty()) {
    lancer::detail::timer_node& n = heap.pop();
    REQUIRE(!model.empty());
    CHECK(n.deadline == model.begin()->first);
    CHECK(n.order == model.begin()->second);
    model.erase(model.begin());
  }
  CHECK(model.empty());
}

TEST_CASE("wait_signal_until returns the signal if it comes first, nullopt at the deadline") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  std::vector<std::string> seen;
  const lancer::thread_id t = s.spawn([](std::vector<std::string>* out) -> task<> {
    auto first = co_await lancer::wait_signal_until(scheduler::current()->now() + 10s);
    out->push_back(first ? "signal " + std::to_string(first->value) : "deadline");
    auto second = co_await lancer::wait_signal_until(scheduler::current()->now() + 10s);
    out->push_back(
        second ? "signal"
               : "deadline at " +
                     std::to_string((scheduler::current()->now() - clock::time_point{}) / 1s));
  }(&seen));
  s.spawn([](lancer::thread_id target) -> task<> {
    co_await lancer::sleep_for(3s);
    scheduler::current()->push(lancer::signal{target, lancer::signal_kind::value_ready, 0, 7, {}});
  }(t));
  s.run();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == "signal 7");
  CHECK(seen[1] == "deadline at " + std::to_string((start + 13s - clock::time_point{}) / 1s));
}

TEST_CASE("run_until_idle runs what is due now and never moves a manual clock") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  long total = 0;
  s.spawn([](long* n) -> task<> {
    ++*n;
    co_await lancer::sleep_for(5s);
    ++*n;
  }(&total));
  s.run_until_idle();
  CHECK(total == 1);
  CHECK(s.now() == start);
  s.advance(4s);
  CHECK(total == 1);
  s.advance(1s);
  CHECK(total == 2);
  CHECK(s.now() == start + 5s);
}

TEST_CASE("advance wakes each sleeper at its own deadline") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  std::vector<int> order;
  std::vector<clock::time_point> woke;
  s.spawn(sleeper(2s, 1, &order, &woke));
  s.spawn(sleeper(1s, 2, &order, &woke));
  s.run_until_idle();
  s.advance(10s);
  CHECK(order == std::vector<int>{2, 1});
  REQUIRE(woke.size() == 2);
  CHECK(woke[0] == start + 1s);
  CHECK(woke[1] == start + 2s);
  CHECK(s.now() == start + 10s);
  CHECK_THROWS_AS(scheduler{}.advance(1s), std::logic_error);
}

TEST_CASE("a stray resume signal does not end a sleep early") {
  scheduler s{clock::manual()};
  const clock::time_point start = s.now();
  std::vector<int> order;
  std::vector<clock::time_point> woke;
  const lancer::thread_id t = s.spawn(sleeper(10s, 1, &order, &woke));
  s.run_until_idle();
  s.push(lancer::signal{t, lancer::signal_kind::resume, 0, 0, {}});
  s.run();
  REQUIRE(woke.size() == 1);
  CHECK(woke[0] == start + 10s);
}
