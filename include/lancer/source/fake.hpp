// lancer::fake_source: in-memory connections for tests. No sockets; the very same server code.
//
//   lancer::scheduler sched{lancer::clock::manual()};      // virtual time
//   lancer::server srv{sched, my_handler};
//   lancer::fake_source fake;
//   srv.attach_source(fake);
//   srv.run();
//   lancer::fake_client c = fake.connect();
//   CHECK(c.exchange("ping\n") == "pong\n");                // send, run until idle, read
//   sched.advance(30s);                                      // virtual time: deadlines fire
//
// The client end can write whole or in pieces, half-close, reset, read what the server sent,
// play a slow reader (a small receive window: the server's writes stall until it reads), and
// inject transport faults, once or for good, on the server's reads or writes. It is one side
// of a fake link (io/fake_network.hpp); dialer() lets a fake_network send programs' outbound
// connections to this source's server.
#pragma once

#include <cstdint>
#include <string>

#include "lancer/core/server.hpp"
#include "lancer/core/source.hpp"
#include "lancer/io/fake_network.hpp"

namespace lancer {

class fake_client : public fake_end {
 public:
  // True once the server shut its sending side (a FIN) or closed the connection.
  bool server_done() const noexcept { return peer_done(); }
  // True once the server closed the connection entirely. After its handler, a server first
  // shuts its sending side (server_done()) and reads until the client's EOF or for
  // server_options::linger, and only then closes.
  bool server_closed() const noexcept { return peer_closed(); }
  // True if the server closed while bytes the client sent were still unread: a real socket
  // would have sent a reset, which can destroy a response the client has not read yet.
  bool server_reset() const noexcept { return peer_reset(); }

  // The server's id for this connection (its log lines say conn/<id>); 0 if refused.
  std::uint64_t id() const noexcept { return id_; }

 private:
  friend class fake_source;
  fake_client(fake_end end, std::uint64_t id) : fake_end(std::move(end)), id_(id) {}
  std::uint64_t id_;
};

class fake_source : public source {
 public:
  fake_source() = default;
  ~fake_source() override;

  void start(server& srv) override;
  void stop() noexcept override;
  std::string name() const override { return "fake"; }
  bool in_memory() const noexcept override { return true; }

  // Opens a connection to the server, as a client's connect() would. If the source is not
  // accepting (not started, or stopped), the client is refused: server_closed() is true.
  fake_client connect();
  // The same, with the server's side naming its peer `peer_address` instead of "fake/N", as
  // a socket source would ("192.0.2.1:5000", "[2001:db8::1]:5000", "unix"): for code that
  // looks at the client's address (an access log, trusted proxies).
  fake_client connect(std::string peer_address);

  // For fake_network::serve: each call makes a connection to the server (its peer named
  // `client_name`) and returns the client's side as a transport. Throws connection_error
  // (connection_refused) while the source is not accepting.
  fake_network::dialer dialer();

 private:
  server* server_ = nullptr;
  bool accepting_ = false;
  std::uint64_t next_ = 1;  // numbers peer addresses: fake/1, fake/2, ...
};

}  // namespace lancer
