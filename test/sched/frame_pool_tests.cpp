// The per-thread frame pool: reuse, limits, and no malloc in steady-state spawn-and-finish.
#include "lancer/sched/detail/frame_pool.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "counting_new.hpp"
#include "lancer/sched.hpp"

using lancer::detail::frame_pool;

TEST_CASE("a freed frame is reused for the next frame of its size class") {
  constexpr std::size_t g = frame_pool::k_granule;
  void* a = frame_pool::allocate(12 * g + 9);
  frame_pool::deallocate(a, 12 * g + 9);
  const auto before = frame_pool::stats();
  void* b = frame_pool::allocate(13 * g + 8);  // same (12g + 8, 13g + 8] class
  CHECK(b == a);
  CHECK(frame_pool::stats().pool_hits == before.pool_hits + 1);
  CHECK(frame_pool::stats().system_allocations == before.system_allocations);
  frame_pool::deallocate(b, 13 * g + 8);
  void* c = frame_pool::allocate(13 * g + 9);  // the next class: a block of its own
  CHECK(c != a);
  CHECK(frame_pool::stats().system_allocations == before.system_allocations + 1);
  frame_pool::deallocate(c, 13 * g + 9);
}

TEST_CASE("frames over the pooled size go straight to the system") {
  const auto before = frame_pool::stats();
  void* big = frame_pool::allocate(frame_pool::k_max_pooled + 1);
  frame_pool::deallocate(big, frame_pool::k_max_pooled + 1);
  CHECK(frame_pool::stats().system_allocations == before.system_allocations + 1);
  CHECK(frame_pool::stats().system_frees == before.system_frees + 1);
}

TEST_CASE("a power-of-two block from 8 KiB to 256 KiB is kept for the next one of its size") {
  for (std::size_t size = 8192; size <= frame_pool::k_max_large; size *= 2) {
    CAPTURE(size);
    void* a = frame_pool::allocate(size);
    static_cast<char*>(a)[size - 1] = 'x';  // the whole block is usable
    frame_pool::deallocate(a, size);
    const auto before = frame_pool::stats();
    void* b = frame_pool::allocate(size);
    CHECK(b == a);
    CHECK(frame_pool::stats().pool_hits == before.pool_hits + 1);
    CHECK(frame_pool::stats().system_allocations == before.system_allocations);
    frame_pool::deallocate(b, size);
  }
  // Beyond the largest size, or not a power of two: the system's.
  for (const std::size_t size : {frame_pool::k_max_large * 2, std::size_t{12288}}) {
    CAPTURE(size);
    const auto before = frame_pool::stats();
    frame_pool::deallocate(frame_pool::allocate(size), size);
    CHECK(frame_pool::stats().system_allocations == before.system_allocations + 1);
    CHECK(frame_pool::stats().system_frees == before.system_frees + 1);
  }
  // Each size keeps at most k_max_cached_large bytes.
  std::vector<void*> blocks;
  const std::size_t size = frame_pool::k_max_large;
  for (std::size_t i = 0; i < frame_pool::k_max_cached_large / size + 2; ++i)
    blocks.push_back(frame_pool::allocate(size));
  const auto before = frame_pool::stats();
  for (void* b : blocks)
    frame_pool::deallocate(b, size);
  CHECK(frame_pool::stats().system_frees >= before.system_frees + 2);
  frame_pool::trim();
  CHECK(frame_pool::stats().cached_bytes == 0);
}

TEST_CASE("trim gives every cached frame back") {
  void* a = frame_pool::allocate(100);
  frame_pool::deallocate(a, 100);
  CHECK(frame_pool::stats().cached_bytes > 0);
  frame_pool::trim();
  CHECK(frame_pool::stats().cached_bytes == 0);
}

namespace {
lancer::task<> trivial(long* n) {
  ++*n;
  co_return;
}
}  // namespace

TEST_CASE("spawn-and-finish in steady state calls no operator new") {
  lancer::scheduler s;
  long n = 0;
  auto wave = [&] {
    for (int i = 0; i < 1000; ++i)
      s.spawn(trivial(&n));
    s.run();
  };
  wave();  // warm-up: slots, queues and the pool grow once
  wave();
  const long before = lancer_test::operator_new_calls.load();
  for (int i = 0; i < 20; ++i)
    wave();
  CHECK(lancer_test::operator_new_calls.load() == before);
  CHECK(n == 22'000);
}
