// testing: how a lancer user tests a handler. No sockets, virtual time, the real server code.
//
//   build/release/examples/testing/testing        (a doctest binary; scripts/test runs it)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cctype>
#include <chrono>

#include "lancer/core/server.hpp"
#include "lancer/source/fake.hpp"

using namespace std::chrono_literals;

// The handler under test: shouts back whatever it hears, and hangs up after 10 quiet seconds.
lancer::task<> shout(lancer::connection& c, lancer::frame&, lancer::pubframe&) {
  for (;;) {
    c.set_timeout(10s);
    const std::size_t n = co_await c.read();
    std::string reply(c.buffered());
    for (char& ch : reply)
      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    c.write(reply);
    c.consume(c.buffered().size());
    if (n == 0 && c.at_eof()) break;
  }
}

// The test: fifteen lines, most of them checks.
TEST_CASE("shout answers in capitals and hangs up after 10 quiet seconds") {
  lancer::scheduler sched{lancer::clock::manual()};  // virtual time
  lancer::server srv{sched, shout};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();

  lancer::fake_client client = fake.connect();
  CHECK(client.exchange("hello") == "HELLO");  // send, run until idle, read
  sched.advance(9s);
  CHECK(client.exchange("still there?") == "STILL THERE?");
  sched.advance(10s);           // ten quiet seconds, in no time at all
  CHECK(client.server_done());  // the server hung up (its FIN)
}
