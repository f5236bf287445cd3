// Shared by the benchmarks: repeat a measurement and report its median and its best.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

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

}  // namespace lancer_bench
