// The transport for stream sockets (TCP and Unix) and the accept loop, shared by their
// sources. Private to src/.
//
// A connected socket is a plain non-blocking descriptor in the io_context's poll_set,
// edge-triggered: the transport remembers whether input may be waiting and whether the
// socket may take output, and a system call is made only when it can succeed or tell
// something. A read that comes back short means the kernel had nothing more, so the next read
// waits for the edge (unless the peer has half-closed: then the EOF is still to be read);
// nothing is armed per read. A connection waiting for input holds no
// buffer: only its descriptor and this object.
//
// The listening socket is Asio's (open, options, bind, listen); accepting is accept4 after
// Asio reports the socket readable, a burst at a time, so the accepted descriptor comes
// non-blocking and with the peer's address, and is never registered with Asio's reactor.
#pragma once

#include <sys/socket.h>

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "lancer/core/server.hpp"
#include "lancer/core/transport.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/detail/frame_pool.hpp"
#include "source/detail/poll_set.hpp"
#include "source/detail/pooled.hpp"

namespace lancer::detail {

namespace asio = boost::asio;

class stream_transport final : public transport, public poll_target {
 public:
  // Takes `fd` (connected, non-blocking) and adds it to `set`. `peer`, as accept gave it,
  // names the other end in logs (an AF_UNIX peer is "unix"). Throws std::system_error if the
  // socket cannot be watched; `fd` is closed then.
  stream_transport(int fd, poll_set& set, const sockaddr* peer, socklen_t peer_len);
  ~stream_transport() override;
  stream_transport(const stream_transport&) = delete;
  stream_transport& operator=(const stream_transport&) = delete;

  // Transports come and go with connections: recycle their memory like coroutine frames.
  static void* operator new(std::size_t n) { return frame_pool::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_pool::deallocate(p, n); }

  void start_read(connection& c, std::size_t limit) override;
  void start_write(connection& c) override;
  void shutdown_write() noexcept override;
  void close() noexcept override;
  bool input_pending() noexcept override;
  std::string_view peer_address() const override { return {peer_, peer_len_}; }
  std::string_view local_address() const override;

  void on_ready(std::uint32_t events) noexcept override;

 private:
  void read_now(std::size_t limit);
  void write_now();

  poll_set& set_;
  connection* conn_ = nullptr;   // the connection it reports to, once it asked for something
  mutable std::string local_;    // getsockname's answer, formatted on first use
  int fd_;                       // -1 once closed
  std::uint32_t want_read_ = 0;  // a read waits for input: its limit in bytes (0: none)
  bool readable_ = true;         // input may be waiting: an edge since the last short read
  bool writable_ = true;         // output may be taken: an edge since the last EAGAIN
  bool want_write_ = false;      // a write waits for the socket to take output
  // The peer half-closed or the socket failed (EPOLLRDHUP, EPOLLHUP, EPOLLERR): a short read
  // no longer means "nothing more", as the EOF or the error is still to be read.
  bool peer_done_ = false;
  std::uint8_t peer_len_ = 0;
  char peer_[53];  // "[v6 address]:port" at most
};

// Accepts what is waiting on the listening socket `listen_fd`, at most `max` connections,
// and hands each to `srv` (with TCP_NODELAY if `no_delay`). Returns 0 when the caller should
// wait for the listening socket to be readable again, or the errno (EMFILE, ENFILE, ENOBUFS,
// ENOMEM) for which it should pause accepting. EMFILE also means "close to the file limit":
// an accepted descriptor within k_fd_headroom of it pauses accepting before the limit is hit.
int accept_burst(int listen_fd, server& srv, poll_set& set, bool no_delay, int max = 64);

// Descriptors kept free below the process's file limit. A process that has used its last
// descriptor fails in odd places: a log file or a static file cannot be opened, and a
// sanitizer's runtime (which makes a pipe to probe memory) reports false errors. So
// accepting pauses once a new connection's descriptor comes within this many of the limit
// (descriptors are handed out lowest first, so every lower one is in use then), and a
// reserve of two held descriptors is given back for whatever needs one meanwhile.
constexpr int k_fd_headroom = 8;

// The process-wide reserve: two descriptors (a pipe) held while accepting goes on, given back
// when it pauses near the file limit, taken again before it resumes. Thread-safe.
// Returns false if it cannot be held (no descriptor free, or still too close to the limit).
bool hold_fd_reserve() noexcept;
void release_fd_reserve() noexcept;

// Sockets and acceptors bound to the io_context's own executor type, not the type-erased
// any_io_executor: no type-erased dispatch per completion.
template <class Protocol>
using acceptor_on = asio::basic_socket_acceptor<Protocol, asio::io_context::executor_type>;

// An acceptor and its loop. On EMFILE/ENFILE it logs once, pauses, and tries again; the
// connections the server has go on being served meanwhile.
template <class Protocol>
struct listener : std::enable_shared_from_this<listener<Protocol>> {
  server* srv = nullptr;
  std::unique_ptr<acceptor_on<Protocol>> acceptor;
  std::unique_ptr<asio::steady_timer> pause;
  poll_set* set = nullptr;  // the io_context's: where accepted sockets are watched
  std::chrono::milliseconds accept_pause{100};
  bool no_delay = false;  // TCP_NODELAY on accepted sockets
  bool accepting = false;
  bool paused_logged = false;

  void start(server& s, std::unique_ptr<acceptor_on<Protocol>> a) {
    hold_fd_reserve();
    srv = &s;
    acceptor = std::move(a);
    asio::io_context& io = s.sched().reactor();
    set = &asio::use_service<poll_set>(io);
    pause = std::make_unique<asio::steady_timer>(io);
    accepting = true;
    wait_next();
  }

  // Takes every connection already queued on the socket (at most the backlog's worth).
  void accept_pending() {
    if (accepting && acceptor) accept_burst(acceptor->native_handle(), *srv, *set, no_delay, 4096);
  }

  void stop() noexcept {
    accepting = false;
    boost::system::error_code ec;
    if (acceptor) acceptor->close(ec);
    if (pause) pause->cancel();
  }

  void wait_next() {
    if (!accepting) return;
    acceptor->async_wait(asio::socket_base::wait_read,
                         pooled([self = this->shared_from_this()](
                                    const boost::system::error_code& ec) { self->ready(ec); }));
  }

  void ready(const boost::system::error_code& ec) {
    if (!accepting) return;
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        log(log_level::warn, "server", "waiting for connections failed: {}", ec.message());
        pause_then_retry();
      }
      return;
    }
    if (paused_logged && !hold_fd_reserve()) {  // still at the file limit: wait on
      pause_then_retry();
      return;
    }
    const int err = accept_burst(acceptor->native_handle(), *srv, *set, no_delay);
    if (err == 0) {
      if (paused_logged) {
        log(log_level::info, "server", "accept resumed");
        paused_logged = false;
      }
      wait_next();
      return;
    }
    if (err == EMFILE || err == ENFILE) release_fd_reserve();
    if (!paused_logged) {
      log(log_level::warn, "server", "accept paused: too many open files ({})",
          std::generic_category().message(err));
      paused_logged = true;
    }
    pause_then_retry();
  }

  void pause_then_retry() {
    pause->expires_after(accept_pause);
    pause->async_wait([self = this->shared_from_this()](const boost::system::error_code& wec) {
      if (!wec) self->ready({});
    });
  }
};

}  // namespace lancer::detail
