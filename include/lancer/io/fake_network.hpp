// In-memory connections for tests: no sockets, virtual time, faults on demand.
//
// A fake link is a byte connection with two sides. A side is driven either by a transport
// (a server's connection, a stream a program opened) or by hand, through a fake_end: a test
// writes bytes (whole, in fragments, unseen), half-closes, resets, reads what the other side
// sent, plays a slow reader, and injects faults into the other side's transport reads and
// writes (Seastar's loopback socket with an error injector is the model).
//
// A fake_network maps addresses to in-memory peers, so that programs that open streams
// (forwarding, a proxy) are tested without sockets:
//
//   lancer::fake_network net;
//   net.serve(lancer::parse_address("tcp/10.0.0.2:80"), upstream_source.dialer());  // a server
//   net.serve(lancer::parse_address("tcp/10.0.0.3:80"),                             // a script
//             [](lancer::stream& s) -> lancer::task<> { ... });
//   auto up = co_await net.connect(lancer::parse_address("tcp/10.0.0.2:80"), 5s);
//
// An address nobody serves is refused (connection_refused); refuse() and hold() make served
// addresses misbehave.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "lancer/io/address.hpp"
#include "lancer/io/connect.hpp"
#include "lancer/io/stream.hpp"
#include "lancer/io/transport.hpp"
#include "lancer/sched/scheduler.hpp"
#include "lancer/sched/task.hpp"

namespace lancer {

namespace detail {
struct fake_link;
}

// One side of a fake link, driven by hand. Copies share the side.
class fake_end {
 public:
  // --- what this side sends --------------------------------------------------------------
  // Queues `bytes` for the other side, which reads them as it asks.
  void write(std::string_view bytes);
  // Queues `bytes` without telling the other side's transport: a read already waiting goes
  // on waiting, while its next read, and input_pending(), find them. Bytes that arrived while
  // the other side was busy elsewhere, their readiness not seen yet.
  void write_unseen(std::string_view bytes);
  // Half-close: after the bytes already written, the other side's reads see EOF.
  void shutdown_write();
  // Resets the link: the other side's pending and later reads and writes fail with
  // connection_reset. Bytes it had not read are lost, as with a real RST.
  void reset();

  // --- what this side receives -----------------------------------------------------------
  // Takes everything the other side sent so far (and lets a stalled writer there go on).
  std::string read();
  // Bytes the other side sent that read() has not taken yet.
  std::size_t available() const noexcept;
  // Slow reader: the other side may have at most `bytes` sent and unread; its writes wait.
  void set_window(std::size_t bytes);
  // True once the other side shut its sending side (a FIN) or closed.
  bool peer_done() const noexcept;
  // True once the other side closed its transport entirely.
  bool peer_closed() const noexcept;
  // True if the other side closed while bytes this side sent were still unread there (a
  // real socket would have sent a reset, which can destroy a response not read yet), or
  // reset the link itself.
  bool peer_reset() const noexcept;

  // --- faults on the other side's transport ----------------------------------------------
  // Its next read (or every one, if `always`) fails with `e`.
  void fail_reads(std::errc e, bool always = false);
  // Its next write (or every one, if `always`) fails with `e`.
  void fail_writes(std::errc e, bool always = false);

  // Writes `bytes`, runs the scheduler until idle, and returns what the other side sent.
  std::string exchange(std::string_view bytes);

 protected:
  fake_end(std::shared_ptr<detail::fake_link> link, int side) noexcept
      : link_(std::move(link)), side_(side) {}
  std::shared_ptr<detail::fake_link> link_;
  int side_;  // 0 or 1
};

// A new fake link whose side 0 is a transport (named `peer_of_0` as its peer address, as a
// server names its client "fake/1") and whose side 1 is driven by hand. `sched`, when given,
// is what exchange() runs.
std::pair<std::unique_ptr<transport>, fake_end> make_fake_link(std::string peer_of_0,
                                                               scheduler* sched = nullptr);
// A new fake link whose two sides are both transports.
std::pair<std::unique_ptr<transport>, std::unique_ptr<transport>> make_fake_pair(
    std::string peer_of_0, std::string peer_of_1);

class fake_network final : public network {
 public:
  // Makes one in-memory connection to whatever serves the address, and returns the
  // connecting side's transport (the other side is the server's).
  using dialer = std::function<std::unique_ptr<transport>(std::string client_name)>;
  // A peer played by a coroutine over its side of each connection (a stream).
  using script = std::function<task<>(stream&)>;

  // Connections to `where` go to `d` (a fake_source's dialer(): a real server).
  void serve(const address& where, dialer d);
  // Connections to `where` are each played by a new thread running `s`.
  void serve(const address& where, script s);
  // Connections to `where` are refused, or reset at once, or never answered (the connect
  // waits for its timeout), until serve() is called for it again.
  enum class trouble { refuse, reset, hold };
  void fail(const address& where, trouble t);

  // The number of connections made to `where` so far.
  std::size_t connections(const address& where) const;

  task<std::unique_ptr<stream>> connect(const address& where, clock::duration timeout,
                                        const stream_options& options = {}) override;

 private:
  struct entry {
    dialer dial;
    trouble problem = trouble::refuse;
    bool failing = true;
    std::size_t made = 0;
  };
  std::map<std::string, entry> peers_;  // by address::to_string()
  std::size_t next_ = 1;                // numbers the clients: fake/c1, fake/c2, ...
};

}  // namespace lancer
