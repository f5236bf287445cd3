// httputil benchmark through the fake source: parse a request, answer it, as fast as we can.
//
//   build/release/bench/http_bench [--quick]
//
// Prints requests per second (median / best of several runs) for:
//   keep-alive, 1 client     one request at a time on one connection
//   keep-alive, 64 clients   64 connections, one request each per scheduler pass
//   pipelined, depth 16      64 connections, 16 requests each sent at once
// heap allocations per keep-alive request, counted only while the server runs (the client's
// side of the fake connection is not the server's cost; goal 0), and the heap in use per idle
// keep-alive connection that has answered one request (server side; goal < 1024 bytes).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "counting_new.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"

using clk = std::chrono::steady_clock;
using lancer::connection;
using lancer::fake_client;
using lancer_bench::figure;
using lancer_bench::heap_in_use;
using lancer_bench::measure;
namespace http = lancer::http;

namespace {

const std::string k_request = "GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n";

// What lancer-serve runs: http::serve, its request loop, around a handler that answers.
lancer::task<> hello(connection& c, http::request& req, lancer::frame&, lancer::pubframe&) {
  co_await http::respond(c, req, 200, "text/plain", "Hello, World!");
}

struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, http::serve(hello)};
  lancer::fake_source fake;
  std::vector<fake_client> clients;
  long server_news = 0;  // operator new calls while the server ran

  explicit bed(int n) {
    srv.attach_source(fake);
    srv.run();
    for (int i = 0; i < n; ++i)
      clients.push_back(fake.connect());
    sched.run_until_idle();
  }
  void run() {
    const long before = lancer_test::operator_new_calls.load();
    sched.run_until_idle();
    server_news += lancer_test::operator_new_calls.load() - before;
  }
  // One round: every client sends `depth` requests, the server runs, every client reads.
  long round(int depth, const std::string& batch) {
    for (auto& c : clients)
      c.write(depth == 1 ? k_request : batch);
    run();
    long answered = 0;
    for (auto& c : clients) {
      const std::string got = c.read();
      for (std::size_t at = got.find("HTTP/1.1 200"); at != std::string::npos;
           at = got.find("HTTP/1.1 200", at + 1)) {
        ++answered;
      }
    }
    return answered;
  }
};

double rate(int clients, int depth, long rounds) {
  bed b(clients);
  std::string batch;
  for (int i = 0; i < depth; ++i)
    batch += k_request;
  b.round(depth, batch);  // warm-up
  long answered = 0;
  const auto t0 = clk::now();
  for (long r = 0; r < rounds; ++r)
    answered += b.round(depth, batch);
  const auto elapsed = clk::now() - t0;
  const long expected = rounds * clients * depth;
  if (answered != expected)
    std::fprintf(stderr, "http_bench: %ld answers missing\n", expected - answered);
  return static_cast<double>(expected) / std::chrono::duration<double>(elapsed).count();
}

// Heap bytes per idle keep-alive connection, server side: 10k connections answer one request
// each and wait for the next. The fake client's half is measured apart and left out.
std::size_t idle_bytes() {
  constexpr int k_conns = 10'000;
  bed b(1);
  b.round(1, "");  // first-use growth out of the way
  const std::size_t before = heap_in_use();
  for (int i = 0; i < k_conns; ++i)
    b.clients.push_back(b.fake.connect());
  b.round(1, "");
  const std::size_t total = heap_in_use() - before;
  b.fake.stop();  // refused: only the client halves are made, and write, and read
  std::vector<fake_client> refused;
  refused.reserve(k_conns);
  const std::size_t before_refused = heap_in_use();
  for (int i = 0; i < k_conns; ++i) {
    refused.push_back(b.fake.connect());
    refused.back().write(k_request);
    (void)refused.back().read();
  }
  const std::size_t client_side = (heap_in_use() - before_refused) / k_conns;
  return total / k_conns - client_side;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  lancer::set_log_level(lancer::log_level::warn);
  const long scale = quick ? 50 : 1;
  const int runs = quick ? 3 : 7;

  const figure one = measure(
      runs, [&] { return rate(1, 1, 200'000 / scale); }, true);
  const figure many = measure(
      runs, [&] { return rate(64, 1, 5'000 / scale); }, true);
  const figure piped = measure(
      runs, [&] { return rate(64, 16, 500 / scale); }, true);

  // Allocations: after warm-up, a long run of keep-alive requests on 64 connections.
  bed b(64);
  b.round(1, "");
  b.round(1, "");
  b.server_news = 0;
  const long rounds = 2000 / scale;
  for (long r = 0; r < rounds; ++r)
    b.round(1, "");
  const long requests = rounds * 64;

  const std::size_t idle = idle_bytes();

  std::printf("lancer httputil benchmark, fake source (%s, %d runs each; median / best)\n",
              quick ? "quick" : "full", runs);
  std::printf("  keep-alive, 1 client      %10.0f / %10.0f requests/s\n", one.median, one.best);
  std::printf("  keep-alive, 64 clients    %10.0f / %10.0f requests/s\n", many.median, many.best);
  std::printf("  pipelined, depth 16       %10.0f / %10.0f requests/s\n", piped.median, piped.best);
  std::printf("  heap allocations per keep-alive request: %ld in %ld = %.4f   goal 0\n",
              b.server_news, requests,
              static_cast<double>(b.server_news) / static_cast<double>(requests));
  std::printf("  heap bytes per idle keep-alive connection: %zu   goal < 1024\n", idle);
  return 0;
}
