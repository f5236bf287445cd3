// lancer::joined_thread: a helper thread its spawner waits for and never outlives.
#include "lancer/sched/joined_thread.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "lancer/sched/awaitables.hpp"

using namespace std::chrono_literals;
using lancer::task;

TEST_CASE("join waits for the helper, and rethrows what it threw") {
  lancer::scheduler sched{lancer::clock::manual()};
  std::vector<std::string> events;
  sched.run_until_complete([&]() -> task<> {
    lancer::joined_thread helper{[](std::vector<std::string>& ev) -> task<> {
      co_await lancer::sleep_for(5s);
      ev.push_back("helper done");
    }(events)};
    events.push_back("spawner waits");
    co_await helper.join();
    events.push_back("joined");
    lancer::joined_thread failing{[]() -> task<> {
      co_await lancer::wakeback_later();
      throw std::runtime_error("helper failed");
    }()};
    try {
      co_await failing.join();
    } catch (const std::runtime_error& e) {
      events.emplace_back(e.what());
    }
  }());
  CHECK(events ==
        std::vector<std::string>{"spawner waits", "helper done", "joined", "helper failed"});
}

TEST_CASE("a helper whose handle goes first is destroyed, never run after it") {
  lancer::scheduler sched{lancer::clock::manual()};
  int runs = 0;
  bool unwound = false;
  struct marks_unwind {
    bool& flag;
    ~marks_unwind() { flag = true; }
  };
  sched.run_until_complete([&]() -> task<> {
    {
      lancer::joined_thread helper{[](int& n, bool& u) -> task<> {
        marks_unwind m{u};
        for (;;) {
          co_await lancer::sleep_for(1s);
          ++n;
        }
      }(runs, unwound)};
      co_await lancer::sleep_for(2500ms);
    }  // the handle goes: the helper with it
    co_await lancer::sleep_for(10s);
  }());
  CHECK(runs == 2);
  CHECK(unwound);
}
