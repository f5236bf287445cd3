// The TCP source over real loopback sockets. The client runs on its own OS thread with
// blocking sockets; the scheduler runs on the test's thread until the client is done.
#include "lancer/source/tcp.hpp"

#include <doctest/doctest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "echo.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"
#include "run_with_client.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using lancer::connection;
using lancer::frame;
using lancer::pubframe;
using lancer::task;

namespace {

tcp::socket connect_to(asio::io_context& io, const char* host, std::uint16_t port) {
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address(host), port));
  return s;
}

}  // namespace

TEST_CASE("bytes cross a real TCP connection both ways, 4 MiB of them intact") {
  lancer::set_log_level(lancer::log_level::warn);
  lancer::scheduler sched;
  lancer::server srv{sched, lancer_test::echo};
  lancer::tcp_source src{lancer::parse_address("tcp/$4:0")};
  srv.attach_source(src);
  srv.run();
  REQUIRE(src.port() != 0);
  CHECK(src.name() == "tcp/127.0.0.1:" + std::to_string(src.port()));

  std::string payload(4u << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<char>(i * 7 % 251);
  std::string received;
  const bool finished = lancer_test::run_with_client(sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", src.port());
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
  lancer::set_log_level(lancer::log_level::info);
}

TEST_CASE("short reads, pauses and back-to-back writes: no byte and no wakeup is lost") {
  // After a read that came back short the transport waits for readiness before it reads
  // again. Bytes that land in between, or while the handler is busy, must still wake it.
  lancer::set_log_level(lancer::log_level::warn);
  lancer::scheduler sched;
  lancer::server srv{sched, lancer_test::echo};
  lancer::tcp_source src{lancer::parse_address("tcp/$4:0")};
  srv.attach_source(src);
  srv.run();
  std::string sent, received;
  const bool finished = lancer_test::run_with_client(sched, [&] {
    asio::io_context io;
    tcp::socket s = connect_to(io, "127.0.0.1", src.port());
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
  lancer::set_log_level(lancer::log_level::info);
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
                                     ": cannot bind") != std::string::npos);
  }
}

TEST_CASE("a tcp source refuses a unix address") {
  CHECK_THROWS_AS(lancer::tcp_source{lancer::parse_address("unix//tmp/x.sock")},
                  std::invalid_argument);
}
