#include "io/detail/fd_transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "io/detail/sigpipe.hpp"

namespace lancer::detail {

namespace {

// A read asks for one pooled block (4 KiB: no malloc for a request) at first. While reads fill
// what they asked for, the kernel holds more: each asks for twice as much, up to 64 KiB, so a
// bulk transfer makes a sixteenth of the system calls; reads that come back mostly empty bring
// it down again.
constexpr std::size_t k_read_step = 4096;
constexpr std::uint8_t k_read_grow_max = 4;   // 4 KiB << 4 = 64 KiB
constexpr std::size_t k_file_step = 2 << 20;  // most bytes one sendfile call is asked for

std::error_code last_error() noexcept {
  return {errno, std::system_category()};
}

}  // namespace

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

// One connection's share of memory: a frame-pool block of 104 bytes (a 112-byte malloc chunk).
static_assert(sizeof(fd_transport) <= 104);

fd_transport::fd_transport(int fd, poll_set& set, const sockaddr* peer, socklen_t peer_len)
    : set_(set), fd_(fd) {
  peer_len_ = static_cast<std::uint8_t>(format_address(peer, peer_len, peer_, sizeof peer_));
  init({});
}

fd_transport::fd_transport(int fd, poll_set& set, kind k, std::string_view name, bool connecting)
    : set_(set), fd_(fd), pipe_(k == kind::pipe), writable_(!connecting), connecting_(connecting) {
  init(name);
}

void fd_transport::init(std::string_view name) {
  if (!name.empty()) {
    peer_len_ = static_cast<std::uint8_t>(std::min(name.size(), sizeof peer_));
    std::memcpy(peer_, name.data(), peer_len_);
  }
  try {
    set_.add(fd_, *this);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

fd_transport::~fd_transport() {
  close();
}

std::string_view fd_transport::local_address() const {
  if (local_) return *local_;
  local_ = std::make_unique<std::string>();
  if (fd_ >= 0 && socket()) {
    sockaddr_storage at{};
    socklen_t len = sizeof at;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&at), &len) == 0) {
      char text[108];
      if (at.ss_family == AF_UNIX) {
        sockaddr_un un{};
        std::memcpy(&un, &at, std::min<std::size_t>(len, sizeof un));
        *local_ = un.sun_path;  // the listener's path ("" for an unnamed socket)
      } else {
        local_->assign(
            text, format_address(reinterpret_cast<const sockaddr*>(&at), len, text, sizeof text));
      }
    }
  } else if (!socket()) {
    *local_ = "pipe";
  }
  return *local_;
}

void fd_transport::start_read(sink& s, std::size_t limit) {
  sink_ = &s;
  limit = std::clamp<std::size_t>(limit, 1, UINT32_MAX);
  if (!readable_) {
    want_read_ = static_cast<std::uint32_t>(limit);  // the next input edge reads
    return;
  }
  read_now(limit);
}

void fd_transport::read_now(std::size_t limit) {
  sink& s = *sink_;
  const std::size_t want = std::min(limit, k_read_step << read_grow_);
  const std::span<char> room = s.inbound().prepare(want);
  for (;;) {
    const ssize_t n =
        socket() ? ::recv(fd_, room.data(), room.size(), 0) : ::read(fd_, room.data(), room.size());
    if (n > 0) {
      s.inbound().commit(static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) >= want) {
        if (read_grow_ < k_read_grow_max && want == k_read_step << read_grow_) ++read_grow_;
      } else if (read_grow_ > 0 && static_cast<std::size_t>(n) <= want / 4) {
        --read_grow_;
      }
      // Short: the kernel had nothing more. Anything that arrives from now on is an edge;
      // an EOF or error already reported is not, so then the next read goes ahead.
      if (static_cast<std::size_t>(n) < room.size() && !peer_done_) readable_ = false;
      s.on_read({});
      return;
    }
    if (n == 0) {
      s.on_read(eof_error());
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      want_read_ = static_cast<std::uint32_t>(limit);
      return;
    }
    s.on_read(last_error());
    return;
  }
}

void fd_transport::start_write(sink& s) {
  sink_ = &s;
  if (!writable_) {
    want_write_ = true;  // the next output edge writes
    return;
  }
  write_now();
}

void fd_transport::write_now() {
  sink& s = *sink_;
  if (connecting_) {
    connecting_ = false;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      s.on_written({err, std::system_category()});
      return;
    }
  }
  if (s.outbound().empty()) {
    if (sink::file_region* f = s.outbound_file(); f != nullptr && socket()) {
      send_file_now(*f);
      return;
    }
  }
  const std::string_view out = s.outbound().view();
  // A file region follows (a response head before its body): MSG_MORE lets the kernel put
  // the head in the same segments as the file's first bytes, which sendfile then pushes.
  const sink::file_region* next = s.outbound_file();
  const int flags = MSG_NOSIGNAL | (next != nullptr && next->left > 0 ? MSG_MORE : 0);
  for (;;) {
    const ssize_t n = socket() ? ::send(fd_, out.data(), out.size(), flags)
                               : ::write(fd_, out.data(), out.size());
    if (n >= 0) {
      // All of it, or part: the sink asks again for the rest, and a write that cannot take
      // more then meets EAGAIN and waits for the edge.
      s.outbound().consume(static_cast<std::size_t>(n));
      s.on_written({});
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      writable_ = false;
      want_write_ = true;
      return;
    }
    s.on_written(last_error());
    return;
  }
}

void fd_transport::send_file_now(sink::file_region& f) {
  ignore_sigpipe();  // sendfile(2) has no MSG_NOSIGNAL: a peer that left must give EPIPE
  sink& s = *sink_;
  bool sent = false;  // some bytes went: report them even if the socket is full now
  while (f.left != 0) {
    off_t at = static_cast<off_t>(f.offset);
    const std::size_t step = static_cast<std::size_t>(std::min<std::uint64_t>(f.left, k_file_step));
    const ssize_t n = ::sendfile(fd_, f.fd, &at, step);
    if (n > 0) {
      f.offset += static_cast<std::uint64_t>(n);
      f.left -= static_cast<std::uint64_t>(n);
      sent = true;
      continue;  // until the socket is full (EAGAIN) or the region sent
    }
    if (n == 0) {  // the file ends before offset + left: it was truncated
      f.error = ENODATA;
      break;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      writable_ = false;
      if (sent) break;  // the sink asks again, and that write waits for the edge
      want_write_ = true;
      return;
    }
    if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) {
      f.error = EINVAL;  // a file sendfile cannot read: the sink copies the rest itself
      break;
    }
    if (err == EIO || err == EBADF || err == EOVERFLOW || err == ESPIPE || err == ENXIO ||
        err == EISDIR) {
      f.error = err;  // the file's error, not the connection's
      break;
    }
    s.on_written({err, std::system_category()});  // the socket's (EPIPE, ECONNRESET, ...)
    return;
  }
  s.on_written({});
}

void fd_transport::on_ready(std::uint32_t events) noexcept {
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

bool fd_transport::input_pending() noexcept {
  if (fd_ < 0) return false;
  bool pending = false;
  if (socket()) {
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    pending = n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);  // bytes, an EOF, an error
  } else {
    int n = 0;
    pending = ::ioctl(fd_, FIONREAD, &n) == 0 && n > 0;
  }
  if (!pending) return false;
  readable_ = true;  // its edge may not have been seen yet: read without waiting
  if (want_read_ != 0 && sink_ != nullptr) read_now(std::exchange(want_read_, 0));
  return true;
}

void fd_transport::shutdown_write() noexcept {
  if (fd_ < 0) return;
  if (socket()) {
    ::shutdown(fd_, SHUT_WR);
  } else {
    close();  // a pipe's write end: closing it is the reader's EOF
  }
}

void fd_transport::reset() noexcept {
  if (fd_ >= 0 && socket()) {
    const linger hard{1, 0};  // close sends RST
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  close();
}

void fd_transport::close() noexcept {
  if (fd_ < 0) return;
  set_.forget(fd_);
  ::close(fd_);
  fd_ = -1;
  sink_ = nullptr;
  want_read_ = 0;
  want_write_ = false;
}

}  // namespace lancer::detail
