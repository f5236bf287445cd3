// The router's cost: the same answer from a direct handler and through a 50-route table with
// hosts, on the fake source (no sockets: what is measured is lancer's own CPU per request).
//
//   build/release/bench/router_bench [--quick]
//
// The table: 5 hosts (exact names and patterns) with 9 routes each, and 5 routes on the any
// host, literal and captured segments mixed; the request, `GET /api/v1/items/42` for
// `api.example.com`, is routed to `/api/v1/items/{id}` through a host pattern, and the
// handler answers with the capture. The direct handler answers the same bytes with no
// routing. Runs alternate (direct, routed, direct, ...) so that both see the same machine.
// Prints CPU nanoseconds per request (process CPU time / requests, median of the runs), the
// router's share, and heap allocations per routed request after warm-up (goal 0: any other
// count makes it exit 1).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "counting_new.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"
#include "router_table.hpp"

namespace {

namespace http = lancer::http;
using lancer_bench::direct;
using lancer_bench::k_request;
using lancer_bench::table;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv;
  lancer::fake_source fake;
  std::vector<lancer::fake_client> clients;
  long server_news = 0;

  bed(lancer::server::handler h, int n) : srv(sched, std::move(h)) {
    srv.attach_source(fake);
    srv.run();
    for (int i = 0; i < n; ++i)
      clients.push_back(fake.connect());
    sched.run_until_idle();
  }
  long round() {
    for (auto& c : clients)
      c.write(k_request);
    const long before = lancer_test::operator_new_calls.load();
    sched.run_until_idle();
    server_news += lancer_test::operator_new_calls.load() - before;
    long answered = 0;
    for (auto& c : clients) {
      const std::string got = c.read();
      answered += got.starts_with("HTTP/1.1 200") && got.ends_with("42");
    }
    return answered;
  }
};

// CPU nanoseconds per request over `rounds` rounds of 64 keep-alive requests.
double ns_per_request(const lancer::server::handler& h, long rounds) {
  bed b(h, 64);
  b.round();
  const double start = cpu_seconds();
  long answered = 0;
  for (long r = 0; r < rounds; ++r)
    answered += b.round();
  const double spent = cpu_seconds() - start;
  if (answered != rounds * 64) {
    std::fprintf(stderr, "router_bench: %ld of %ld answered\n", answered, rounds * 64);
    std::exit(1);
  }
  return spent * 1e9 / static_cast<double>(answered);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  lancer::set_log_level(lancer::log_level::warn);
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const long rounds = quick ? 300 : 6000;
  const int runs = quick ? 3 : 9;
  const lancer::server::handler plain = http::serve(direct);
  http::router r = table();
  const lancer::server::handler routed = r.handler();

  std::vector<double> d, t;
  for (int i = 0; i < runs; ++i) {
    d.push_back(ns_per_request(plain, rounds));
    t.push_back(ns_per_request(routed, rounds));
  }
  const double dm = median(d), tm = median(t);

  // Allocations per routed request once warm.
  bed b(routed, 64);
  b.round();
  b.round();
  b.server_news = 0;
  const long alloc_rounds = quick ? 50 : 1000;
  for (long i = 0; i < alloc_rounds; ++i)
    b.round();

  std::printf("lancer router benchmark, fake source, 64 keep-alive connections (%s, %d runs)\n",
              quick ? "quick" : "full", runs);
  std::printf("  direct handler                 %8.0f ns CPU per request\n", dm);
  std::printf("  50-route table with hosts      %8.0f ns CPU per request\n", tm);
  std::printf("  routing adds                   %8.0f ns = %.1f%% of the direct cost\n", tm - dm,
              100.0 * (tm - dm) / dm);
  std::printf("  heap allocations per routed request: %ld in %ld = %.4f   goal 0\n", b.server_news,
              alloc_rounds * 64,
              static_cast<double>(b.server_news) / static_cast<double>(alloc_rounds * 64));
  if (b.server_news != 0) {  // a contract, not only a figure: the smoke run fails on it
    std::fprintf(stderr, "router_bench: routing allocates (goal 0)\n");
    return 1;
  }
  return 0;
}
