// The accept loop shared by the stream-socket sources (TCP, Unix, systemd). Private to src/.
// A connected socket becomes an io fd_transport (io/detail/fd_transport.hpp).
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

#include "io/detail/fd_transport.hpp"
#include "io/detail/poll_set.hpp"
#include "io/detail/pooled.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer::detail {

namespace asio = boost::asio;

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
