// The transport for stream sockets (TCP and Unix), shared by their sources. Private to src/.
//
// Reading is readiness-based: a non-blocking read, and async_wait on would_block, so a
// connection waiting for input holds no buffer, only its socket. A read that came back short
// means the kernel buffer was empty, so the next read starts with the wait (edge-triggered
// readiness is re-checked when the wait is armed: nothing that arrived meanwhile is missed).
// Handlers share the socket state through a shared_ptr and find it closed rather than freed.
#pragma once

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "lancer/core/connection.hpp"
#include "lancer/core/server.hpp"
#include "lancer/core/transport.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer::detail {

namespace asio = boost::asio;

inline std::error_code to_std(const boost::system::error_code& ec) {
  if (ec == asio::error::eof) return eof_error();
  return ec;  // Boost.System converts, keeping system and generic errors comparable
}

// A connected socket. Handlers hold the state through a shared_ptr, so a completion that
// arrives after the connection was closed finds `closed` set instead of freed memory.
template <class Socket>
struct socket_state {
  explicit socket_state(Socket s) : socket(std::move(s)) {}
  Socket socket;
  connection* conn = nullptr;  // while open
  bool closed = false;
  // The last read returned less than it asked for: the kernel had nothing more then. The
  // next read waits for readiness first instead of trying a read bound to fail.
  bool drained = false;
  std::string peer, local;
};

// Asio's own handler-memory recycling works only inside its run loop; our waits are started
// from coroutines the scheduler resumes, outside it, so Asio would malloc one operation per
// wait. This allocator takes them from the per-thread frame pool instead: no malloc per
// request in steady state (bench/http counts it over real sockets).
template <class T>
struct pool_allocator {
  using value_type = T;
  pool_allocator() noexcept = default;
  template <class U>
  pool_allocator(const pool_allocator<U>&) noexcept {}  // NOLINT: implicit, as Asio rebinds
  T* allocate(std::size_t n) { return static_cast<T*>(frame_pool::allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { frame_pool::deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const pool_allocator<U>&) const noexcept {
    return true;
  }
};

template <class Handler>
auto pooled(Handler&& h) {
  return asio::bind_allocator(pool_allocator<void>{}, std::forward<Handler>(h));
}

constexpr std::size_t k_read_step = 4096;  // one pooled block: no malloc per read

template <class Socket>
void read_now(const std::shared_ptr<socket_state<Socket>>& s, std::size_t limit);

template <class Socket>
void wait_then_read(const std::shared_ptr<socket_state<Socket>>& s, std::size_t limit) {
  s->socket.async_wait(Socket::wait_read, pooled([s, limit](const boost::system::error_code& ec) {
                         if (s->closed || s->conn == nullptr) return;
                         if (ec) return s->conn->on_read(to_std(ec));
                         s->drained = false;
                         read_now(s, limit);
                       }));
}

template <class Socket>
void read_now(const std::shared_ptr<socket_state<Socket>>& s, std::size_t limit) {
  connection& c = *s->conn;
  const std::span<char> room = c.inbound().prepare(std::min(limit, k_read_step));
  boost::system::error_code ec;
  const std::size_t n = s->socket.read_some(asio::buffer(room.data(), room.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    wait_then_read(s, limit);
    return;
  }
  if (!ec) {
    c.inbound().commit(n);
    s->drained = n < room.size();
  }
  c.on_read(to_std(ec));
}

template <class Socket>
void write_now(const std::shared_ptr<socket_state<Socket>>& s) {
  connection& c = *s->conn;
  const std::string_view out = c.outbound().view();
  boost::system::error_code ec;
  const std::size_t n = s->socket.write_some(asio::buffer(out.data(), out.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    s->socket.async_wait(Socket::wait_write, pooled([s](const boost::system::error_code& wec) {
                           if (s->closed || s->conn == nullptr) return;
                           if (wec) return s->conn->on_written(to_std(wec));
                           write_now(s);
                         }));
    return;
  }
  if (!ec) c.outbound().consume(n);
  c.on_written(to_std(ec));
}

template <class Socket>
class stream_transport final : public transport {
 public:
  explicit stream_transport(std::shared_ptr<socket_state<Socket>> s) : s_(std::move(s)) {}
  ~stream_transport() override { close(); }

  void start_read(connection& c, std::size_t limit) override {
    s_->conn = &c;
    if (s_->drained) {
      wait_then_read(s_, limit);
    } else {
      read_now(s_, limit);
    }
  }
  void start_write(connection& c) override {
    s_->conn = &c;
    write_now(s_);
  }
  void shutdown_write() noexcept override {
    boost::system::error_code ec;
    s_->socket.shutdown(Socket::shutdown_send, ec);
  }
  void close() noexcept override {
    if (s_->closed) return;
    s_->closed = true;
    s_->conn = nullptr;
    boost::system::error_code ec;
    s_->socket.close(ec);  // pending waits end with operation_aborted and find `closed`
  }
  std::string_view peer_address() const override { return s_->peer; }
  std::string_view local_address() const override { return s_->local; }

 private:
  std::shared_ptr<socket_state<Socket>> s_;
};

// Sockets and acceptors bound to the io_context's own executor type, not the type-erased
// any_io_executor: smaller sockets and pending operations (memory per idle connection) and no
// type-erased dispatch per completion.
template <class Protocol>
using socket_on = asio::basic_stream_socket<Protocol, asio::io_context::executor_type>;
template <class Protocol>
using acceptor_on = asio::basic_socket_acceptor<Protocol, asio::io_context::executor_type>;

// An acceptor and its loop. On EMFILE/ENFILE it logs once, pauses, and tries again; the
// connections the server has go on being served meanwhile.
template <class Protocol>
struct listener : std::enable_shared_from_this<listener<Protocol>> {
  using socket_type = socket_on<Protocol>;

  server* srv = nullptr;
  std::unique_ptr<acceptor_on<Protocol>> acceptor;
  std::unique_ptr<asio::steady_timer> pause;
  std::chrono::milliseconds accept_pause{100};
  // Sets per-protocol options on an accepted socket and returns {peer, local} for logs.
  std::function<std::pair<std::string, std::string>(socket_type&)> prepare;
  bool accepting = false;
  bool paused_logged = false;

  void start(server& s, std::unique_ptr<acceptor_on<Protocol>> a) {
    srv = &s;
    acceptor = std::move(a);
    pause = std::make_unique<asio::steady_timer>(acceptor->get_executor());
    accepting = true;
    accept_next();
  }

  void stop() noexcept {
    accepting = false;
    boost::system::error_code ec;
    if (acceptor) acceptor->close(ec);
    if (pause) pause->cancel();
  }

  void accept_next() {
    if (!accepting) return;
    acceptor->async_accept(
        [self = this->shared_from_this()](const boost::system::error_code& ec, socket_type socket) {
          self->accepted(ec, std::move(socket));
        });
  }

  void accepted(const boost::system::error_code& ec, socket_type socket) {
    if (!accepting) return;
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
      if (!paused_logged) {
        log(log_level::warn, "server", "accept paused: too many open files ({})", ec.message());
        paused_logged = true;
      }
      pause->expires_after(accept_pause);
      pause->async_wait([self = this->shared_from_this()](const boost::system::error_code& wec) {
        if (!wec) self->accept_next();
      });
      return;
    }
    if (paused_logged) {
      log(log_level::info, "server", "accept resumed");
      paused_logged = false;
    }
    if (!ec) {
      boost::system::error_code oec;
      socket.non_blocking(true, oec);
      auto names = prepare(socket);
      auto st = std::make_shared<socket_state<socket_type>>(std::move(socket));
      st->peer = std::move(names.first);
      st->local = std::move(names.second);
      srv->add_connection(std::make_unique<stream_transport<socket_type>>(std::move(st)));
    } else if (ec != asio::error::operation_aborted) {
      log(log_level::warn, "server", "accept failed: {}", ec.message());
    }
    accept_next();
  }
};

}  // namespace lancer::detail
