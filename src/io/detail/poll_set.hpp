// lancer::detail::poll_set: edge-triggered readiness for every connected socket of one
// io_context, through a single descriptor in Asio's reactor. Private to src/.
//
// Why not one Asio wait per socket: Asio arms each readiness wait with an epoll_ctl call
// (a system call per request on a keep-alive connection: 6% of lancer-serve's time under
// load, measured with perf), and keeps about 300 bytes of reactor state and pending operation
// per idle socket. Here a socket is added once, edge-triggered for input and output, and its
// target is told whenever its readiness may have changed; the set's own descriptor sits in
// Asio's reactor, so the scheduler still waits in one place. Per batch of ready sockets this
// costs one epoll_wait and one re-arm of the set's descriptor, whatever the batch's size.
//
// A target must stay alive while its descriptor is open; closing the descriptor removes it
// from the set. Targets are told only from inside the reactor's handler, never re-entrantly.
#pragma once

#include <cstdint>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>

namespace lancer::detail {

// What a socket in the set is told.
class poll_target {
 public:
  // `events` is the epoll event mask: EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR.
  virtual void on_ready(std::uint32_t events) noexcept = 0;

 protected:
  ~poll_target() = default;
};

class poll_set final : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;  // Asio's service key

  // Created by boost::asio::use_service<poll_set>(io) once per io_context.
  explicit poll_set(boost::asio::io_context& io);
  poll_set(const poll_set&) = delete;
  poll_set& operator=(const poll_set&) = delete;
  ~poll_set() override;

  // Adds the non-blocking socket `fd`, edge-triggered for input, output and the peer's
  // half-close; `target` is told of readiness until `fd` is closed. Call forget() when it is.
  // Throws std::system_error if the kernel refuses (out of memory, or max_user_watches).
  void add(int fd, poll_target& target);
  // Takes `fd` (added earlier, about to be closed) out of the set. Closing it alone is not
  // enough: a duplicate held elsewhere for a moment (a child process being spawned) would
  // keep it in. When none is left the set stops waiting, so a scheduler with no connections
  // can run out of work.
  void forget(int fd) noexcept;

 private:
  void shutdown() override;
  void arm();
  void drain() noexcept;

  using watch_type =
      boost::asio::posix::basic_stream_descriptor<boost::asio::io_context::executor_type>;

  int epoll_fd_ = -1;
  watch_type watch_;           // epoll_fd_, as Asio's reactor sees it
  std::uint64_t sockets_ = 0;  // added and not forgotten
  bool armed_ = false;         // a wait on watch_ is pending
  bool shut_down_ = false;     // the io_context is going away
};

}  // namespace lancer::detail
