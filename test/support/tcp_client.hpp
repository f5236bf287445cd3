// A blocking TCP client for tests that run a server on another OS thread.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <string>

namespace lancer_test {

inline boost::asio::ip::tcp::socket connect_to(boost::asio::io_context& io, const char* host,
                                               std::uint16_t port) {
  boost::asio::ip::tcp::socket s(io);
  s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host), port));
  return s;
}

// Reads until the server closes, or gives up after 5 s without a byte: a server that never
// closes fails the test instead of hanging it (blocking reads would wait forever). A reset
// ends the text with "<error>", a silence with "<no EOF>".
inline std::string read_until_closed(boost::asio::ip::tcp::socket& s) {
  const timeval limit{5, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(s.native_handle(), buf, sizeof buf, 0);
    if (n == 0) return out;
    if (n < 0) return out + (errno == EAGAIN || errno == EWOULDBLOCK ? "<no EOF>" : "<error>");
    out.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace lancer_test
