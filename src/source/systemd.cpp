#include "lancer/source/systemd.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "lancer/core/server.hpp"
#include "source/detail/stream_socket.hpp"

namespace lancer {

namespace asio = boost::asio;
using asio::ip::tcp;
using local_stream = asio::local::stream_protocol;

namespace systemd {

std::vector<int> listen_fds() {
  std::vector<int> fds;
  const char* pid = std::getenv("LISTEN_PID");
  const char* count = std::getenv("LISTEN_FDS");
  if (pid != nullptr && count != nullptr && std::strtol(pid, nullptr, 10) == ::getpid()) {
    const long n = std::strtol(count, nullptr, 10);
    for (long i = 0; i < n && i < 1024; ++i)
      fds.push_back(3 + static_cast<int>(i));
  }
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  return fds;
}

bool notify(std::string_view state) {
  const char* where = std::getenv("NOTIFY_SOCKET");
  if (where == nullptr || where[0] == '\0') return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(where);
  if (len >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, where, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // the abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<sockaddr*>(&addr), size);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

}  // namespace systemd

struct fd_source::state {
  explicit state(int f) : fd(f) {}
  int fd;
  std::string shown;
  std::shared_ptr<detail::listener<tcp>> tcp_listen;
  std::shared_ptr<detail::listener<local_stream>> unix_listen;
};

fd_source::fd_source(int fd) : state_(std::make_shared<state>(fd)) {}

fd_source::~fd_source() {
  stop();
}

std::string fd_source::name() const {
  return state_->shown.empty() ? fmt::format("fd/{}", state_->fd) : state_->shown;
}

void fd_source::start(server& srv) {
  state& st = *state_;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(st.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::system_error(errno, std::system_category(),
                            fmt::format("fd/{}: not a socket", st.fd));
  }
  int listening = 0;
  socklen_t optlen = sizeof listening;
  if (::getsockopt(st.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || !listening) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            fmt::format("fd/{}: not a listening socket", st.fd));
  }
  asio::io_context& io = srv.sched().reactor();
  boost::system::error_code ec;
  if (addr.ss_family == AF_INET || addr.ss_family == AF_INET6) {
    auto acceptor = std::make_unique<detail::acceptor_on<tcp>>(io);
    acceptor->assign(addr.ss_family == AF_INET ? tcp::v4() : tcp::v6(), st.fd, ec);
    if (ec) throw std::system_error(ec, fmt::format("fd/{}", st.fd));
    acceptor->non_blocking(true, ec);
    const tcp::endpoint at = acceptor->local_endpoint(ec);
    st.shown = fmt::format("fd/{} (tcp/{}{}{}:{})", st.fd, at.address().is_v6() ? "[" : "",
                           at.address().to_string(), at.address().is_v6() ? "]" : "", at.port());
    st.tcp_listen = std::make_shared<detail::listener<tcp>>();
    st.tcp_listen->no_delay = true;
    st.tcp_listen->start(srv, std::move(acceptor));
  } else if (addr.ss_family == AF_UNIX) {
    auto acceptor = std::make_unique<detail::acceptor_on<local_stream>>(io);
    acceptor->assign(local_stream(), st.fd, ec);
    if (ec) throw std::system_error(ec, fmt::format("fd/{}", st.fd));
    acceptor->non_blocking(true, ec);
    st.shown = fmt::format("fd/{} (unix/{})", st.fd, acceptor->local_endpoint(ec).path());
    st.unix_listen = std::make_shared<detail::listener<local_stream>>();
    st.unix_listen->start(srv, std::move(acceptor));
  } else {
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            fmt::format("fd/{}: neither TCP nor a Unix stream socket", st.fd));
  }
}

int fd_source::native_handle() const noexcept {
  const state& st = *state_;
  if (st.tcp_listen && st.tcp_listen->acceptor && st.tcp_listen->acceptor->is_open()) {
    return st.tcp_listen->acceptor->native_handle();
  }
  if (st.unix_listen && st.unix_listen->acceptor && st.unix_listen->acceptor->is_open()) {
    return st.unix_listen->acceptor->native_handle();
  }
  return -1;
}

void fd_source::accept_pending() {
  if (state_->tcp_listen) state_->tcp_listen->accept_pending();
  if (state_->unix_listen) state_->unix_listen->accept_pending();
}

void fd_source::stop() noexcept {
  if (state_->tcp_listen) state_->tcp_listen->stop();
  if (state_->unix_listen) state_->unix_listen->stop();
}

}  // namespace lancer
