// frame and pubframe: one value per type, any number of types, created on first use.
#include "lancer/core/frame.hpp"

#include <doctest/doctest.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "lancer/core/detail/descriptor.hpp"
#include "lancer/core/server.hpp"
#include "lancer/source/fake.hpp"

using lancer::clock;
using lancer::connection;
using lancer::fake_client;
using lancer::frame;
using lancer::pubframe;
using lancer::scheduler;
using lancer::server;
using lancer::task;

namespace {

// Non-copyable and non-movable: it must be built where it stays.
struct guarded {
  explicit guarded(int v) : value(v) {}
  guarded(const guarded&) = delete;
  guarded& operator=(const guarded&) = delete;
  std::mutex mutex;
  int value;
};

// Says when it goes, into a log the test keeps.
template <int N>
struct noisy {
  explicit noisy(std::vector<int>& log) : log_(&log) {}
  noisy(const noisy&) = delete;
  noisy& operator=(const noisy&) = delete;
  ~noisy() { log_->push_back(N); }
  std::vector<int>* log_;
};

}  // namespace

TEST_CASE("an empty frame is one pointer and holds nothing") {
  CHECK(sizeof(frame) == sizeof(void*));
  // Every connection's descriptor holds a frame; its size is a tracked figure (idle memory
  // per connection), and 256 B is a frame-pool size class.
  CHECK(sizeof(lancer::detail::descriptor) <= 256);
  frame f;
  CHECK(f.empty());
  CHECK(f.get<int>() == nullptr);
  CHECK_FALSE(f.contains<std::string>());
  CHECK_FALSE(f.erase<int>());
}

TEST_CASE("a frame holds one value of each of several types at once") {
  frame f;
  f.emplace<int>(7);
  f.emplace<std::string>("seven");
  f.emplace<std::vector<int>>(std::size_t{3}, 1);
  REQUIRE(f.get<int>() != nullptr);
  REQUIRE(f.get<std::string>() != nullptr);
  REQUIRE(f.get<std::vector<int>>() != nullptr);
  CHECK(*f.get<int>() == 7);
  CHECK(*f.get<std::string>() == "seven");
  CHECK(*f.get<std::vector<int>>() == std::vector<int>{1, 1, 1});
  CHECK(f.get<long>() == nullptr);  // a type is its own key: no conversions
  const frame& cf = f;
  CHECK(*cf.get<int>() == 7);
  CHECK_FALSE(f.empty());
}

TEST_CASE("an int and a double side by side: adding one leaves the other alone") {
  frame f;
  ++f.get_or_emplace<int>(41);
  f.get_or_emplace<double>(0.5) += 1.0;
  REQUIRE(f.get<int>() != nullptr);
  CHECK(*f.get<int>() == 42);
  CHECK(*f.get<double>() == 1.5);
  CHECK(&f.get_or_emplace<int>(0) == f.get<int>());  // the same object, found again
  CHECK(*f.get<int>() == 42);
}

TEST_CASE("a non-copyable, non-movable value is built in place") {
  frame f;
  guarded& g = f.emplace<guarded>(3);
  {
    const std::lock_guard lock(g.mutex);
    g.value = 4;
  }
  CHECK(f.get<guarded>() == &g);
  CHECK(f.get_or_emplace<guarded>(99).value == 4);
}

TEST_CASE("emplace never replaces a value: it throws and leaves the value as it was") {
  frame f;
  int& v = f.emplace<int>(1);
  CHECK_THROWS_AS(f.emplace<int>(2), std::logic_error);
  CHECK(f.get<int>() == &v);
  CHECK(v == 1);
  CHECK(f.get_or_emplace<int>(3) == 1);
  // erase first, and the type may be made again.
  CHECK(f.erase<int>());
  CHECK(f.get<int>() == nullptr);
  CHECK(f.emplace<int>(4) == 4);
}

TEST_CASE("a constructor that throws leaves the frame as it was") {
  struct fails {
    fails() { throw std::runtime_error("no"); }
  };
  frame f;
  f.emplace<int>(1);
  CHECK_THROWS_AS(f.emplace<fails>(), std::runtime_error);
  CHECK(f.get<fails>() == nullptr);
  CHECK(*f.get<int>() == 1);
}

TEST_CASE("values are destroyed newest first; erase takes one from the middle") {
  std::vector<int> gone;
  {
    frame f;
    f.emplace<noisy<1>>(gone);
    f.emplace<noisy<2>>(gone);
    f.emplace<noisy<3>>(gone);
    f.emplace<noisy<4>>(gone);
    CHECK(f.erase<noisy<2>>());
    CHECK(gone == std::vector<int>{2});
  }
  CHECK(gone == std::vector<int>{2, 4, 3, 1});
  gone.clear();
  frame f;
  f.emplace<noisy<1>>(gone);
  f.emplace<noisy<2>>(gone);
  f.reset();
  CHECK(gone == std::vector<int>{2, 1});
  CHECK(f.empty());
}

TEST_CASE("frame lasts across requests on one connection, pubframe across connections") {
  std::vector<int> gone;
  scheduler sched{clock::manual()};
  server srv{sched, [&](connection& c, frame& mine, pubframe& shared) -> task<> {
               mine.get_or_emplace<noisy<1>>(gone);  // one per connection: destroyed with it
               for (;;) {
                 const std::size_t n = co_await c.read();
                 if (n == 0) co_return;
                 c.consume(c.buffered().size());
                 ++mine.get_or_emplace<int>(0);
                 ++shared.get_or_emplace<int>(0);
                 mine.get_or_emplace<double>(0.0) += 0.5;
                 guarded& g = shared.get_or_emplace<guarded>(100);
                 const std::lock_guard lock(g.mutex);
                 ++g.value;
                 c.write(std::to_string(*mine.get<int>()) + " " +
                         std::to_string(*mine.get<double>()) + " " +
                         std::to_string(*shared.get<int>()) + " " + std::to_string(g.value));
               }
             }};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  sched.run_until_idle();
  fake_client a = fake.connect();
  fake_client b = fake.connect();
  CHECK(a.exchange("x") == "1 0.500000 1 101");
  CHECK(a.exchange("x") == "2 1.000000 2 102");
  CHECK(b.exchange("x") == "1 0.500000 3 103");
  CHECK(a.exchange("x") == "3 1.500000 4 104");
  CHECK(gone.empty());
  a.shutdown_write();
  sched.run_until_idle();
  CHECK(a.server_closed());
  CHECK(gone == std::vector<int>{1});  // a's frame went with its connection
  REQUIRE(srv.shared().get<int>() != nullptr);
  CHECK(*srv.shared().get<int>() == 4);  // the server's stays
  CHECK(srv.shared().get<noisy<1>>() == nullptr);
  srv.stop();
  sched.run_until_idle();
  CHECK(gone == std::vector<int>{1, 1});
}
