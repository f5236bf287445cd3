// lancer::forward over real loopback sockets: a client on its own OS thread with blocking
// sockets, a forwarder and its upstream served by one scheduler on the test's thread.
#include "lancer/core/forward.hpp"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <string>
#include <thread>

#include "echo.hpp"
#include "lancer/core/server.hpp"
#include "lancer/io/fake_network.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"
#include "lancer/source/tcp.hpp"
#include "log_capture.hpp"
#include "run_with_client.hpp"
#include "tcp_client.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using lancer::connection;
using lancer::frame;
using lancer::pubframe;
using lancer::task;
using lancer_test::connect_to;
using lancer_test::read_until_closed;

namespace {

// An upstream server and a forwarder to it, each on a TCP source at a free loopback port.
struct forward_fixture {
  explicit forward_fixture(lancer::server::handler upstream_handler, lancer::forward_options o = {})
      : up(sched, std::move(upstream_handler)) {
    up.attach_source(up_src);
    up.run();
    fwd.emplace(sched,
                lancer::forward(
                    lancer::parse_address("tcp/127.0.0.1:" + std::to_string(up_src.port())), o));
    fwd->attach_source(fwd_src);
    fwd->run();
  }
  std::uint16_t port() const { return fwd_src.port(); }

  lancer::scheduler sched;
  lancer::server up;
  lancer::tcp_source up_src{lancer::parse_address("tcp/$4:0")};
  std::optional<lancer::server> fwd;
  lancer::tcp_source fwd_src{lancer::parse_address("tcp/$4:0")};
};

struct quiet {
  quiet() { lancer::set_log_level(lancer::log_level::warn); }
  ~quiet() { lancer::set_log_level(lancer::log_level::info); }
};

}  // namespace

TEST_CASE("a forwarder carries bytes both ways at once, 16 MiB of them intact") {
  quiet q;
  forward_fixture f{lancer_test::echo};
  constexpr std::size_t size = 16u << 20;
  std::string sent(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    sent[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  std::string got;
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.port());
    // Write on one OS thread, read on this one: the echo comes back while it is sent.
    std::thread writer([&] {
      asio::write(s, asio::buffer(sent));
      s.shutdown(tcp::socket::shutdown_send);
    });
    got = read_until_closed(s);
    writer.join();
  });
  CHECK(finished);
  CHECK(got.size() == size);
  CHECK(got == sent);
}

TEST_CASE("a forwarder passes a half-close on, and the other direction carries on") {
  quiet q;
  forward_fixture f{[](connection& c, frame&, pubframe&) -> task<> {
    std::size_t total = 0;
    for (;;) {  // read until the client's FIN arrives through the forwarder
      const std::size_t n = co_await c.read();
      total += c.buffered().size();
      c.consume(c.buffered().size());
      if (n == 0 && c.at_eof()) break;
    }
    c.write("got " + std::to_string(total) + " bytes");  // then answer: the way back is open
  }};
  std::string got;
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.port());
    asio::write(s, asio::buffer(std::string("hello, upstream")));
    s.shutdown(tcp::socket::shutdown_send);
    got = read_until_closed(s);
  });
  CHECK(finished);
  CHECK(got == "got 15 bytes");
}

TEST_CASE("an unreachable upstream closes the client at once, with a line naming it") {
  lancer_test::log_capture logs;
  lancer::set_log_level(lancer::log_level::warn);
  std::uint16_t closed_port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }  // nothing listens there now
  lancer::scheduler sched;
  lancer::server fwd{sched, lancer::forward(lancer::parse_address("tcp/127.0.0.1:" +
                                                                  std::to_string(closed_port)))};
  lancer::tcp_source src{lancer::parse_address("tcp/$4:0")};
  fwd.attach_source(src);
  fwd.run();
  std::string got = "unset";
  const bool finished = lancer_test::run_with_client(sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", src.port());
    got = read_until_closed(s);
  });
  CHECK(finished);
  CHECK((got.empty() || got == "<error>"));  // closed (or reset), never a byte
  CHECK(logs.contains("WARN conn/1] upstream tcp/127.0.0.1:" + std::to_string(closed_port) +
                      ": Connection refused"));
  lancer::set_log_level(lancer::log_level::info);
}

TEST_CASE("a reset on the client's side resets the upstream's") {
  quiet q;
  std::atomic<bool> upstream_failed{false};
  forward_fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    try {
      for (;;) {
        const std::size_t n = co_await c.read();
        c.consume(c.buffered().size());
        if (n == 0 && c.at_eof()) break;
      }
    } catch (const lancer::connection_error&) {
      upstream_failed = true;
    }
  }};
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.port());
    asio::write(s, asio::buffer(std::string("some bytes")));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s.set_option(asio::socket_base::linger(true, 0));  // close sends RST
    s.close();
    for (int i = 0; i < 200 && !upstream_failed; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  CHECK(finished);
  CHECK(upstream_failed);
}

TEST_CASE("a forwarder on the fake network: a small message crosses at once, no socket at all") {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::fake_network net;
  const lancer::address up = lancer::parse_address("tcp/10.0.0.2:7", true);
  net.serve(up, [](lancer::stream& s) -> task<> {  // an echo, line by line
    for (;;) {
      const std::size_t n = co_await s.read();
      if (!s.buffered().empty()) {
        co_await s.send(s.buffered());
        s.consume(s.buffered().size());
      }
      if (n == 0 && s.at_eof()) co_return;
    }
  });
  lancer::forward_options o;
  o.net = &net;
  o.idle_timeout = std::chrono::seconds(30);
  lancer::server fwd{sched, lancer::forward(up, o)};
  lancer::fake_source src;
  fwd.attach_source(src);
  fwd.run();
  lancer::fake_client c = src.connect();
  CHECK(c.exchange("ping\n") == "ping\n");  // no flush by size: it must go at once
  CHECK(c.exchange("pong\n") == "pong\n");
  sched.advance(std::chrono::seconds(29));
  CHECK(c.exchange("still\n") == "still\n");  // activity restarts the idle time
  sched.advance(std::chrono::seconds(30));
  CHECK(c.server_done());  // idle for 30 s: closed
  CHECK(net.connections(up) == 1);
}
