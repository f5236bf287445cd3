// lancer::server: runs a handler coroutine for every connection its sources bring.
//
//   lancer::scheduler sched;
//   lancer::server srv{sched, [](lancer::connection& c, lancer::frame&, lancer::pubframe&)
//                                 -> lancer::task<> { ... }};
//   srv.attach_source(src);
//   srv.run();      // starts the sources and the managing coroutine
//   sched.run();    // the scheduler does the running
//
// For each connection, add_connection creates a descriptor {connection, deadline, bound
// thread, frame}, calls the handler and binds the coroutine it returns to the connection as a
// new thread (the descriptor owns the thread: the scheduler tells it when the handler ends). The
// managing coroutine (one thread per server) then, each turn it runs:
//   - wakes the threads whose connections flagged themselves (data, EOF, error, drained,
//     require_wakeback) — a ready list, so the cost follows the connections with news;
//   - times out the threads whose deadline passed (a deadline heap, same reasoning): the
//     pending co_await throws `timed_out`, reads fail from then on, and after `grace` the
//     connection is closed and a thread still running is cancelled;
//   - closes the connections whose handler returned, once their output is sent, and reaps them.
// When nothing is ready it sleeps until a connection flags itself or a deadline falls due.
//
// No exception reaches the scheduler: a handler that throws is logged with its connection id
// ("conn/42"), its connection is closed, and every other connection carries on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "lancer/core/connection.hpp"
#include "lancer/core/frame.hpp"
#include "lancer/core/source.hpp"
#include "lancer/io/stream.hpp"
#include "lancer/io/transport.hpp"
#include "lancer/sched/detail/timer_heap.hpp"
#include "lancer/sched/scheduler.hpp"
#include "lancer/sched/task.hpp"

namespace lancer {

namespace detail {
struct descriptor;
}

// Each connection's stream options (high_water, read_chunk, max_buffered: io/stream.hpp), and
// the server's own.
struct server_options : stream_options {
  clock::duration timeout = std::chrono::seconds(60);  // each new connection's deadline; 0: none
  clock::duration grace = std::chrono::seconds(1);     // after a timeout, until the cut-off
  // After a handler is done and its output sent, the server shuts its sending side (a FIN)
  // and reads and drops what the peer still sends, until the peer's EOF or for at most this
  // long, before it closes (RFC 9112 9.6). Closing a socket with unread input makes the
  // kernel reset the connection, which can destroy the last response before the peer has
  // read it. 0: close at once.
  clock::duration linger = std::chrono::seconds(2);
};

struct server_stats {
  std::uint64_t accepted = 0;        // connections handed to a handler
  std::uint64_t refused = 0;         // offered while stopping or draining
  std::uint64_t closed = 0;          // connections reaped
  std::uint64_t timed_out = 0;       // deadlines passed
  std::uint64_t cut_off = 0;         // threads cancelled after their grace or at a drain's end
  std::uint64_t handler_errors = 0;  // handlers that ended with an exception
  std::uint64_t wakebacks = 0;       // wakebacks the managing coroutine sent
};

class server {
 public:
  using handler = std::function<task<>(connection&, frame&, pubframe&)>;

  server(scheduler& sched, handler h, server_options options = {});
  // Stops the sources, destroys every handler thread still alive (their RAII runs) and
  // closes every connection.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Adds a source; it is started by run() (or at once if the server is already running).
  // A source serves one server; either may be destroyed first. Throws std::logic_error if
  // `src` is attached to a server already.
  void attach_source(source& src);
  // Stops `src` and forgets it. A no-op if it is not attached here.
  void detach_source(source& src) noexcept;

  // Starts the attached sources and the managing coroutine. Returns at once: the scheduler
  // runs them. Throws std::logic_error if called twice.
  void run();

  // Stops taking connections, closes every connection now and cancels every handler thread.
  void stop();

  // Graceful stop: takes the connections the sources have queued (accept_pending), stops
  // taking more, and lets the handlers finish. Threads waiting for input are woken (their
  // read returns 0; draining() is true) so they can end between requests. No deadline is
  // later than `deadline` from now on; at it, whatever is left is closed, its thread
  // cancelled, and each such connection logged ("cut off at the drain deadline").
  void drain(clock::time_point deadline);

  // True after stop() or drain(): handlers should finish what they are doing and return.
  bool draining() const noexcept { return stopping_; }

  // True once the server is draining or stopped and has no connection left: the end of a
  // drain (or stop). It stays true: a draining server takes no new connection.
  bool is_drained() const noexcept { return stopping_ && live_ == 0; }

  // Resumes the awaiting thread once is_drained() holds: in the turn after the last connection
  // is reaped, or at once (without suspending) if it holds already. Any number of threads
  // may wait. No polling: the server signals each waiter (value_ready) when the last
  // connection goes. If the server is destroyed first, the waiters are resumed too (the
  // server must not be touched then). Cancellable like any other await.
  //
  //   srv.drain(sched.now() + 10s);
  //   co_await srv.drained();
  task<> drained();
  // The same, but gives up at `deadline` on the scheduler's clock: true if drained, false if
  // the deadline came first.
  task<bool> drained_until(clock::time_point deadline);
  // Calls `f` once is_drained() holds: at once if it holds already, else on the scheduler's
  // thread right after the last connection is reaped (inside the server: `f` must not destroy
  // it; to do that, signal a thread or stop the scheduler). Several callbacks are called in
  // the order they were given. An exception from `f` is logged, not thrown. Callbacks still
  // waiting when the server is destroyed are dropped uncalled.
  void on_drained(std::function<void()> f);

  // What a source calls for each new connection. The server owns `t` from now on. Returns
  // the connection, or null if the server is stopping (the transport is then closed).
  connection* add_connection(std::unique_ptr<transport> t);

  // Puts a layer (io/layer.hpp: TLS, framing) on every connection from now on, whatever its
  // source: `wrap` gets the source's transport and returns the one the connection uses.
  using layer_maker = std::function<std::unique_ptr<transport>(std::unique_ptr<transport>)>;
  void set_layer(layer_maker wrap) { layer_ = std::move(wrap); }

  scheduler& sched() noexcept { return sched_; }
  pubframe& shared() noexcept { return pub_; }
  const server_options& options() const noexcept { return options_; }
  const server_stats& stats() const noexcept { return stats_; }
  // Connections alive (handed over and not reaped yet).
  std::size_t connections() const noexcept { return live_; }

 private:
  friend class connection;

  friend class source;
  friend struct detail::descriptor;
  struct drain_waiter;  // a thread in drained_until (server.cpp)
  void check_drained() noexcept;
  void forget_source(source& src) noexcept;
  void thread_ended(detail::descriptor& d, bool finished, std::exception_ptr error) noexcept;
  task<> manage();
  void flag(detail::descriptor& d) noexcept;
  void wake_manager() noexcept;
  void process_ready();
  void process_deadlines();
  void expire(detail::descriptor& d);
  void try_finish(detail::descriptor& d);
  bool linger(detail::descriptor& d);
  void cut_off(detail::descriptor& d, const char* why);
  void reap(detail::descriptor& d) noexcept;
  void set_deadline(detail::descriptor& d, clock::time_point t, bool wake_only = false) noexcept;
  void clear_deadline(detail::descriptor& d) noexcept;

  scheduler& sched_;
  handler handler_;
  layer_maker layer_;  // wraps each source's transport, if set
  server_options options_;
  pubframe pub_;
  std::vector<source*> sources_;

  detail::descriptor* all_ = nullptr;         // every live descriptor
  detail::descriptor* ready_head_ = nullptr;  // flagged, waiting for the managing coroutine
  detail::descriptor* ready_tail_ = nullptr;
  detail::timer_heap_of<detail::descriptor> deadlines_;  // descriptors by deadline (lazily)
  std::size_t live_ = 0;
  std::uint64_t next_id_ = 1;
  drain_waiter* drain_waiters_ = nullptr;          // threads in drained_until
  std::vector<std::function<void()>> on_drained_;  // callbacks not called yet

  thread_id manager_;                  // the managing coroutine's thread
  clock::time_point manager_until_{};  // the deadline it sleeps until (max: none)
  clock::time_point drain_deadline_ = clock::time_point::max();  // no deadline is later
  bool manager_parked_ = false;                                  // it sleeps: a flag must wake it
  bool manager_woken_ = false;                                   // a wakeback is on its way to it
  bool running_ = false;
  bool stopping_ = false;
  bool destroying_ = false;  // in ~server: ending threads only mark their descriptors
  server_stats stats_;
};

}  // namespace lancer
