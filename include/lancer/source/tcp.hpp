// lancer::tcp_source: accepts TCP connections (IPv4 or IPv6) on the scheduler's reactor.
//
//   lancer::tcp_source tcp{lancer::parse_address("tcp/$4:8080")};
//   srv.attach_source(tcp);
//   srv.run();              // binds and listens; throws std::system_error if it cannot
//   sched.run_forever();
//
// Each accepted socket gets TCP_NODELAY and goes to server::add_connection. Reading is
// readiness-based: a connection waiting for input holds no buffer, only its socket. If
// accepting fails for lack of file descriptors (EMFILE, ENFILE), the source logs it once,
// pauses accepting for `accept_pause`, and resumes; the connections it has go on being served.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "lancer/core/source.hpp"
#include "lancer/io/address.hpp"

namespace lancer {

struct tcp_options {
  int backlog = 1024;      // listen() backlog
  bool reuse_port = true;  // SO_REUSEPORT: one listener per thread
  // Refuse to start if another socket is bound to the address already (another server, or
  // a stale instance of this one): with SO_REUSEPORT the kernel would let both listen and
  // share the connections. Set false for the second and later listeners a process opens on
  // one port on purpose (one per thread), or to share a port with another process.
  bool exclusive = true;
  bool no_delay = true;                         // TCP_NODELAY on accepted sockets
  std::chrono::milliseconds accept_pause{100};  // after EMFILE/ENFILE
};

class tcp_source final : public source {
 public:
  // `where` must be a tcp address. Nothing is bound until start().
  explicit tcp_source(address where, tcp_options options = {});
  ~tcp_source() override;

  // Binds and listens (SO_REUSEADDR, and SO_REUSEPORT if asked), then accepts for `srv`.
  // Throws std::system_error naming the address if the socket cannot be bound or listened on,
  // or (exclusive) if another socket is bound there: "another server is listening there",
  // with std::errc::address_in_use.
  void start(server& srv) override;
  void stop() noexcept override;
  void accept_pending() override;
  std::string name() const override;

  // The port listened on (useful with port 0, "any free port"); 0 before start().
  std::uint16_t port() const noexcept;
  // The listening socket's descriptor while started, -1 otherwise. The source still owns it.
  int native_handle() const noexcept;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace lancer
