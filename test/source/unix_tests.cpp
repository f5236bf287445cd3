// The Unix source: bytes over a real socket file; stale, live and foreign files at the path; a
// listening socket handed to another server with its path kept.
#include "lancer/source/unix.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "echo.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"
#include "lancer/source/systemd.hpp"
#include "run_with_client.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using stream = asio::local::stream_protocol;

namespace {

std::string socket_path(const char* name) {
  return (fs::temp_directory_path() /
          (std::string("lancer-") + name + "-" + std::to_string(::getpid()) + ".sock"))
      .string();
}

lancer::address at(const std::string& path) {
  return lancer::parse_address("unix/" + path);
}

}  // namespace

TEST_CASE("bytes cross a Unix socket; the file gets its mode and goes away at stop") {
  lancer::set_log_level(lancer::log_level::warn);
  const std::string path = socket_path("echo");
  lancer::scheduler sched;
  lancer::server srv{sched, lancer_test::echo};
  lancer::unix_source src{at(path), lancer::unix_options{.mode = 0600}};
  srv.attach_source(src);
  srv.run();
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::string reply(5, '\0');
  CHECK(lancer_test::run_with_client(sched, [&] {
    asio::io_context io;
    stream::socket s(io);
    s.connect(stream::endpoint(path));
    asio::write(s, asio::buffer(std::string("hello")));
    asio::read(s, asio::buffer(reply));
  }));
  CHECK(reply == "hello");
  src.stop();
  CHECK_FALSE(fs::exists(path));
  lancer::set_log_level(lancer::log_level::info);
}

TEST_CASE("a stale socket file is removed; a live one is refused; a plain file is never touched") {
  asio::io_context io;
  lancer::scheduler sched;
  lancer::server srv{sched, lancer_test::echo};

  const std::string stale = socket_path("stale");
  {
    stream::acceptor left(io, stream::endpoint(stale));  // bound, then closed without unlink
  }
  REQUIRE(fs::exists(stale));
  lancer::unix_source a{at(stale)};
  a.start(srv);  // removes the stale file and binds anew
  CHECK(fs::exists(stale));

  lancer::unix_source b{at(stale)};
  try {
    b.start(srv);
    FAIL("started on a live socket");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find("another server is listening there") != std::string::npos);
  }
  CHECK(fs::exists(stale));  // the live server's file stays
  a.stop();

  const std::string plain = socket_path("plain");
  std::ofstream(plain) << "keep me";
  lancer::unix_source c{at(plain)};
  CHECK_THROWS_AS(c.start(srv), std::system_error);
  std::ifstream in(plain);
  std::string content;
  std::getline(in, content);
  CHECK(content == "keep me");
  fs::remove(plain);
}

TEST_CASE("keep_path: a listening socket handed to another server keeps its path at stop") {
  lancer::set_log_level(lancer::log_level::warn);
  const std::string path = socket_path("handed");
  lancer::scheduler sched;
  lancer::server old_srv{sched, lancer_test::echo};
  lancer::unix_source old_src{at(path)};
  CHECK(old_src.native_handle() == -1);
  old_srv.attach_source(old_src);
  old_srv.run();
  REQUIRE(old_src.native_handle() >= 0);

  // What a new process does with a descriptor it inherited: adopt it. Then the old one stops.
  lancer::server new_srv{sched, lancer_test::echo};
  lancer::fd_source new_src{::dup(old_src.native_handle())};
  new_srv.attach_source(new_src);
  new_srv.run();
  old_src.keep_path();
  old_src.stop();
  CHECK(old_src.native_handle() == -1);
  REQUIRE(fs::exists(path));

  std::string reply(5, '\0');
  CHECK(lancer_test::run_with_client(sched, [&] {
    asio::io_context io;
    stream::socket s(io);
    s.connect(stream::endpoint(path));  // refused if the path had gone with the old source
    asio::write(s, asio::buffer(std::string("again")));
    asio::read(s, asio::buffer(reply));
  }));
  CHECK(reply == "again");
  new_src.stop();
  CHECK(fs::exists(path));  // an adopted descriptor's path is not the fd_source's to remove
  fs::remove(path);
  lancer::set_log_level(lancer::log_level::info);
}
