// http::metrics shared by worker threads: two schedulers on two OS threads count into one
// metrics while a third thread scrapes it. Run under TSan by the 'threads' suite.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/metrics.hpp"
#include "lancer/source/fake.hpp"
#include "metrics_text.hpp"

namespace http = lancer::http;
using lancer::connection;
using lancer::frame;
using lancer::pubframe;
using lancer::task;

namespace {

task<> answer(connection& c, http::request& req, frame&, pubframe&) {
  const unsigned status = req.target() == "/missing" ? 404 : 200;
  co_await http::respond(c, req, status, "text/plain", "body");
}

constexpr int k_rounds = 300;

// One worker: a scheduler, a watched server and a client on this OS thread. Returns the bytes
// the client sent and received.
std::pair<std::uint64_t, std::uint64_t> work(http::metrics& m) {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, http::serve(answer, {}, m.hook())};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  m.watch(srv);
  std::uint64_t in = 0, out = 0;
  lancer::fake_client c = fake.connect();
  for (int i = 0; i < k_rounds; ++i) {
    const std::string request = i % 3 == 0 ? "GET /missing HTTP/1.1\r\nHost: h\r\n\r\n"
                                           : "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n";
    in += request.size();
    out += c.exchange(request).size();
    if (i % 50 == 0) m.count_reload(i % 100 == 0);
  }
  return {in, out};
}

}  // namespace

TEST_CASE("metrics: two worker threads count, a third scrapes, and the totals add up") {
  http::metrics m;
  std::atomic<int> running{2};
  std::vector<std::string> scrapes;
  std::thread scraper([&] {
    while (running.load() > 0)
      scrapes.push_back(m.render());
    scrapes.push_back(m.render());
  });
  std::pair<std::uint64_t, std::uint64_t> a, b;
  std::thread one([&] {
    a = work(m);
    --running;
  });
  std::thread two([&] {
    b = work(m);
    --running;
  });
  one.join();
  two.join();
  scraper.join();
  REQUIRE(!scrapes.empty());
  // Each scrape parses, and the counters never go back from one scrape to the next.
  double last_ok = 0, last_count = 0;
  for (const std::string& s : scrapes) {
    const lancer_test::exposition e = lancer_test::parse_exposition(s);
    const double ok = e.value("lancer_requests_total{code=\"2xx\"}");
    const double count = e.value("lancer_request_duration_seconds_count");
    CHECK(ok >= last_ok);
    CHECK(count >= last_count);
    last_ok = ok;
    last_count = count;
  }
  const lancer_test::exposition e = lancer_test::parse_exposition(m.render());
  CHECK(e.value("lancer_requests_total{code=\"2xx\"}") == 2 * (k_rounds - (k_rounds + 2) / 3));
  CHECK(e.value("lancer_requests_total{code=\"4xx\"}") == 2 * ((k_rounds + 2) / 3));
  CHECK(e.value("lancer_request_duration_seconds_count") == 2 * k_rounds);
  CHECK(e.value("lancer_received_bytes_total") == static_cast<double>(a.first + b.first));
  CHECK(e.value("lancer_sent_bytes_total") == static_cast<double>(a.second + b.second));
  CHECK(e.value("lancer_connections_open") == 0);  // both servers are gone
  CHECK(e.value("lancer_reloads_total{result=\"ok\"}") == 2 * 3);
  CHECK(e.value("lancer_reloads_total{result=\"failed\"}") == 2 * 3);
}
