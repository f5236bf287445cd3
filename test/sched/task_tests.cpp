// task<T>: laziness, results, exceptions, ownership and symmetric transfer.
#include "lancer/sched/task.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>

#include "lancer/sched/scheduler.hpp"

using lancer::scheduler;
using lancer::task;

namespace {

task<int> answer(bool& ran) {
  ran = true;
  co_return 42;
}

task<int> add_one(task<int> inner) {
  co_return (co_await std::move(inner)) + 1;
}

task<std::unique_ptr<int>> make_unique_int(int v) {
  co_return std::make_unique<int>(v);
}

int g_value = 7;
task<int&> ref_to_global() {
  co_return g_value;
}

task<> throws_runtime_error() {
  throw std::runtime_error("boom");
  co_return;
}

task<std::string> catches_child() {
  try {
    co_await throws_runtime_error();
  } catch (const std::runtime_error& e) {
    co_return std::string("caught ") + e.what();
  }
  co_return "not caught";
}

struct counted {
  int* destroyed;
  explicit counted(int* d) : destroyed(d) {}
  counted(counted&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
  ~counted() {
    if (destroyed) ++*destroyed;
  }
};

task<> holds(counted c) {
  (void)c;
  co_return;
}

// Records the stack address seen by the innermost frame.
std::uintptr_t g_first_sp = 0;
std::uintptr_t g_max_distance = 0;
std::uintptr_t stack_address() {
  // The frame's address, without returning a local's (clang warns on that).
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
}
void note_stack() {
  const std::uintptr_t sp = stack_address();
  if (g_first_sp == 0) g_first_sp = sp;
  const std::uintptr_t d = sp > g_first_sp ? sp - g_first_sp : g_first_sp - sp;
  if (d > g_max_distance) g_max_distance = d;
}

task<> completes_at_once() {
  note_stack();
  co_return;
}

task<long> million_sync_awaits() {
  long n = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    co_await completes_at_once();
    ++n;
  }
  co_return n;
}

task<int> nested(int depth) {
  if (depth == 0) {
    note_stack();
    co_return 0;
  }
  co_return 1 + co_await nested(depth - 1);
}

}  // namespace

TEST_CASE("task doesn't start until awaited") {
  bool ran = false;
  task<int> t = answer(ran);
  CHECK_FALSE(ran);
  CHECK(t.valid());
  CHECK_FALSE(t.done());
  scheduler s;
  CHECK(s.run_until_complete(std::move(t)) == 42);
  CHECK(ran);
}

TEST_CASE("an awaited task hands its value to the awaiter") {
  scheduler s;
  bool ran = false;
  CHECK(s.run_until_complete(add_one(answer(ran))) == 43);
}

TEST_CASE("task carries move-only values and references") {
  scheduler s;
  auto p = s.run_until_complete(make_unique_int(5));
  REQUIRE(p != nullptr);
  CHECK(*p == 5);
  const bool same = s.run_until_complete([]() -> task<bool> {
    int& r = co_await ref_to_global();
    co_return &r == &g_value;
  }());
  CHECK(same);
}

TEST_CASE("an exception in a task is rethrown by the awaiting co_await") {
  scheduler s;
  CHECK(s.run_until_complete(catches_child()) == "caught boom");
  CHECK_THROWS_WITH_AS(s.run_until_complete(throws_runtime_error()), "boom", std::runtime_error);
}

TEST_CASE("destroying a task that never ran destroys its frame and its arguments") {
  int destroyed = 0;
  {
    task<> t = holds(counted{&destroyed});
    CHECK(destroyed == 0);  // the argument lives in the frame
  }
  CHECK(destroyed == 1);
}

TEST_CASE("a million synchronously completing awaits in a row use constant stack") {
  g_first_sp = 0;
  g_max_distance = 0;
  scheduler s;
  CHECK(s.run_until_complete(million_sync_awaits()) == 1'000'000);
  // Without symmetric transfer each await would nest a resume() call: a million of them
  // would overflow the stack, and the innermost frame would sit deeper every time. The probe
  // may be inlined into the coroutine on purpose: that used to defeat GCC's tail call.
  CHECK(g_max_distance < 1024);
}

TEST_CASE("a chain of 100k nested tasks completing at once runs in constant stack") {
  g_first_sp = 0;
  g_max_distance = 0;
  scheduler s;
  CHECK(s.run_until_complete(nested(100'000)) == 100'000);
  const std::uintptr_t leaf = g_first_sp;
  g_first_sp = 0;
  g_max_distance = 0;
  CHECK(s.run_until_complete(nested(10)) == 10);
  const std::uintptr_t shallow_leaf = g_first_sp;
  const std::uintptr_t d = leaf > shallow_leaf ? leaf - shallow_leaf : shallow_leaf - leaf;
  CHECK(d < 1024);  // the leaf of a 100k-deep chain sits where the leaf of a 10-deep one does
}
