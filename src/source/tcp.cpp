#include "lancer/source/tcp.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include "lancer/core/connection.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"

namespace lancer {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::string endpoint_text(const tcp::endpoint& e) {
  const auto a = e.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), e.port())
                   : fmt::format("{}:{}", a.to_string(), e.port());
}

std::error_code to_std(const boost::system::error_code& ec) {
  if (ec == asio::error::eof) return eof_error();
  return ec;  // Boost.System converts, keeping system and generic errors comparable
}

// A connected socket. Handlers hold the state through a shared_ptr, so a completion that
// arrives after the connection was closed finds `closed` set instead of freed memory.
struct socket_state {
  explicit socket_state(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  connection* conn = nullptr;  // while open
  bool closed = false;
  std::string peer, local;
};

constexpr std::size_t k_read_step = 4096;  // one pooled block: no malloc per read

void read_now(const std::shared_ptr<socket_state>& s, std::size_t limit);

void wait_then_read(const std::shared_ptr<socket_state>& s, std::size_t limit) {
  s->socket.async_wait(tcp::socket::wait_read, [s, limit](const boost::system::error_code& ec) {
    if (s->closed || s->conn == nullptr) return;
    if (ec) return s->conn->on_read(to_std(ec));
    read_now(s, limit);
  });
}

void read_now(const std::shared_ptr<socket_state>& s, std::size_t limit) {
  connection& c = *s->conn;
  const std::span<char> room = c.inbound().prepare(std::min(limit, k_read_step));
  boost::system::error_code ec;
  const std::size_t n = s->socket.read_some(asio::buffer(room.data(), room.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    wait_then_read(s, limit);
    return;
  }
  if (!ec) c.inbound().commit(n);
  c.on_read(to_std(ec));
}

void write_now(const std::shared_ptr<socket_state>& s) {
  connection& c = *s->conn;
  const std::string_view out = c.outbound().view();
  boost::system::error_code ec;
  const std::size_t n = s->socket.write_some(asio::buffer(out.data(), out.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    s->socket.async_wait(tcp::socket::wait_write, [s](const boost::system::error_code& wec) {
      if (s->closed || s->conn == nullptr) return;
      if (wec) return s->conn->on_written(to_std(wec));
      write_now(s);
    });
    return;
  }
  if (!ec) c.outbound().consume(n);
  c.on_written(to_std(ec));
}

class tcp_transport final : public transport {
 public:
  explicit tcp_transport(std::shared_ptr<socket_state> s) : s_(std::move(s)) {}
  ~tcp_transport() override { close(); }

  void start_read(connection& c, std::size_t limit) override {
    s_->conn = &c;
    read_now(s_, limit);
  }
  void start_write(connection& c) override {
    s_->conn = &c;
    write_now(s_);
  }
  void shutdown_write() noexcept override {
    boost::system::error_code ec;
    s_->socket.shutdown(tcp::socket::shutdown_send, ec);
  }
  void close() noexcept override {
    if (s_->closed) return;
    s_->closed = true;
    s_->conn = nullptr;
    boost::system::error_code ec;
    s_->socket.close(ec);  // pending waits end with operation_aborted and find `closed`
  }
  std::string peer_address() const override { return s_->peer; }
  std::string local_address() const override { return s_->local; }

 private:
  std::shared_ptr<socket_state> s_;
};

}  // namespace

struct tcp_source::state {
  state(address a, tcp_options o) : where(std::move(a)), options(o) {}
  address where;
  tcp_options options;
  server* srv = nullptr;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> pause;
  std::uint16_t port = 0;
  bool accepting = false;
  bool paused_logged = false;
};

namespace {

void accept_next(const std::shared_ptr<tcp_source::state>& st);

}  // namespace

tcp_source::tcp_source(address where, tcp_options options)
    : state_(std::make_shared<state>(std::move(where), options)) {
  if (state_->where.connector != address::kind::tcp) {
    throw std::invalid_argument("lancer::tcp_source: not a tcp address: " +
                                state_->where.to_string());
  }
}

tcp_source::~tcp_source() {
  stop();
}

std::string tcp_source::name() const {
  address shown = state_->where;
  if (state_->port != 0) shown.port = state_->port;
  return shown.to_string();
}

std::uint16_t tcp_source::port() const noexcept {
  return state_->port;
}

void tcp_source::start(server& srv) {
  state& st = *state_;
  st.srv = &srv;
  asio::io_context& io = srv.sched().reactor();
  boost::system::error_code ec;
  std::string host = st.where.host == "localhost" ? "127.0.0.1" : st.where.host;
  const auto ip = asio::ip::make_address(host, ec);
  if (ec) throw std::system_error(ec, "tcp source " + st.where.to_string());
  const tcp::endpoint at{ip, st.where.port};
  auto acceptor = std::make_unique<tcp::acceptor>(io);
  auto fail = [&](const char* step) {
    if (ec) throw std::system_error(ec, fmt::format("{}: cannot {}", st.where.to_string(), step));
  };
  acceptor->open(at.protocol(), ec);
  fail("open a socket");
  acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (st.options.reuse_port) {
    acceptor->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    fail("set SO_REUSEPORT");
  }
  if (ip.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
  acceptor->bind(at, ec);
  fail("bind");
  acceptor->listen(st.options.backlog, ec);
  fail("listen");
  acceptor->non_blocking(true, ec);
  st.port = acceptor->local_endpoint().port();
  st.acceptor = std::move(acceptor);
  st.pause = std::make_unique<asio::steady_timer>(io);
  st.accepting = true;
  accept_next(state_);
}

void tcp_source::stop() noexcept {
  state& st = *state_;
  st.accepting = false;
  boost::system::error_code ec;
  if (st.acceptor) st.acceptor->close(ec);
  if (st.pause) st.pause->cancel();
}

namespace {

void accept_next(const std::shared_ptr<tcp_source::state>& st) {
  if (!st->accepting) return;
  st->acceptor->async_accept([st](const boost::system::error_code& ec, tcp::socket socket) {
    if (!st->accepting) return;
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
      // Out of file descriptors: serve what we have, try again shortly.
      if (!st->paused_logged) {
        log(log_level::warn, "server", "accept paused: too many open files ({})", ec.message());
        st->paused_logged = true;
      }
      st->pause->expires_after(st->options.accept_pause);
      st->pause->async_wait([st](const boost::system::error_code& wec) {
        if (!wec) accept_next(st);
      });
      return;
    }
    if (st->paused_logged) {
      log(log_level::info, "server", "accept resumed");
      st->paused_logged = false;
    }
    if (!ec) {
      boost::system::error_code oec;
      if (st->options.no_delay) socket.set_option(tcp::no_delay(true), oec);
      socket.non_blocking(true, oec);
      auto s = std::make_shared<socket_state>(std::move(socket));
      s->peer = endpoint_text(s->socket.remote_endpoint(oec));
      s->local = endpoint_text(s->socket.local_endpoint(oec));
      st->srv->add_connection(std::make_unique<tcp_transport>(std::move(s)));
    } else if (ec != asio::error::operation_aborted) {
      log(log_level::warn, "server", "accept failed: {}", ec.message());
    }
    accept_next(st);
  });
}

}  // namespace
}  // namespace lancer
