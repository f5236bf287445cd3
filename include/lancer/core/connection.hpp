// lancer::connection: one client connection as its handler sees it.
//
// A connection owns an inbound and an outbound buffer and drives the transport its source gave
// it. Handlers read and write through it:
//
//   for (;;) {
//     const std::size_t n = co_await conn.read();  // wait for more bytes (0: EOF)
//     std::string_view in = conn.buffered();       // everything not consumed yet
//     conn.write(reply(in));                       // appended to the outbound buffer
//     conn.consume(in.size());
//     if (n == 0 && conn.at_eof()) break;
//   }
//
// Waking up goes through the server's managing coroutine: when the transport reports bytes,
// EOF, an error or a drained buffer, the connection flags its descriptor; the managing
// coroutine wakes the handler's thread in its next turn. A connection past its deadline is
// closed, and the pending co_await of its thread throws `lancer::timed_out`.
//
// Writes are batched: `write` only appends. Bytes leave when the handler flushes, sends above
// the high-water mark, or waits for input (a read flushes first). So the answers to several
// buffered requests leave in one transport write.
//
// Memory: a handler waiting in read() with nothing buffered holds no buffer storage at all.
#pragma once

#include <coroutine>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "lancer/core/buffer.hpp"
#include "lancer/core/transport.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/sched/scheduler.hpp"

namespace lancer {

class server;
struct connection_tester;
namespace detail {
struct descriptor;
}

class connection {
 public:
  connection(server& srv, detail::descriptor& desc, std::uint64_t id, transport* t) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // A number unique within the process; log lines name the connection "conn/<id>".
  std::uint64_t id() const noexcept { return id_; }
  // The transport's names for the two ends; valid as long as the connection.
  std::string_view peer_address() const;
  std::string_view local_address() const;

  // --- input ---------------------------------------------------------------------------

  // The bytes received and not consumed yet.
  std::string_view buffered() const noexcept { return in_.view(); }
  // Drops the first `n` buffered bytes.
  void consume(std::size_t n) noexcept { in_.consume(n); }
  // Drops `n` buffered bytes starting `offset` bytes in (a header kept in front of a body).
  void erase(std::size_t offset, std::size_t n) noexcept { in_.erase(offset, n); }
  // True once the peer finished sending (every byte it sent is in buffered()).
  bool at_eof() const noexcept { return eof_; }
  // The transport error, if one happened (a reset, an injected fault, a timeout).
  std::error_code error() const noexcept { return error_; }

  class read_awaiter;
  // Waits for more input, after flushing pending output. Returns how many new bytes arrived;
  // 0 means the peer finished sending (at_eof()), or require_wakeback() or wake_at() woke the
  // thread. Throws lancer::connection_error (core/failure.hpp) on a transport error,
  // std::system_error on a read after EOF was reported (a handler looping on read() at EOF
  // would otherwise spin), `timed_out` past the deadline.
  [[nodiscard]] read_awaiter read();

  class read_and_wait_awaiter;
  // Returns the buffered bytes, waiting for some (as read() does) only if none are buffered.
  // An empty view means EOF (or a required wakeback). The view is valid until the next
  // read, consume or write.
  [[nodiscard]] read_and_wait_awaiter read_and_wait();

  // --- output --------------------------------------------------------------------------

  // Appends `bytes` to the outbound buffer. Nothing is sent until a flush, a send above the
  // high-water mark, or a read. Throws lancer::connection_error if the connection failed or
  // was cut off, std::system_error if the handler closed it itself.
  void write(std::string_view bytes);

  class flush_awaiter;
  // Sends everything written so far and waits until the transport took it all (a slow peer
  // makes this wait: that is the backpressure). Throws lancer::connection_error on a
  // transport error.
  [[nodiscard]] flush_awaiter flush();
  // Appends `bytes`, then waits only if the outbound buffer is above the server's high-water
  // mark, until it drains below half of it. Use it to stream large bodies in bounded memory.
  [[nodiscard]] flush_awaiter send(std::string_view bytes);
  // Bytes written and not yet taken by the transport.
  std::size_t unsent() const noexcept { return out_.size(); }

  // --- lifetime ------------------------------------------------------------------------

  // Stops accepting writes; what was written is still sent, then the connection closes.
  // (The server does this when the handler returns.)
  void close() noexcept;
  // Closes at once, dropping unsent bytes, and records `why` as the error.
  void abort(std::error_code why) noexcept;
  bool closed() const noexcept { return closing_ || aborted_; }

  // Makes the managing coroutine wake this connection's thread in its next turn (a pending
  // read then returns 0). Any layer may use it to poke a waiting handler.
  void require_wakeback() noexcept;

  // True once the server is stopping or draining: finish the current exchange and return.
  bool draining() const noexcept;

  // The deadline: when it passes the connection is closed and its thread gets a timeout.
  // While the server drains, no deadline is later than the drain's.
  void set_deadline(clock::time_point t) noexcept;
  void set_timeout(clock::duration d) noexcept;
  void clear_deadline() noexcept;
  clock::time_point deadline() const noexcept;
  // In place of the deadline: at `t` the handler's thread is woken (a pending read returns 0,
  // as after require_wakeback()) and nothing is closed. A deadline set later replaces it.
  // While the server drains, the wake comes 1 ms before the drain's deadline at the latest,
  // so the handler has a last turn before what is left is cut off.
  void wake_at(clock::time_point t) noexcept;

  // True if input has arrived that no read has taken yet: a look at the transport without
  // waiting, for the moment before a handler closes an idle connection.
  bool input_pending() noexcept;
  // The time on the server's scheduler clock (virtual under a manual clock).
  clock::time_point now() const noexcept;

  // --- for transports ------------------------------------------------------------------
  buffer& inbound() noexcept { return in_; }
  buffer& outbound() noexcept { return out_; }
  void on_read(std::error_code ec) noexcept;
  void on_written(std::error_code ec) noexcept;

  class read_awaiter {
   public:
    explicit read_awaiter(connection& c) noexcept : c_(c) {}
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    std::size_t await_resume();

   private:
    connection& c_;
    std::size_t before_ = 0;
    bool suspended_ = false;
  };

  class read_and_wait_awaiter {
   public:
    explicit read_and_wait_awaiter(connection& c) noexcept : read_(c), c_(c) {}
    bool await_ready() { return (have_ = !c_.in_.empty()) || read_.await_ready(); }
    void await_suspend(std::coroutine_handle<> h) { read_.await_suspend(h); }
    std::string_view await_resume() {
      if (!have_) read_.await_resume();
      return c_.buffered();
    }

   private:
    read_awaiter read_;
    connection& c_;
    bool have_ = false;  // bytes were buffered already: no read at all
  };

  class flush_awaiter {
   public:
    flush_awaiter(connection& c, std::size_t limit) noexcept : c_(c), limit_(limit) {}
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    void await_resume();

   private:
    connection& c_;
    std::size_t limit_;  // done once unsent() <= limit_
    bool suspended_ = false;
  };

 private:
  friend class server;
  friend struct detail::descriptor;
  friend struct connection_tester;  // tests reach the buffers through it
  enum class waiting : std::uint8_t { none, read, flush };

  void request_read();
  void request_write();
  void park(std::coroutine_handle<> h, waiting why);
  void throw_if_failed() const;
  // For the managing coroutine: whether the parked co_await can end now. A flush ends only
  // once its bytes are gone (or the connection failed); a read ends on any news.
  bool wake_condition_met() const noexcept {
    return waiting_ != waiting::flush || out_.size() <= flush_limit_ || error_ || aborted_ ||
           expired_;
  }
  void flag() noexcept;

  server& server_;
  detail::descriptor& desc_;
  transport* transport_;  // owned by the descriptor
  std::uint64_t id_;
  buffer in_;                    // received, not consumed
  buffer out_;                   // written, not yet taken by the transport
  std::error_code error_;        // first transport error
  std::size_t flush_limit_ = 0;  // a parked flush wakes once unsent() <= this
  std::uint32_t park_wait_ = 0;  // the parked suspension's number
  waiting waiting_ = waiting::none;
  bool eof_ = false;           // peer finished sending
  bool eof_reported_ = false;  // a read returned 0 for EOF: the next one throws
  bool expired_ = false;       // the deadline passed: reads fail, writes still go out
  bool reading_ = false;       // a transport read is outstanding
  bool writing_ = false;       // a transport write is outstanding
  bool closing_ = false;       // close(): send what is left, then close
  bool aborted_ = false;       // closed at once; the transport is closed
  bool write_shut_ = false;    // the transport's write side is shut
};

}  // namespace lancer
