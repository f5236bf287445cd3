// Scheduler microbenchmark: ns per signal round trip, ns per spawn+finish, mallocs per
// spawn+finish. Each figure is the median of several runs (the best is shown beside it).
//
//   build/release/bench/sched_bench [--quick]
//
// "Round trip" is one signal pushed, carried through a turn, and its target resumed until it
// suspends again. It is measured three ways:
//   yield      one thread doing `co_await wakeback_later()` in a loop (a turn per signal)
//   ping-pong  two threads passing a value_ready signal back and forth (a turn per signal)
//   batch      1000 threads yielding together (a turn carries 1000 signals)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "bench_util.hpp"
#include "counting_new.hpp"
#include "lancer/sched.hpp"

using lancer::scheduler;
using lancer::task;
using lancer::thread_id;
using clk = std::chrono::steady_clock;
using lancer_bench::figure;
using lancer_bench::measure;

namespace {

task<> yielder(long n) {
  for (long i = 0; i < n; ++i)
    co_await lancer::wakeback_later();
}

task<> pinger(long n, thread_id* peer) {
  scheduler& s = *scheduler::current();
  for (long i = 0; i < n; ++i) {
    s.push(lancer::signal{*peer, lancer::signal_kind::value_ready, 0, 0, {}});
    co_await lancer::wait_signal();
  }
}

task<> ponger(long n, thread_id* peer) {
  scheduler& s = *scheduler::current();
  for (long i = 0; i < n; ++i) {
    co_await lancer::wait_signal();
    s.push(lancer::signal{*peer, lancer::signal_kind::value_ready, 0, 0, {}});
  }
}

task<> trivial() {
  co_return;
}

double ns_per(clk::duration d, long n) {
  return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const long scale = quick ? 100 : 1;
  const int runs = quick ? 3 : 7;

  const figure yield = measure(runs, [&] {
    const long n = 5'000'000 / scale;
    scheduler s;
    s.spawn(yielder(n));
    const auto t0 = clk::now();
    s.run();
    return ns_per(clk::now() - t0, n);
  });

  const figure pingpong = measure(runs, [&] {
    const long n = 2'500'000 / scale;
    scheduler s;
    thread_id a, b;
    a = s.spawn(pinger(n, &b));
    b = s.spawn(ponger(n, &a));
    const auto t0 = clk::now();
    s.run();
    return ns_per(clk::now() - t0, 2 * n);
  });

  const figure batch = measure(runs, [&] {
    const long threads = 1000, n = 5000 / scale;
    scheduler s;
    for (long i = 0; i < threads; ++i)
      s.spawn(yielder(n));
    const auto t0 = clk::now();
    s.run();
    return ns_per(clk::now() - t0, threads * n);
  });

  long mallocs = 0, spawned = 0;
  const figure spawn = measure(runs, [&] {
    const long waves = 2000 / scale, per_wave = 1000;
    scheduler s;
    // Two warm-up waves: the public and internal queues swap each turn, and both grow once.
    for (int warm = 0; warm < 2; ++warm) {
      for (long i = 0; i < per_wave; ++i)
        s.spawn(trivial());
      s.run();
    }
    const long before = lancer_test::operator_new_calls.load();
    const auto t0 = clk::now();
    for (long w = 0; w < waves; ++w) {
      for (long i = 0; i < per_wave; ++i)
        s.spawn(trivial());
      s.run();
    }
    const auto elapsed = clk::now() - t0;
    mallocs += lancer_test::operator_new_calls.load() - before;
    spawned += waves * per_wave;
    return ns_per(elapsed, waves * per_wave);
  });

  std::printf("lancer scheduler benchmark (%s, %d runs each; median / best)\n",
              quick ? "quick" : "full", runs);
  std::printf("  round trip, yield      %7.1f / %7.1f ns   goal <= 30\n", yield.median, yield.best);
  std::printf("  round trip, ping-pong  %7.1f / %7.1f ns   goal <= 30\n", pingpong.median,
              pingpong.best);
  std::printf("  round trip, batch      %7.1f / %7.1f ns   goal <= 30\n", batch.median, batch.best);
  std::printf("  spawn+finish           %7.1f / %7.1f ns   goal <= 60\n", spawn.median, spawn.best);
  std::printf("  mallocs per spawn+finish (steady state)  %ld in %ld = %.4f   goal 0\n", mallocs,
              spawned, static_cast<double>(mallocs) / static_cast<double>(spawned));
  return 0;
}
