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
// inject transport faults, once or for good, on the server's reads or writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "lancer/core/server.hpp"
#include "lancer/core/source.hpp"

namespace lancer {

namespace detail {
struct fake_link;
}

class fake_client {
 public:
  // --- what the client sends -------------------------------------------------------------
  // Queues `bytes` for the server. The server reads them as its handler asks.
  void write(std::string_view bytes);
  // Queues `bytes` without telling the server's transport: a read already waiting goes on
  // waiting, while its next read, and connection::input_pending(), find them. Bytes that
  // arrived while the server was busy elsewhere, their readiness not seen yet.
  void write_unseen(std::string_view bytes);
  // Half-close: after the bytes already written, the server's reads see EOF.
  void shutdown_write();
  // Resets the connection: the server's pending and later reads and writes fail with
  // connection_reset. Bytes the server had not read are lost, as with a real RST.
  void reset();

  // --- what the client receives ----------------------------------------------------------
  // Takes everything the server sent so far (and lets a stalled server write go on).
  std::string read();
  // Bytes the server sent that read() has not taken yet.
  std::size_t available() const noexcept;
  // Slow reader: the server may have at most `bytes` sent and unread; its writes wait beyond.
  void set_window(std::size_t bytes);
  // True once the server shut its sending side (a FIN) or closed the connection.
  bool server_done() const noexcept;
  // True once the server closed the connection entirely. After its handler, a server first
  // shuts its sending side (server_done()) and reads until the client's EOF or for
  // server_options::linger, and only then closes.
  bool server_closed() const noexcept;
  // True if the server closed while bytes the client sent were still unread: a real socket
  // would have sent a reset, which can destroy a response the client has not read yet.
  bool server_reset() const noexcept;

  // --- faults (Seastar-style error injection) -------------------------------------------
  // The server's next transport read (or every one, if `always`) fails with `e`.
  void fail_reads(std::errc e, bool always = false);
  // The server's next transport write (or every one, if `always`) fails with `e`.
  void fail_writes(std::errc e, bool always = false);

  // --- the common case -------------------------------------------------------------------
  // Writes `request`, runs the scheduler until idle, and returns what the server sent.
  std::string exchange(std::string_view request);

  // The server's id for this connection (its log lines say conn/<id>); 0 if refused.
  std::uint64_t id() const noexcept;

 private:
  friend class fake_source;
  explicit fake_client(std::shared_ptr<detail::fake_link> link) : link_(std::move(link)) {}
  std::shared_ptr<detail::fake_link> link_;
};

class fake_source : public source {
 public:
  fake_source() = default;
  ~fake_source() override;

  void start(server& srv) override;
  void stop() noexcept override;
  std::string name() const override { return "fake"; }

  // Opens a connection to the server, as a client's connect() would. If the source is not
  // accepting (not started, or stopped), the client is refused: server_closed() is true.
  fake_client connect();

 private:
  server* server_ = nullptr;
  bool accepting_ = false;
  std::uint64_t next_ = 1;  // numbers peer addresses: fake/1, fake/2, ...
};

}  // namespace lancer
