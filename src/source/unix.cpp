#include "lancer/source/unix.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>

#include <fmt/format.h>

#include "lancer/core/server.hpp"
#include "source/detail/stream_socket.hpp"

namespace lancer {

namespace asio = boost::asio;
using local_stream = asio::local::stream_protocol;

struct unix_source::state {
  state(address a, unix_options o) : where(std::move(a)), options(o) {}
  address where;
  unix_options options;
  std::shared_ptr<detail::listener<local_stream>> listen =
      std::make_shared<detail::listener<local_stream>>();
  bool created = false;    // the socket file is ours to remove
  bool keep_path = false;  // ... but another process accepts there now
};

unix_source::unix_source(address where, unix_options options)
    : state_(std::make_shared<state>(std::move(where), options)) {
  if (state_->where.connector != address::kind::unix_socket) {
    throw std::invalid_argument("lancer::unix_source: not a unix address: " +
                                state_->where.to_string());
  }
}

unix_source::~unix_source() {
  stop();
}

std::string unix_source::name() const {
  return state_->where.to_string();
}

namespace {

// Removes a stale socket file at `path`; refuses a live one or a file that is not a socket.
void clear_path(const std::string& path, asio::io_context& io) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // nothing there
  if (!S_ISSOCK(st.st_mode)) {
    throw std::system_error(std::make_error_code(std::errc::file_exists),
                            "unix/" + path + ": exists and is not a socket; not touching it");
  }
  local_stream::socket probe(io);
  boost::system::error_code ec;
  probe.connect(local_stream::endpoint(path), ec);
  if (!ec) {
    throw std::system_error(std::make_error_code(std::errc::address_in_use),
                            "unix/" + path + ": another server is listening there");
  }
  ::unlink(path.c_str());  // nobody answers: left by a process that is gone
}

}  // namespace

void unix_source::start(server& srv) {
  state& st = *state_;
  asio::io_context& io = srv.sched().reactor();
  const std::string& path = st.where.path;
  clear_path(path, io);
  auto acceptor = std::make_unique<detail::acceptor_on<local_stream>>(io);
  boost::system::error_code ec;
  auto fail = [&](const char* step) {
    if (ec) throw std::system_error(ec, fmt::format("unix/{}: cannot {}", path, step));
  };
  acceptor->open(local_stream(), ec);
  fail("open a socket");
  acceptor->bind(local_stream::endpoint(path), ec);
  fail("bind");
  st.created = true;
  if (::chmod(path.c_str(), st.options.mode) != 0) {
    ec.assign(errno, boost::system::system_category());
    fail("set the socket file's mode");
  }
  acceptor->listen(st.options.backlog, ec);
  fail("listen");
  acceptor->non_blocking(true, ec);
  st.listen->start(srv, std::move(acceptor));
}

void unix_source::accept_pending() {
  state_->listen->accept_pending();
}

void unix_source::stop() noexcept {
  state& st = *state_;
  st.listen->stop();
  if (st.created && !st.keep_path) {
    ::unlink(st.where.path.c_str());
    st.created = false;
  }
}

void unix_source::keep_path() noexcept {
  state_->keep_path = true;
}

int unix_source::native_handle() const noexcept {
  const auto& a = state_->listen->acceptor;
  return a && a->is_open() ? a->native_handle() : -1;
}

}  // namespace lancer
