// lancer::transport: how a connection's bytes reach the wire. Each source provides one.
//
// The connection drives its transport and the transport reports back, possibly synchronously
// from inside the call, possibly later (from a reactor completion or a fake peer):
//
//   start_read()  -> appends to conn.inbound(), then conn.on_read(error)
//   start_write() -> takes bytes from the front of conn.outbound(), then conn.on_written(error)
//
// At most one read and one write are outstanding at a time; the connection guarantees it.
// After close() the transport reports nothing more and never touches the connection again.
#pragma once

#include <string>
#include <system_error>

namespace lancer {

class connection;

class transport {
 public:
  virtual ~transport() = default;

  // Reads some bytes into c.inbound() (at most `limit` more), then calls c.on_read(ec):
  // ec is empty when bytes arrived, `eof` when the peer finished sending, or the error.
  virtual void start_read(connection& c, std::size_t limit) = 0;

  // Sends bytes from the front of c.outbound() (consuming what was sent), then calls
  // c.on_written(ec). Sending only part of it is fine: the connection asks again.
  virtual void start_write(connection& c) = 0;

  // Stops sending after what was written (half-close). Reading goes on.
  virtual void shutdown_write() noexcept = 0;

  // Closes both directions at once. Idempotent.
  virtual void close() noexcept = 0;

  // True if input has arrived that no read has taken yet. A look without waiting, for the
  // moment before a close: a server that is about to hang up on an idle connection reads a
  // request that just came instead. A read already outstanding may complete at once with
  // it (reporting through on_read as usual); otherwise the next start_read finds it. The
  // default says false; stream sockets ask the kernel.
  virtual bool input_pending() noexcept { return false; }

  // "address:port", a socket path, or "fake/N"; valid as long as the transport.
  virtual std::string_view peer_address() const = 0;
  virtual std::string_view local_address() const = 0;
};

// The error a transport gives for "the peer finished sending".
inline std::error_code eof_error() noexcept {
  return std::make_error_code(std::errc::no_message_available);
}

}  // namespace lancer
