#include "io/detail/poll_set.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "io/detail/pooled.hpp"
#include "lancer/log.hpp"

namespace lancer::detail {

namespace asio = boost::asio;

namespace {
constexpr int k_batch = 256;      // events taken per epoll_wait
constexpr int k_max_batches = 4;  // then re-arm, so other reactor work gets its turn
}  // namespace

poll_set::poll_set(asio::io_context& io) : asio::execution_context::service(io), watch_(io) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    throw std::system_error(errno, std::system_category(), "lancer: cannot create an epoll set");
  }
  boost::system::error_code ec;
  watch_.assign(epoll_fd_, ec);
  if (ec) {
    ::close(epoll_fd_);
    throw std::system_error(ec, "lancer: cannot watch the epoll set");
  }
}

poll_set::~poll_set() {
  boost::system::error_code ec;
  watch_.close(ec);  // closes epoll_fd_
}

void poll_set::shutdown() {
  shut_down_ = true;
  boost::system::error_code ec;
  watch_.cancel(ec);
}

void poll_set::add(int fd, poll_target& target) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &target;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::system_error(errno, std::system_category(), "lancer: cannot watch a socket");
  }
  ++sockets_;
  arm();
}

void poll_set::forget(int fd) noexcept {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  if (sockets_ > 0 && --sockets_ == 0 && armed_) {
    boost::system::error_code ec;
    watch_.cancel(ec);  // the pending wait ends with operation_aborted
  }
}

void poll_set::arm() {
  if (armed_ || shut_down_ || sockets_ == 0) return;
  armed_ = true;
  watch_.async_wait(watch_type::wait_read, pooled([this](const boost::system::error_code& ec) {
                      armed_ = false;
                      if (!ec) drain();
                      arm();
                    }));
}

// Takes what is ready and tells each target. A full batch may mean more is waiting: take
// another, a few times, then let the reactor run other handlers (the re-armed wait fires at
// once if the set is still ready).
void poll_set::drain() noexcept {
  epoll_event events[k_batch];
  for (int batch = 0; batch < k_max_batches; ++batch) {
    const int n = ::epoll_wait(epoll_fd_, events, k_batch, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      log(log_level::error, "server", "epoll_wait on the connection set failed: {}",
          std::generic_category().message(errno));
      return;
    }
    for (int i = 0; i < n; ++i)
      static_cast<poll_target*>(events[i].data.ptr)->on_ready(events[i].events);
    if (n < k_batch) return;
  }
}

}  // namespace lancer::detail
