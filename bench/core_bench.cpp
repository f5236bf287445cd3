// Server-core benchmark through the fake source (no sockets): how fast users' tests run.
//
//   build/release/bench/core_bench [--quick]
//
// Prints, each as the median of several runs (best beside it):
//   round trips/s, one client    exchange("ping") in a loop: write, run until idle, read
//   round trips/s, 64 clients    all 64 write, the scheduler runs once, all 64 read
//   idle scale                   the 64-client load with 0 and with 50k idle connections open
//   bytes per idle connection    heap in use per connection parked in read() (descriptor,
//                                connection, handler and wrapper frames, thread slot, deadline),
//                                the fake client's own side measured apart and left out

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using lancer::connection;
using lancer::fake_client;
using lancer_bench::figure;
using lancer_bench::heap_in_use;
using lancer_bench::measure;

namespace {

// The handler under test: answers each chunk it reads with "pong".
lancer::task<> pong(connection& c, lancer::frame&, lancer::pubframe&) {
  for (;;) {
    const std::size_t n = co_await c.read();
    if (!c.buffered().empty()) {
      c.consume(c.buffered().size());
      c.write("pong");
    }
    if (n == 0 && c.at_eof()) break;
  }
}

struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv;
  lancer::fake_source fake;
  explicit bed(lancer::server_options o = {}) : srv(sched, pong, o) {
    srv.attach_source(fake);
    srv.run();
    sched.run_until_idle();
  }
};

double per_second(clk::duration d, long n) {
  return static_cast<double>(n) / std::chrono::duration<double>(d).count();
}

// Round trips per second with `clients` clients, after `idle` idle connections were opened.
double batch_rate(int clients, int idle, long rounds) {
  bed b;
  std::vector<fake_client> parked;
  parked.reserve(static_cast<std::size_t>(idle));
  for (int i = 0; i < idle; ++i)
    parked.push_back(b.fake.connect());
  std::vector<fake_client> active;
  for (int i = 0; i < clients; ++i)
    active.push_back(b.fake.connect());
  b.sched.run_until_idle();
  long ok = 0;
  const auto t0 = clk::now();
  for (long r = 0; r < rounds; ++r) {
    for (auto& c : active)
      c.write("ping");
    b.sched.run_until_idle();
    for (auto& c : active)
      ok += c.read() == "pong";
  }
  const auto elapsed = clk::now() - t0;
  if (ok != rounds * clients)
    std::fprintf(stderr, "core_bench: %ld replies missing\n", rounds * clients - ok);
  return per_second(elapsed, rounds * clients);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  lancer::set_log_level(lancer::log_level::warn);  // no "listening on fake" per run
  const long scale = quick ? 50 : 1;
  const int runs = quick ? 3 : 7;
  const int idle_count = quick ? 5'000 : 50'000;

  const figure one = measure(
      runs,
      [&] {
        bed b;
        fake_client c = b.fake.connect();
        const long n = 500'000 / scale;
        long ok = 0;
        const auto t0 = clk::now();
        for (long i = 0; i < n; ++i)
          ok += c.exchange("ping") == "pong";
        const auto elapsed = clk::now() - t0;
        if (ok != n) std::fprintf(stderr, "core_bench: %ld replies missing\n", n - ok);
        return per_second(elapsed, n);
      },
      true);

  // With and without idle connections in alternation, so drift on this shared machine falls
  // on both alike; the ratio is of the medians.
  std::vector<double> without, with;
  for (int i = 0; i < runs; ++i) {
    without.push_back(batch_rate(64, 0, 20'000 / scale));
    with.push_back(batch_rate(64, idle_count, 20'000 / scale));
  }
  const figure many = measure(
      runs, [&, i = 0]() mutable { return without[i++]; }, true);
  const figure with_idle = measure(
      runs, [&, i = 0]() mutable { return with[i++]; }, true);

  // Bytes per idle connection: connections parked in read(), 10k of them.
  constexpr int k_conns = 10'000;
  std::size_t server_side = 0, client_side = 0;
  {
    lancer::server_options o;
    bed b{o};
    std::vector<fake_client> clients;
    clients.reserve(k_conns);
    b.fake.connect();  // first-use growth (slot chunk, vectors) out of the way
    b.sched.run_until_idle();
    const std::size_t before = heap_in_use();
    for (int i = 0; i < k_conns; ++i)
      clients.push_back(b.fake.connect());
    b.sched.run_until_idle();
    const std::size_t total = heap_in_use() - before;
    // The client halves alone: connections the source refuses create only those.
    b.fake.stop();
    std::vector<fake_client> refused;
    refused.reserve(k_conns);
    const std::size_t before_refused = heap_in_use();
    for (int i = 0; i < k_conns; ++i)
      refused.push_back(b.fake.connect());
    client_side = (heap_in_use() - before_refused) / k_conns;
    server_side = total / k_conns - client_side;
  }

  std::printf("lancer core benchmark, fake source (%s, %d runs each; median / best)\n",
              quick ? "quick" : "full", runs);
  std::printf("  round trips/s, one client   %10.0f / %10.0f   goal >= 1,000,000\n", one.median,
              one.best);
  std::printf("  round trips/s, 64 clients   %10.0f / %10.0f   goal >= 1,000,000\n", many.median,
              many.best);
  std::printf("  ... with %d idle open     %10.0f / %10.0f\n", idle_count, with_idle.median,
              with_idle.best);
  std::printf("  idle scale ratio (medians)  %10.3f                goal >= 0.9\n",
              with_idle.median / many.median);
  std::printf("  bytes per idle connection   %10zu  server side   goal < 1024\n", server_side);
  std::printf("                              %10zu  fake client side (not counted)\n", client_side);
  return 0;
}
