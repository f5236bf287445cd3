// Shared by the benchmarks: repeat a measurement and report its median and its best.
#pragma once

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer_bench {

struct figure {
  double median;
  double best;
};

// Runs `once` `runs` times. Lower is better unless `higher_is_better`.
template <class F>
figure measure(int runs, F&& once, bool higher_is_better = false) {
  std::vector<double> v;
  for (int i = 0; i < runs; ++i)
    v.push_back(once());
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], higher_is_better ? v.back() : v.front()};
}

// Bytes of heap in use: what malloc handed out and has not had back, after the frame pool gave
// back its cached frames (a frame cached for reuse is not a connection's cost).
inline std::size_t heap_in_use() {
  lancer::detail::frame_pool::trim();
  return mallinfo2().uordblks;
}

}  // namespace lancer_bench
