// Opening streams: lancer::connect, and the network it goes through.
//
//   std::unique_ptr<lancer::stream> up =
//       co_await lancer::connect(lancer::parse_address("tcp/backend:8080", true), 5s);
//
// A connect never blocks the scheduler: a host name is resolved through Asio's resolver (via
// the Asio bridge), and the socket's connect finishes on its epoll edge. Errors throw
// lancer::connection_error naming the address: "tcp/10.0.0.9:8080: Connection refused",
// "tcp/nowhere.invalid:80: no such host", "tcp/10.0.0.9:8080: connect timed out".
//
// Programs that open streams take a `network&`: the real one (lancer::real_network()) in
// production, a lancer::fake_network (io/fake_network.hpp) in tests, which maps addresses to
// in-memory peers in virtual time.
#pragma once

#include <memory>

#include "lancer/io/address.hpp"
#include "lancer/io/stream.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/sched/task.hpp"

namespace lancer {

class network {
 public:
  virtual ~network() = default;
  // Opens a stream to `where` within `timeout`. Throws connection_error naming the address.
  virtual task<std::unique_ptr<stream>> connect(const address& where, clock::duration timeout,
                                                const stream_options& options = {}) = 0;
};

// The machine's network: TCP (IPv4, IPv6, names resolved asynchronously) and Unix sockets.
network& real_network() noexcept;

// real_network().connect(where, timeout, options).
task<std::unique_ptr<stream>> connect(const address& where, clock::duration timeout,
                                      const stream_options& options = {});

}  // namespace lancer
