// The fake source on its own terms: refusal, half-close, exchange, peer names.
#include "lancer/source/fake.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "lancer/core/server.hpp"

using lancer::connection;
using lancer::frame;
using lancer::pubframe;
using lancer::task;

namespace {

// Reads until EOF, then answers with the byte count and the peer's address.
task<> count_then_answer(connection& c, frame&, pubframe&) {
  // co_await as a statement of its own: GCC 12 mishandles it inside a `||` condition.
  for (;;) {
    const std::size_t n = co_await c.read();
    if (n == 0 && c.at_eof()) break;
  }
  c.write(std::to_string(c.buffered().size()) + " from " + std::string(c.peer_address()));
}

struct fixture {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, count_then_answer};
  lancer::fake_source fake;
};

}  // namespace

TEST_CASE("a fake source that was not started refuses connections") {
  fixture f;
  lancer::fake_client c = f.fake.connect();
  CHECK(c.server_closed());
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("half-closing makes the server's read see EOF after every byte") {
  fixture f;
  f.srv.attach_source(f.fake);
  f.srv.run();
  lancer::fake_client c = f.fake.connect();
  c.write("12345");
  f.sched.run_until_idle();
  CHECK(c.read().empty());  // still reading
  c.shutdown_write();
  CHECK(c.exchange("") == "5 from fake/1");
  CHECK(c.server_done());
  CHECK(c.server_closed());
  CHECK_THROWS_AS(c.write("more"), std::logic_error);
}

TEST_CASE("a stopped fake source refuses new connections; open ones carry on") {
  fixture f;
  f.srv.attach_source(f.fake);
  f.srv.run();
  lancer::fake_client before = f.fake.connect();
  f.fake.stop();
  lancer::fake_client after = f.fake.connect();
  CHECK(after.server_closed());
  before.shutdown_write();
  CHECK(before.exchange("") == "0 from fake/1");
}

TEST_CASE("a source and its server may be destroyed in either order") {
  lancer::scheduler sched{lancer::clock::manual()};
  {
    auto srv = std::make_unique<lancer::server>(sched, count_then_answer);
    lancer::fake_source fake;
    srv->attach_source(fake);
    srv->run();
    lancer::fake_client c = fake.connect();
    sched.run_until_idle();
    srv.reset();  // server first: the source is detached and stopped
    CHECK(fake.connect().server_closed());
  }
  {
    lancer::server srv{sched, count_then_answer};
    auto fake = std::make_unique<lancer::fake_source>();
    srv.attach_source(*fake);
    srv.run();
    fake.reset();  // source first: the server forgets it
    lancer::server other{sched, count_then_answer};
    lancer::fake_source again;
    srv.attach_source(again);
    CHECK_THROWS_AS(other.attach_source(again), std::logic_error);
  }
}
