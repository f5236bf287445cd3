// The TCP source over real loopback sockets. The client runs on its own OS thread with
// blocking sockets; the scheduler runs on the test's thread until the client is done.
#include "lancer/source/tcp.hpp"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "echo.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
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

// A server on a TCP source at a free loopback port, logging warnings only while it lives.
struct tcp_fixture {
  explicit tcp_fixture(lancer::server::handler h) : srv(sched, std::move(h)) {
    lancer::set_log_level(lancer::log_level::warn);
    srv.attach_source(src);
    srv.run();
  }
  ~tcp_fixture() { lancer::set_log_level(lancer::log_level::info); }
  tcp_fixture(const tcp_fixture&) = delete;
  tcp_fixture& operator=(const tcp_fixture&) = delete;

  lancer::scheduler sched;
  lancer::server srv;
  lancer::tcp_source src{lancer::parse_address("tcp/$4:0")};
};

}  // namespace

TEST_CASE("bytes cross a real TCP connection both ways, 4 MiB of them intact") {
  tcp_fixture f{lancer_test::echo};
  REQUIRE(f.src.port() != 0);
  CHECK(f.src.name() == "tcp/127.0.0.1:" + std::to_string(f.src.port()));

  std::string payload(4u << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<char>(i * 7 % 251);
  std::string received;
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.src.port());
    std::thread writer([&] {
      asio::write(s, asio::buffer(payload));
      s.shutdown(tcp::socket::shutdown_send);
    });
    boost::system::error_code ec;
    received.resize(payload.size());
    asio::read(s, asio::buffer(received), ec);
    writer.join();
  });
  CHECK(finished);
  CHECK(received == payload);
}

TEST_CASE("short reads, pauses and back-to-back writes: no byte and no wakeup is lost") {
  // After a read that came back short the transport waits for readiness before it reads
  // again. Bytes that land in between, or while the handler is busy, must still wake it.
  tcp_fixture f{lancer_test::echo};
  std::string sent, received;
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.src.port());
    s.set_option(tcp::no_delay(true));
    for (int i = 0; i < 600; ++i) {
      const std::string piece(static_cast<std::size_t>(1 + i % 37),
                              static_cast<char>('a' + i % 26));
      std::string expect = piece;
      asio::write(s, asio::buffer(piece));
      if (i % 3 == 1) {  // a second piece right behind the first
        asio::write(s, asio::buffer(piece));
        expect += piece;
      } else if (i % 3 == 2) {  // a second piece after the server has gone back to waiting
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        asio::write(s, asio::buffer(piece));
        expect += piece;
      }
      std::string back(expect.size(), '\0');
      asio::read(s, asio::buffer(back));
      sent += expect;
      received += back;
    }
  });
  CHECK(finished);
  CHECK(received.size() == sent.size());
  CHECK(received == sent);
}

TEST_CASE("bytes and the peer's half-close arriving together: all bytes, then EOF") {
  // The edge for the bytes and the FIN can be one: a short read must not make the transport
  // wait for an edge that already came (the EOF is still to be read).
  tcp_fixture f{[](connection& c, frame& fr, pubframe& p) -> task<> {
    // Both edges have come and gone before the first read.
    co_await lancer::sleep_for(std::chrono::milliseconds(20));
    co_await lancer_test::echo(c, fr, p);
  }};
  std::string all;
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    for (int i = 0; i < 5; ++i) {
      asio::io_context io;
      tcp::socket s = connect_to(io, "127.0.0.1", f.src.port());
      asio::write(s, asio::buffer(std::string("ping")));
      s.shutdown(tcp::socket::shutdown_send);
      all += read_until_closed(s);
    }
  });
  CHECK(finished);
  CHECK(all.size() == 5 * 4);
  CHECK(all.find_first_not_of("ping") == std::string::npos);
}

TEST_CASE("a reader that starts late gets 8 MiB intact: writes wait for the socket's edge") {
  constexpr std::size_t k_size = 8u << 20;
  tcp_fixture f{[](connection& c, frame&, pubframe&) -> task<> {
    std::string piece(64 * 1024, '\0');
    for (std::size_t sent = 0; sent < k_size; sent += piece.size()) {
      for (std::size_t i = 0; i < piece.size(); ++i)
        piece[i] = static_cast<char>((sent + i) * 13 % 251);
      co_await c.send(piece);  // waits above the high-water mark
    }
    co_await c.flush();
  }};
  std::string received;
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.src.port());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the socket buffers fill
    boost::system::error_code ec;
    asio::read(s, asio::dynamic_buffer(received), ec);
  });
  CHECK(finished);
  REQUIRE(received.size() == k_size);
  bool intact = true;
  for (std::size_t i = 0; i < k_size && intact; ++i)
    intact = received[i] == static_cast<char>(i * 13 % 251);
  CHECK(intact);
}

TEST_CASE("a reset while the handler waits for input ends its read with an error, quietly") {
  std::string error;  // written by the server's thread, read once `failed` says so
  std::atomic<bool> failed{false};
  tcp_fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    try {
      for (;;) {
        const std::size_t n = co_await c.read();
        c.consume(c.buffered().size());
        if (n == 0 && c.at_eof()) break;
      }
    } catch (const std::system_error& e) {
      error = e.code().message();
      failed = true;
    }
  }};
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.src.port());
    asio::write(s, asio::buffer(std::string("hello")));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s.set_option(asio::socket_base::linger(true, 0));  // close sends RST
    s.close();
    for (int i = 0; i < 100 && !failed; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  CHECK(finished);
  REQUIRE(failed);
  CHECK(error == std::make_error_code(std::errc::connection_reset).message());
}

TEST_CASE("a burst of 300 connections at once is accepted and every one answered") {
  tcp_fixture f{lancer_test::echo};
  int answered = 0;
  const bool finished = lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    std::vector<tcp::socket> socks;
    for (int i = 0; i < 300; ++i) {
      socks.push_back(connect_to(io, "127.0.0.1", f.src.port()));
      asio::write(socks.back(), asio::buffer(std::to_string(1000 + i)));
    }
    for (int i = 0; i < 300; ++i) {
      std::string back(4, '\0');
      asio::read(socks[static_cast<std::size_t>(i)], asio::buffer(back));
      answered += back == std::to_string(1000 + i);
    }
  });
  CHECK(finished);
  CHECK(answered == 300);
}

TEST_CASE("a connection names both ends; a scheduler whose connections are gone runs out of work") {
  std::string peer, local;
  tcp_fixture f{[&](connection& c, frame&, pubframe&) -> task<> {
    peer = c.peer_address();
    local = c.local_address();
    co_await c.read();
    c.write("bye");
  }};
  std::uint16_t client_port = 0;
  CHECK(lancer_test::run_with_client(f.sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", f.src.port());
    client_port = s.local_endpoint().port();
    asio::write(s, asio::buffer(std::string("x")));
    std::string back(3, '\0');
    asio::read(s, asio::buffer(back));
  }));
  CHECK(peer == "127.0.0.1:" + std::to_string(client_port));
  CHECK(local == "127.0.0.1:" + std::to_string(f.src.port()));
  f.src.stop();
  // Nothing is left to wait for: no listener, no connection. run() must return.
  std::atomic<bool> returned{false}, forced{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 50 && !returned; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!returned) {
      forced = true;
      f.sched.stop();
    }
  });
  f.sched.run();
  returned = true;
  watchdog.join();
  CHECK_FALSE(forced);
  CHECK(f.srv.connections() == 0);
}

TEST_CASE("IPv6 loopback works when the machine has it") {
  lancer::set_log_level(lancer::log_level::warn);
  lancer::scheduler sched;
  lancer::server srv{sched, lancer_test::echo};
  lancer::tcp_source src{lancer::parse_address("tcp/$6:0")};
  srv.attach_source(src);
  try {
    srv.run();
  } catch (const std::system_error& e) {
    MESSAGE("no IPv6 loopback here: " << e.what());
    return;
  }
  std::string reply(5, '\0');
  CHECK(lancer_test::run_with_client(sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "::1", src.port());
    asio::write(s, asio::buffer(std::string("hello")));
    asio::read(s, asio::buffer(reply));
  }));
  CHECK(reply == "hello");
  lancer::set_log_level(lancer::log_level::info);
}

TEST_CASE("a port already in use is refused with the address in the message") {
  lancer::scheduler sched;
  lancer::server first{sched, lancer_test::echo};
  lancer::tcp_source a{lancer::parse_address("tcp/$4:0"), lancer::tcp_options{.reuse_port = false}};
  first.attach_source(a);
  first.run();
  lancer::server second{sched, lancer_test::echo};
  lancer::tcp_source b{lancer::parse_address("tcp/$4:" + std::to_string(a.port())),
                       lancer::tcp_options{.reuse_port = false}};
  second.attach_source(b);
  try {
    second.run();
    FAIL("bound a port in use");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("tcp/127.0.0.1:" + std::to_string(a.port()) +
                                     ": another server is listening there") != std::string::npos);
    CHECK(e.code() == std::errc::address_in_use);
  }
}

TEST_CASE("SO_REUSEPORT shares a port only when the second listener asks to share it") {
  lancer::scheduler sched;
  lancer::server first{sched, lancer_test::echo};
  lancer::tcp_source a{lancer::parse_address("tcp/$4:0")};  // reuse_port, as every worker's
  first.attach_source(a);
  first.run();
  const std::string at = "tcp/$4:" + std::to_string(a.port());
  lancer::server second{sched, lancer_test::echo};
  lancer::tcp_source b{lancer::parse_address(at)};  // exclusive by default: refused
  second.attach_source(b);
  CHECK_THROWS_AS(second.run(), std::system_error);
  lancer::server third{sched, lancer_test::echo};
  lancer::tcp_source c{lancer::parse_address(at), lancer::tcp_options{.exclusive = false}};
  third.attach_source(c);
  third.run();  // shares the port, as a process's second worker does
  CHECK(c.port() == a.port());
}

TEST_CASE("a tcp source refuses a unix address") {
  CHECK_THROWS_AS(lancer::tcp_source{lancer::parse_address("unix//tmp/x.sock")},
                  std::invalid_argument);
}

TEST_CASE("native_handle is the listening socket while the source runs, -1 before and after") {
  lancer::scheduler sched;
  lancer::server srv{sched, lancer_test::echo};
  lancer::tcp_source src{lancer::parse_address("tcp/$4:0")};
  CHECK(src.native_handle() == -1);
  srv.attach_source(src);
  srv.run();
  const int fd = src.native_handle();
  REQUIRE(fd >= 0);
  int listening = 0;
  socklen_t len = sizeof listening;
  REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0);
  CHECK(listening == 1);
  src.stop();
  CHECK(src.native_handle() == -1);
}
