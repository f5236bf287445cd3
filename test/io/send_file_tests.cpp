// stream::send_file: zero copy over real Unix and TCP sockets (sendfile), the buffered path over
// the fake network, a file that ends early, a deadline, and a server's connection.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "lancer/core/server.hpp"
#include "lancer/io/connect.hpp"
#include "lancer/io/error.hpp"
#include "lancer/io/fake_network.hpp"
#include "lancer/io/stream.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/sched/detail/frame_pool.hpp"
#include "lancer/source/tcp.hpp"
#include "run_with_client.hpp"

using namespace std::chrono_literals;
using lancer::stream;
using lancer::task;

namespace {

// A file's byte at `i`: it changes with the offset, so a byte out of place shows.
char pattern(std::uint64_t i) {
  return static_cast<char>((i * 131 + i / 4093) % 251);
}

// An unlinked temporary file of `size` pattern bytes; closed with the object.
struct temp_file {
  explicit temp_file(std::size_t size) {
    char path[] = "/tmp/lancer-send-file-XXXXXX";
    fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::unlink(path);
    bytes.resize(size);
    for (std::size_t i = 0; i < size; ++i)
      bytes[i] = pattern(i);
    REQUIRE(::write(fd, bytes.data(), size) == static_cast<ssize_t>(size));
  }
  ~temp_file() { ::close(fd); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  int fd = -1;
  std::string bytes;  // what the file holds
};

// A listening socket of the test's own (Unix or loopback TCP) and, once a stream connected to
// it, the accepted far end, read by a blocking OS thread until EOF, an error, or 10 s of
// silence.
struct far_end {
  explicit far_end(bool unix_socket) {
    if (unix_socket) {
      path = "/tmp/lancer-send-file-" + std::to_string(::getpid()) + "-" +
             std::to_string(++serial) + ".sock";
      ::unlink(path.c_str());
      listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un un{};
      un.sun_family = AF_UNIX;
      std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
      REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&un), sizeof un) == 0);
      address = "unix/" + path;
    } else {
      listener = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
      socklen_t len = sizeof in;
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&in), &len);
      address = "tcp/127.0.0.1:" + std::to_string(ntohs(in.sin_port));
    }
    REQUIRE(::listen(listener, 4) == 0);
  }
  ~far_end() {
    if (reader.joinable()) reader.join();
    if (accepted >= 0) ::close(accepted);
    ::close(listener);
    if (!path.empty()) ::unlink(path.c_str());
  }
  far_end(const far_end&) = delete;
  far_end& operator=(const far_end&) = delete;

  // Accepts the connection a stream just made, and reads it on an OS thread: after
  // `first_pause`, then `chunk` bytes at a time with `pause` between reads.
  void read_after_accept(std::chrono::milliseconds first_pause = 0ms, std::size_t chunk = 65536,
                         std::chrono::microseconds pause = 0us) {
    accepted = ::accept(listener, nullptr, nullptr);
    REQUIRE(accepted >= 0);
    const timeval limit{10, 0};
    ::setsockopt(accepted, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    reader = std::thread([this, first_pause, chunk, pause] {
      std::this_thread::sleep_for(first_pause);
      std::string piece(chunk, '\0');
      for (;;) {
        const ssize_t n = ::recv(accepted, piece.data(), piece.size(), 0);
        if (n == 0) {
          eof = true;
          return;
        }
        if (n < 0) {
          failed = true;  // a reset, or 10 s of silence
          return;
        }
        got.append(piece.data(), static_cast<std::size_t>(n));
        ++reads;
        if (pause.count() > 0) std::this_thread::sleep_for(pause);
      }
    });
  }
  // Waits for the reading thread; call after the scheduler finished.
  void join() {
    if (reader.joinable()) reader.join();
  }

  static inline int serial = 0;
  std::string path;
  std::string address;
  int listener = -1;
  int accepted = -1;
  std::thread reader;
  std::string got;  // every byte read
  std::size_t reads = 0;
  bool eof = false;     // the stream ended its side cleanly
  bool failed = false;  // a reset (or a silence)
};

lancer::address at(const std::string& text) {
  return lancer::parse_address(text, true);
}

}  // namespace

TEST_CASE("send_file over a Unix socket: the header, 8 MiB zero-copy, the trailer, then EOF") {
  temp_file file(8u << 20);
  far_end peer(true);
  lancer::scheduler sched;
  bool zero_copy = false;
  std::size_t unsent_after = 1;
  std::uint64_t written = 0;
  sched.run_until_complete([&]() -> task<> {
    auto s = co_await lancer::connect(at(peer.address), 5s);
    peer.read_after_accept();
    zero_copy = s->sends_files();
    s->write("HEADER\r\n");
    co_await s->send_file(file.fd, 0, file.bytes.size());
    unsent_after = s->unsent();
    s->write("TRAILER");
    s->close();  // after the trailer the peer reads EOF
    co_await s->flush();
    written = s->bytes_written();
  }());
  peer.join();
  CHECK(zero_copy);
  CHECK(written == 8 + file.bytes.size() + 7);  // the zero-copy bytes count too
  CHECK(unsent_after == 0);  // every file byte was handed to the kernel when it returned
  CHECK(peer.eof);
  REQUIRE(peer.got.size() == 8 + file.bytes.size() + 7);
  CHECK(peer.got == "HEADER\r\n" + file.bytes + "TRAILER");
}

TEST_CASE("send_file over loopback TCP: a region from the middle, and 0 bytes sends nothing") {
  temp_file file(4u << 20);
  far_end peer(false);
  lancer::scheduler sched;
  constexpr std::uint64_t k_offset = 1234567;
  constexpr std::uint64_t k_length = (2u << 20) + 17;
  sched.run_until_complete([&]() -> task<> {
    auto s = co_await lancer::connect(at(peer.address), 5s);
    peer.read_after_accept();
    co_await s->send_file(file.fd, 99, 0);  // nothing at all
    s->write("<");
    co_await s->send_file(file.fd, k_offset, k_length);
    co_await s->send_file(file.fd, 0, 0);
    s->write(">");
    co_await s->flush();
    s->close();
  }());
  peer.join();
  CHECK(peer.eof);
  REQUIRE(peer.got.size() == k_length + 2);
  CHECK(peer.got == "<" + file.bytes.substr(k_offset, k_length) + ">");
}

TEST_CASE("send_file to a slow reader: no file byte in user space, no allocation, all delivered") {
  temp_file file(8u << 20);
  far_end peer(true);
  lancer::scheduler sched;
  std::uint64_t allocations = 1;
  std::size_t largest_unsent = 0;
  bool done = false;
  sched.run_until_complete([&]() -> task<> {
    auto s = co_await lancer::connect(at(peer.address), 5s);
    // 64 KiB reads, 1 ms apart: about 0.13 s for 8 MiB, the socket full all the while.
    peer.read_after_accept(0ms, 65536, 1000us);
    // A thread beside it watches the outbound buffer while send_file waits.
    sched.spawn([](stream& st, std::size_t& largest, bool& finished) -> task<> {
      while (!finished) {
        largest = std::max(largest, st.unsent());
        co_await lancer::sleep_for(1ms);
      }
    }(*s, largest_unsent, done));
    s->write("x");
    co_await s->send_file(file.fd, 0, 4096);  // warms the frame pool for the task's frame
    const std::uint64_t before = lancer::detail::frame_pool::stats().system_allocations;
    co_await s->send_file(file.fd, 4096, file.bytes.size() - 4096);
    allocations = lancer::detail::frame_pool::stats().system_allocations - before;
    done = true;
    s->close();
    co_await lancer::sleep_for(2ms);  // the watcher ends
  }());
  peer.join();
  // An outbound buffer that had held file bytes would have grown beyond its pooled 4 KiB.
  CHECK(allocations == 0);
  CHECK(largest_unsent <= file.bytes.size());  // the region counts, nothing on top of it
  CHECK(peer.reads > 8);
  REQUIRE(peer.got.size() == 1 + file.bytes.size());
  CHECK(peer.got == "x" + file.bytes);
}

TEST_CASE("a file shorter than promised: file_error, the stream aborted, the peer cut short") {
  temp_file file(1u << 20);
  far_end peer(true);
  lancer::scheduler sched;
  std::string what;
  std::error_code code;
  bool closed = false;
  sched.run_until_complete([&]() -> task<> {
    auto s = co_await lancer::connect(at(peer.address), 5s);
    peer.read_after_accept();
    s->write("H");
    try {
      co_await s->send_file(file.fd, 0, 2u << 20);
    } catch (const lancer::file_error& e) {
      what = e.what();
      code = e.code();
    }
    closed = s->closed();
  }());
  peer.join();
  CHECK(code == std::errc::io_error);
  CHECK(what.find("the file ended at byte 1048576") != std::string::npos);
  CHECK(closed);
  CHECK((peer.eof || peer.failed));
  REQUIRE(peer.got.size() == 1 + file.bytes.size());  // what the file had, nothing more
  CHECK(peer.got == "H" + file.bytes);
}

TEST_CASE("a file truncated while it is sent: file_error, the peer gets what was there") {
  temp_file file(8u << 20);
  far_end peer(true);
  lancer::scheduler sched;
  bool threw = false;
  sched.run_until_complete([&]() -> task<> {
    auto s = co_await lancer::connect(at(peer.address), 5s);
    // The peer starts reading late: the socket fills, send_file waits, the file shrinks.
    peer.read_after_accept(100ms);
    sched.spawn([](int fd) -> task<> {
      co_await lancer::sleep_for(20ms);
      REQUIRE(::ftruncate(fd, 1u << 20) == 0);
    }(file.fd));
    try {
      co_await s->send_file(file.fd, 0, file.bytes.size());
    } catch (const lancer::file_error&) {
      threw = true;
    }
  }());
  peer.join();
  CHECK(threw);
  REQUIRE(peer.got.size() == 1u << 20);
  CHECK(peer.got == file.bytes.substr(0, 1u << 20));
}

TEST_CASE("send_file to a peer that never reads ends with timed_out at the deadline") {
  temp_file file(16u << 20);
  far_end peer(true);
  lancer::scheduler sched;
  bool timed_out = false;
  bool closed = false;
  const auto start = std::chrono::steady_clock::now();
  sched.run_until_complete([&]() -> task<> {
    auto s = co_await lancer::connect(at(peer.address), 5s);
    peer.read_after_accept(400ms);  // reads only once the stream is gone
    s->set_timeout(150ms);
    try {
      co_await s->send_file(file.fd, 0, file.bytes.size());
    } catch (const lancer::timed_out&) {
      timed_out = true;
    }
    closed = s->closed();
  }());
  const auto took = std::chrono::steady_clock::now() - start;
  peer.join();
  CHECK(timed_out);
  CHECK(closed);  // a body cut in the middle: the stream was aborted
  CHECK(took >= 150ms);
  CHECK(took < 5s);
  CHECK(peer.got.size() < file.bytes.size());
  CHECK(peer.got == file.bytes.substr(0, peer.got.size()));
}

TEST_CASE("send_file through the fake network: pread pieces, bounded buffer, then close's EOF") {
  lancer::scheduler sched{lancer::clock::manual()};
  temp_file file(1u << 20);
  auto [t, link_end] = lancer::make_fake_link("peer", &sched);
  lancer::fake_end& end = link_end;
  end.set_window(8192);  // a slow reader
  std::string got;
  std::size_t pieces = 0;
  std::size_t largest_unsent = 0;
  bool zero_copy = true;
  bool done = false;
  std::uint64_t written = 0;
  constexpr std::uint64_t k_offset = 1001;
  const lancer::stream_options options{.high_water = 64 * 1024};
  sched.run_until_complete([&]() -> task<> {
    auto s = lancer::make_stream(std::move(t), "peer", options);
    zero_copy = s->sends_files();
    sched.spawn([](lancer::fake_end& e, stream& st, std::string& into, std::size_t& n,
                   std::size_t& largest, bool& finished) -> task<> {
      while (!finished || !e.peer_done()) {
        largest = std::max(largest, st.unsent());
        const std::string piece = e.read();
        if (!piece.empty()) ++n;
        into += piece;
        co_await lancer::wakeback_later();
      }
      into += e.read();
    }(end, *s, got, pieces, largest_unsent, done));
    s->write("[");
    co_await s->send_file(file.fd, k_offset, file.bytes.size() - k_offset);
    s->write("]");
    written = s->bytes_written();
    s->close();  // the buffered rest goes first, then the EOF
    done = true;
    while (!end.peer_done())
      co_await lancer::wakeback_later();
    co_await lancer::wakeback_later();
  }());
  CHECK_FALSE(zero_copy);
  CHECK(written == file.bytes.size() - k_offset + 2);
  CHECK(pieces > 100);
  CHECK(largest_unsent <= options.high_water + 64 * 1024);
  REQUIRE(got.size() == file.bytes.size() - k_offset + 2);
  CHECK(got == "[" + file.bytes.substr(k_offset) + "]");
}

TEST_CASE("send_file through the fake network of a file shorter than promised: file_error") {
  lancer::scheduler sched{lancer::clock::manual()};
  temp_file file(100000);
  auto [t, link_end] = lancer::make_fake_link("peer", &sched);
  lancer::fake_end& end = link_end;
  std::error_code code;
  sched.run_until_complete([&]() -> task<> {
    auto s = lancer::make_stream(std::move(t), "peer");
    try {
      co_await s->send_file(file.fd, 0, 200000);
    } catch (const lancer::file_error& e) {
      code = e.code();
    }
  }());
  CHECK(code == std::errc::io_error);
  CHECK(end.peer_closed());
}

TEST_CASE("a server's connection sends a file zero-copy; the managing coroutine wakes it") {
  temp_file file(6u << 20);
  lancer::set_log_level(lancer::log_level::warn);
  lancer::scheduler sched;
  bool zero_copy = false;
  lancer::server srv(sched,
                     [&](lancer::connection& c, lancer::frame&, lancer::pubframe&) -> task<> {
                       zero_copy = c.sends_files();
                       c.write("HTTP/1.1 200 OK\r\n\r\n");
                       co_await c.send_file(file.fd, 0, file.bytes.size());
                       c.write("end");
                     });
  lancer::tcp_source src{lancer::parse_address("tcp/$4:0")};
  srv.attach_source(src);
  srv.run();
  std::string got;
  const bool finished = lancer_test::run_with_client(sched, [&] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons(src.port());
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&in), sizeof in) == 0);
    ::shutdown(fd, SHUT_WR);
    const timeval limit{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    std::string piece(65536, '\0');
    for (;;) {
      const ssize_t n = ::recv(fd, piece.data(), piece.size(), 0);
      if (n <= 0) break;
      got.append(piece.data(), static_cast<std::size_t>(n));
      std::this_thread::sleep_for(100us);  // slow enough for send_file to wait on the socket
    }
    ::close(fd);
  });
  lancer::set_log_level(lancer::log_level::info);
  CHECK(finished);
  CHECK(zero_copy);
  REQUIRE(got.size() == 19 + file.bytes.size() + 3);
  CHECK(got == "HTTP/1.1 200 OK\r\n\r\n" + file.bytes + "end");
}

TEST_CASE("a file sendfile cannot read (EINVAL) goes the buffered way on a socket, intact") {
  // procfs's per-process files refuse sendfile (EINVAL) but read with pread.
  const int fd = ::open("/proc/self/cmdline", O_RDONLY);
  REQUIRE(fd >= 0);
  std::string expected(4096, '\0');
  const ssize_t size = ::pread(fd, expected.data(), expected.size(), 0);
  REQUIRE(size > 4);
  expected.resize(static_cast<std::size_t>(size));
  far_end peer(true);
  lancer::scheduler sched;
  bool zero_copy = false;
  sched.run_until_complete([&]() -> task<> {
    auto s = co_await lancer::connect(at(peer.address), 5s);
    peer.read_after_accept();
    zero_copy = s->sends_files();
    s->write("<");
    co_await s->send_file(fd, 2, expected.size() - 2);
    s->write(">");
    s->close();
    co_await s->flush();
  }());
  peer.join();
  ::close(fd);
  CHECK(zero_copy);  // the socket would: the file would not
  CHECK(peer.eof);
  CHECK(peer.got == "<" + expected.substr(2) + ">");
}
