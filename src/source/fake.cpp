#include "lancer/source/fake.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "lancer/core/connection.hpp"

namespace lancer {
namespace detail {

struct fake_fault {
  std::error_code error;  // empty: none
  bool always = false;

  // Returns the error to report now, if any, and disarms a one-shot fault.
  std::error_code take() noexcept {
    std::error_code e = error;
    if (!always) error.clear();
    return e;
  }
};

// The state both ends share. The transport end drops its connection pointer when closed.
struct fake_link {
  scheduler* sched = nullptr;
  sink* conn = nullptr;  // the server end, while open
  std::uint64_t id = 0;  // the server's connection id
  std::string peer;      // "fake/N"

  std::string to_server;  // written by the client, not read by the server yet
  std::size_t to_server_pos = 0;
  std::string to_client;  // sent by the server, not read by the client yet
  std::size_t window = std::numeric_limits<std::size_t>::max();

  bool client_shut = false;  // client half-closed
  bool client_reset = false;
  bool server_shut = false;  // server half-closed (FIN)
  bool server_closed = false;
  bool server_reset = false;  // closed with input it never read: a real socket sends a reset
  bool read_pending = false;  // the server waits for bytes
  std::size_t read_limit = 0;
  bool write_pending = false;  // the server waits for window
  fake_fault read_fault;
  fake_fault write_fault;

  std::size_t to_server_left() const noexcept { return to_server.size() - to_server_pos; }

  // Serves a pending or new server read. Returns false if it must wait for the client.
  bool serve_read(sink& c, std::size_t limit) {
    if (std::error_code e = read_fault.take()) return c.on_read(e), true;
    if (client_reset) return c.on_read(std::make_error_code(std::errc::connection_reset)), true;
    if (to_server_left() > 0) {
      const std::size_t n = std::min(limit, to_server_left());
      c.inbound().append(std::string_view(to_server).substr(to_server_pos, n));
      to_server_pos += n;
      if (to_server_pos == to_server.size()) {
        to_server.clear();
        to_server_pos = 0;
      }
      c.on_read({});
      return true;
    }
    if (client_shut) return c.on_read(eof_error()), true;
    return false;
  }

  // Serves a pending or new server write. Returns false if it must wait for window.
  bool serve_write(sink& c) {
    if (std::error_code e = write_fault.take()) return c.on_written(e), true;
    if (client_reset) return c.on_written(std::make_error_code(std::errc::broken_pipe)), true;
    const std::size_t room = window > to_client.size() ? window - to_client.size() : 0;
    const std::size_t n = std::min(room, c.outbound().size());
    if (n == 0) return false;
    to_client.append(c.outbound().view().substr(0, n));
    c.outbound().consume(n);
    c.on_written({});
    return true;
  }

  void wake_read() {
    if (read_pending && conn != nullptr) {
      read_pending = false;
      if (!serve_read(*conn, read_limit)) read_pending = true;
    }
  }
  void wake_write() {
    if (write_pending && conn != nullptr) {
      write_pending = false;
      if (!serve_write(*conn)) write_pending = true;
    }
  }
};

namespace {

class fake_transport final : public transport {
 public:
  explicit fake_transport(std::shared_ptr<fake_link> link) : link_(std::move(link)) {}
  ~fake_transport() override { close(); }

  void start_read(sink& c, std::size_t limit) override {
    link_->conn = &c;
    if (!link_->serve_read(c, limit)) {
      link_->read_pending = true;
      link_->read_limit = limit;
    }
  }
  void start_write(sink& c) override {
    link_->conn = &c;
    if (!link_->serve_write(c)) link_->write_pending = true;
  }
  void shutdown_write() noexcept override { link_->server_shut = true; }
  void close() noexcept override {
    if (!link_->server_closed && !link_->client_reset && link_->to_server_left() > 0) {
      link_->server_reset = true;
    }
    link_->server_shut = link_->server_closed = true;
    link_->conn = nullptr;
    link_->read_pending = link_->write_pending = false;
  }
  std::string_view peer_address() const override { return link_->peer; }
  std::string_view local_address() const override { return "fake"; }
  bool input_pending() noexcept override {
    if (link_->to_server_left() == 0) return false;
    link_->wake_read();  // an outstanding read takes them now
    return true;
  }

 private:
  std::shared_ptr<fake_link> link_;
};

}  // namespace
}  // namespace detail

// --- fake_client ----------------------------------------------------------------------------

void fake_client::write(std::string_view bytes) {
  if (link_->client_shut || link_->client_reset) {
    throw std::logic_error("lancer::fake_client::write after shutdown_write or reset");
  }
  link_->to_server.append(bytes);
  link_->wake_read();
}

void fake_client::write_unseen(std::string_view bytes) {
  if (link_->client_shut || link_->client_reset) {
    throw std::logic_error("lancer::fake_client::write_unseen after shutdown_write or reset");
  }
  link_->to_server.append(bytes);
}

void fake_client::shutdown_write() {
  link_->client_shut = true;
  link_->wake_read();
}

void fake_client::reset() {
  link_->client_reset = true;
  link_->to_server.clear();
  link_->to_server_pos = 0;
  link_->wake_read();
  link_->wake_write();
}

std::string fake_client::read() {
  std::string out = link_->to_client;  // a copy: the link keeps its capacity for the next reply
  link_->to_client.clear();
  link_->wake_write();
  return out;
}

std::size_t fake_client::available() const noexcept {
  return link_->to_client.size();
}

void fake_client::set_window(std::size_t bytes) {
  link_->window = bytes;
  link_->wake_write();
}

bool fake_client::server_done() const noexcept {
  return link_->server_shut;
}
bool fake_client::server_closed() const noexcept {
  return link_->server_closed;
}
bool fake_client::server_reset() const noexcept {
  return link_->server_reset;
}

void fake_client::fail_reads(std::errc e, bool always) {
  link_->read_fault = {std::make_error_code(e), always};
  link_->wake_read();
}

void fake_client::fail_writes(std::errc e, bool always) {
  link_->write_fault = {std::make_error_code(e), always};
  link_->wake_write();
}

std::string fake_client::exchange(std::string_view request) {
  if (!request.empty()) write(request);
  std::string reply;
  for (;;) {
    if (link_->sched != nullptr) link_->sched->run_until_idle();
    std::string got = read();
    if (got.empty()) break;
    reply += got;
  }
  return reply;
}

std::uint64_t fake_client::id() const noexcept {
  return link_->id;
}

// --- fake_source ----------------------------------------------------------------------------

fake_source::~fake_source() {
  stop();
}

void fake_source::start(server& srv) {
  server_ = &srv;
  accepting_ = true;
}

void fake_source::stop() noexcept {
  accepting_ = false;
}

fake_client fake_source::connect() {
  auto link = std::make_shared<detail::fake_link>();
  link->peer = "fake/" + std::to_string(next_++);
  if (!accepting_ || server_ == nullptr) {
    link->server_shut = link->server_closed = true;  // refused
    return fake_client{std::move(link)};
  }
  link->sched = &server_->sched();
  connection* c = server_->add_connection(std::make_unique<detail::fake_transport>(link));
  if (c != nullptr) {
    link->id = c->id();
  }
  return fake_client{std::move(link)};
}

}  // namespace lancer
