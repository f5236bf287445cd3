// lancer::connection: one client connection as its handler sees it: a stream (io/stream.hpp)
// bound to the server's descriptor.
//
//   for (;;) {
//     const std::size_t n = co_await conn.read();  // wait for more bytes (0: EOF)
//     std::string_view in = conn.buffered();       // everything not consumed yet
//     conn.write(reply(in));                       // appended to the outbound buffer
//     conn.consume(in.size());
//     if (n == 0 && conn.at_eof()) break;
//   }
//
// Everything a stream does, a connection does; what differs is who wakes its waiters and keeps
// its deadline. When the transport reports bytes, EOF, an error or a drained buffer, the
// connection flags its descriptor, and the server's managing coroutine wakes the waiting
// thread in its next turn; deadlines sit in the server's deadline heap. So the server's cost
// per turn follows the connections with news, never all of them. A connection past its
// deadline is closed, and the pending co_await of its handler throws `lancer::timed_out`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "lancer/io/stream.hpp"
#include "lancer/io/transport.hpp"
#include "lancer/sched/clock.hpp"

namespace lancer {

class server;
struct connection_tester;
namespace detail {
struct descriptor;
}

class connection final : public stream {
 public:
  connection(server& srv, detail::descriptor& desc, std::uint64_t id,
             std::unique_ptr<transport> t) noexcept;

  // A number unique within its server; log lines name the connection "conn/<id>".
  std::uint64_t id() const noexcept { return id_; }
  // "conn/<id>".
  std::string name() const override;

  // True once the server is stopping or draining: finish the current exchange and return.
  bool draining() const noexcept;

  // The deadline: when it passes the connection is closed and its thread gets a timeout.
  // While the server drains, no deadline is later than the drain's.
  void set_deadline(clock::time_point t) noexcept override;
  void clear_deadline() noexcept override;
  clock::time_point deadline() const noexcept override;
  // In place of the deadline: at `t` the handler's thread is woken (a pending read returns 0,
  // as after require_wakeback()) and nothing is closed. A deadline set later replaces it.
  // While the server drains, the wake comes 1 ms before the drain's deadline at the latest,
  // so the handler has a last turn before what is left is cut off.
  void wake_at(clock::time_point t) noexcept;

 private:
  friend class server;
  friend struct detail::descriptor;
  friend struct connection_tester;  // tests reach the buffers through it

  void on_event() noexcept override;

  server& server_;
  detail::descriptor& desc_;
  std::uint64_t id_;
};

}  // namespace lancer
