#include "source/detail/stream_socket.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <system_error>

#include <fmt/format.h>

#include "lancer/core/connection.hpp"

namespace lancer::detail {

namespace {

constexpr std::size_t k_read_step = 4096;  // one pooled block: no malloc per read

// The soft file limit, read once (RLIMIT_NOFILE; a limit set later is not seen).
int file_limit() noexcept {
  static const int limit = [] {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY ||
        r.rlim_cur > INT_MAX) {
      return INT_MAX;
    }
    return static_cast<int>(r.rlim_cur);
  }();
  return limit;
}

// The descriptors this process has open (the reserve's included), or -1 if /proc is not there.
int open_descriptors() noexcept {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // the directory's own descriptor
}

bool near_file_limit(int fd) noexcept {
  return fd >= file_limit() - k_fd_headroom;
}

std::mutex g_reserve_mutex;
int g_reserve[2] = {-1, -1};

std::error_code last_error() noexcept {
  return {errno, std::system_category()};
}

// "1.2.3.4:80", "[::1]:80", "unix"; what fits in `out` (53 bytes is enough for any).
std::size_t format_address(const sockaddr* a, socklen_t len, char* out, std::size_t room) {
  char host[INET6_ADDRSTRLEN] = {};
  fmt::format_to_n_result<char*> r{out, 0};
  if (a != nullptr && a->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, a, sizeof in);
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    r = fmt::format_to_n(out, room, "{}:{}", host, ntohs(in.sin_port));
  } else if (a != nullptr && a->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, a, sizeof in6);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    r = fmt::format_to_n(out, room, "[{}]:{}", host, ntohs(in6.sin6_port));
  } else {
    r = fmt::format_to_n(out, room, "unix");
  }
  return std::min(r.size, room);
}

}  // namespace

bool hold_fd_reserve() noexcept {
  std::lock_guard lock(g_reserve_mutex);
  if (g_reserve[0] < 0 && ::pipe2(g_reserve, O_CLOEXEC) != 0) {
    g_reserve[0] = g_reserve[1] = -1;
    return false;
  }
  // Room beyond the reserve: the process's open descriptors, counted, leave k_fd_headroom
  // free. (Descriptor numbers say nothing here: the reserve takes the lowest free ones.)
  // Without it, accepting would resume only to pause again at the next connection, and the
  // process would creep up to its limit.
  const int open = open_descriptors();
  if (open >= 0 && open + k_fd_headroom > file_limit()) {
    ::close(g_reserve[0]);
    ::close(g_reserve[1]);
    g_reserve[0] = g_reserve[1] = -1;
    return false;
  }
  return true;
}

void release_fd_reserve() noexcept {
  std::lock_guard lock(g_reserve_mutex);
  if (g_reserve[0] < 0) return;
  ::close(g_reserve[0]);
  ::close(g_reserve[1]);
  g_reserve[0] = g_reserve[1] = -1;
}

stream_transport::stream_transport(int fd, poll_set& set, const sockaddr* peer, socklen_t peer_len)
    : set_(set), fd_(fd) {
  peer_len_ = static_cast<std::uint8_t>(format_address(peer, peer_len, peer_, sizeof peer_));
  try {
    set_.add(fd_, *this);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

stream_transport::~stream_transport() {
  close();
}

std::string_view stream_transport::local_address() const {
  if (local_.empty() && fd_ >= 0) {
    sockaddr_storage at{};
    socklen_t len = sizeof at;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&at), &len) == 0) {
      char text[108];
      if (at.ss_family == AF_UNIX) {
        sockaddr_un un{};
        std::memcpy(&un, &at, std::min<std::size_t>(len, sizeof un));
        local_ = un.sun_path;  // the listener's path ("" for an unnamed socket)
      } else {
        local_.assign(
            text, format_address(reinterpret_cast<const sockaddr*>(&at), len, text, sizeof text));
      }
    }
  }
  return local_;
}

void stream_transport::start_read(connection& c, std::size_t limit) {
  conn_ = &c;
  limit = std::clamp<std::size_t>(limit, 1, UINT32_MAX);
  if (!readable_) {
    want_read_ = static_cast<std::uint32_t>(limit);  // the next input edge reads
    return;
  }
  read_now(limit);
}

void stream_transport::read_now(std::size_t limit) {
  connection& c = *conn_;
  const std::span<char> room = c.inbound().prepare(std::min(limit, k_read_step));
  for (;;) {
    const ssize_t n = ::recv(fd_, room.data(), room.size(), 0);
    if (n > 0) {
      c.inbound().commit(static_cast<std::size_t>(n));
      // Short: the kernel had nothing more. Anything that arrives from now on is an edge;
      // an EOF or error already reported is not, so then the next read goes ahead.
      if (static_cast<std::size_t>(n) < room.size() && !peer_done_) readable_ = false;
      c.on_read({});
      return;
    }
    if (n == 0) {
      c.on_read(eof_error());
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      want_read_ = static_cast<std::uint32_t>(limit);
      return;
    }
    c.on_read(last_error());
    return;
  }
}

void stream_transport::start_write(connection& c) {
  conn_ = &c;
  if (!writable_) {
    want_write_ = true;  // the next output edge writes
    return;
  }
  write_now();
}

void stream_transport::write_now() {
  connection& c = *conn_;
  const std::string_view out = c.outbound().view();
  for (;;) {
    const ssize_t n = ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      // All of it, or part: the connection asks again for the rest, and a send that cannot
      // take more then meets EAGAIN and waits for the edge.
      c.outbound().consume(static_cast<std::size_t>(n));
      c.on_written({});
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      writable_ = false;
      want_write_ = true;
      return;
    }
    c.on_written(last_error());
    return;
  }
}

void stream_transport::on_ready(std::uint32_t events) noexcept {
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) peer_done_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
  if (want_write_ && writable_ && fd_ >= 0) {
    want_write_ = false;
    write_now();
  }
  if (want_read_ != 0 && readable_ && fd_ >= 0) {
    const std::size_t limit = std::exchange(want_read_, 0);
    read_now(limit);
  }
}

bool stream_transport::input_pending() noexcept {
  if (fd_ < 0) return false;
  char byte;
  const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return false;
  readable_ = true;  // its edge may not have been seen yet: read without waiting
  if (want_read_ != 0 && conn_ != nullptr) read_now(std::exchange(want_read_, 0));
  return true;
}

void stream_transport::shutdown_write() noexcept {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void stream_transport::close() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);  // leaves the poll set with it
  fd_ = -1;
  conn_ = nullptr;
  want_read_ = 0;
  want_write_ = false;
  set_.forget();
}

int accept_burst(int listen_fd, server& srv, poll_set& set, bool no_delay, int max) {
  for (int i = 0; i < max; ++i) {
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      switch (errno) {
        case EAGAIN:
          return 0;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          return errno;
        case EINTR:
        case ECONNABORTED:  // the peer gave up while queued: take the next one
        case EPROTO:
        case EPERM:
        case ENETDOWN:
        case ENETUNREACH:
        case EHOSTDOWN:
        case EHOSTUNREACH:
        case ENONET:
        case ENOPROTOOPT:
        case EOPNOTSUPP:
          continue;
        default:
          log(log_level::warn, "server", "accept failed: {}", last_error().message());
          return 0;
      }
    }
    if (no_delay) {
      const int on = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    const bool near_limit = near_file_limit(fd);
    if (near_limit) release_fd_reserve();  // before anything else may need a descriptor
    try {
      srv.add_connection(std::make_unique<stream_transport>(
          fd, set, reinterpret_cast<const sockaddr*>(&peer), len));
    } catch (const std::exception& e) {
      // Out of memory, or the kernel would not watch one more socket: this connection is
      // closed (by the transport's destructor), the listener and the others carry on.
      log(log_level::warn, "server", "connection dropped: {}", e.what());
    }
    if (near_limit) return EMFILE;  // served; accepting pauses before the limit is reached
  }
  return 0;  // more may be waiting: the listener's next wait sees it at once
}

}  // namespace lancer::detail
