#include "lancer/source/tcp.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include "lancer/core/connection.hpp"
#include "lancer/core/server.hpp"
#include "lancer/log.hpp"
#include "source/detail/stream_socket.hpp"

namespace lancer {

namespace asio = boost::asio;
using asio::ip::tcp;

struct tcp_source::state {
  state(address a, tcp_options o) : where(std::move(a)), options(o) {}
  address where;
  tcp_options options;
  std::shared_ptr<detail::listener<tcp>> listen = std::make_shared<detail::listener<tcp>>();
  std::uint16_t port = 0;
};

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

int tcp_source::native_handle() const noexcept {
  const auto& a = state_->listen->acceptor;
  return a && a->is_open() ? a->native_handle() : -1;
}

void tcp_source::start(server& srv) {
  state& st = *state_;
  boost::system::error_code ec;
  const std::string host = st.where.host == "localhost" ? "127.0.0.1" : st.where.host;
  const auto ip = asio::ip::make_address(host, ec);
  if (ec) throw std::system_error(ec, "tcp source " + st.where.to_string());
  const tcp::endpoint at{ip, st.where.port};
  auto acceptor = std::make_unique<detail::acceptor_on<tcp>>(srv.sched().reactor());
  auto fail = [&](const char* step) {
    if (ec) throw std::system_error(ec, fmt::format("{}: cannot {}", st.where.to_string(), step));
  };
  if (st.options.exclusive && at.port() != 0) {
    // A socket without SO_REUSEPORT cannot bind where another is bound: a free probe, closed
    // again before the real listener binds.
    tcp::acceptor probe(srv.sched().reactor());
    probe.open(at.protocol(), ec);
    fail("open a socket");
    probe.set_option(tcp::acceptor::reuse_address(true), ec);
    if (ip.is_v6()) probe.set_option(asio::ip::v6_only(true), ec);
    probe.bind(at, ec);
    if (ec == asio::error::address_in_use) {
      throw std::system_error(std::make_error_code(std::errc::address_in_use),
                              st.where.to_string() + ": another server is listening there");
    }
    fail("bind");
  }
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
  st.listen->accept_pause = st.options.accept_pause;
  st.listen->no_delay = st.options.no_delay;
  st.listen->start(srv, std::move(acceptor));
}

void tcp_source::accept_pending() {
  state_->listen->accept_pending();
}

void tcp_source::stop() noexcept {
  state_->listen->stop();
}

}  // namespace lancer
