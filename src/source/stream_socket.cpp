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
          log(log_level::warn, "server", "accept failed: {}",
              std::system_category().message(errno));
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
      srv.add_connection(
          std::make_unique<fd_transport>(fd, set, reinterpret_cast<const sockaddr*>(&peer), len));
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
