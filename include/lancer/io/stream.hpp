// lancer::stream: a byte stream with an inbound and an outbound buffer, driven by a transport.
//
//   std::unique_ptr<lancer::stream> s = co_await lancer::connect(addr, 5s);  // io/connect.hpp
//   s->write("PING\r\n");
//   const std::size_t n = co_await s->read();   // flushes, then waits for bytes (0: EOF)
//   std::string_view in = s->buffered();        // everything not consumed yet
//   s->consume(in.size());
//
// A server's connection is a stream too (core/connection.hpp), and so are a pipe and a child
// process's stdio (io/pipe.hpp).
//
// Rules:
// - Two waits: one thread may wait to read while another waits to write (the two directions
//   of a forwarding pipe). Two threads waiting to read one stream is a bug (logic_error).
//   Every waiter must run on the scheduler that made the stream.
// - Writes are batched: `write` only appends. Bytes leave when a thread flushes or sends, or
//   waits for input (a read flushes first).
// - Backpressure: `send` waits while more than `high_water` bytes are unsent, so a slow peer
//   never makes the program buffer without bound. A read fails once `max_buffered` bytes sit
//   unconsumed.
// - The deadline: when it passes, the pending waits throw `lancer::timed_out`, reads fail from
//   then on, and writes still go out (time for a last answer).
// - Errors: a transport failure throws lancer::connection_error (core/failure.hpp), whose
//   message names the stream ("conn/42", "tcp/10.0.0.2:8080").
// - Memory: a stream waiting for input with nothing buffered holds no buffer storage.
//
// Waking a waiter is the one thing the kinds of stream do differently: a stream the program
// opened pushes the waiting thread's signal itself; a server's connection lets the server's
// managing coroutine do it, so that the server's cost per turn follows the active
// connections. Nothing ever resumes a coroutine directly: a signal does.
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "lancer/io/buffer.hpp"
#include "lancer/io/error.hpp"
#include "lancer/io/transport.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/sched/scheduler.hpp"
#include "lancer/sched/task.hpp"

namespace lancer {

struct stream_options {
  std::size_t high_water = 256 * 1024;  // send() waits above this many unsent bytes
  std::size_t read_chunk = 64 * 1024;   // most bytes one transport read appends
  std::size_t max_buffered = 1 << 20;   // read() fails once this many bytes sit unconsumed
};

class stream : public sink {
 public:
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  // Closes the transport at once (what was not sent is lost; call flush() first to keep it).
  virtual ~stream();

  // The transport's names for the two ends; valid as long as the stream.
  std::string_view peer_address() const;
  std::string_view local_address() const;
  // How the stream names itself in errors and logs: "conn/42", "tcp/10.0.0.2:8080".
  virtual std::string name() const;

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
  // True if input has arrived that no read has taken yet: a look at the transport without
  // waiting, for the moment before a program closes an idle stream.
  bool input_pending() noexcept;
  // Starts a read without waiting for it: what comes (bytes, the peer's EOF, an error) is
  // buffered or recorded as it arrives, as for a read, and wakes nobody. A program that keeps
  // streams idle (a pool of upstream connections) then sees from buffered(), at_eof() and
  // error(), without a system call, whether the peer closed one or sent something meanwhile.
  // Holds no buffer storage while nothing has come.
  void read_ahead();

  class read_awaiter;
  // Waits for more input, after flushing pending output. Returns how many new bytes arrived;
  // 0 means the peer finished sending (at_eof()), or something woke the waiter on purpose
  // (require_wakeback(); a connection's wake_at()). Throws lancer::connection_error on a
  // transport error, std::system_error on a read after EOF was reported (a loop on read()
  // at EOF would otherwise spin), `timed_out` past the deadline.
  [[nodiscard]] read_awaiter read();

  class read_and_wait_awaiter;
  // Returns the buffered bytes, waiting for some (as read() does) only if none are buffered.
  // An empty view means EOF (or a required wakeback). The view is valid until the next
  // read, consume or write.
  [[nodiscard]] read_and_wait_awaiter read_and_wait();

  // --- output --------------------------------------------------------------------------

  // Appends `bytes` to the outbound buffer. Nothing is sent until a flush, a send above the
  // high-water mark, or a read. Throws lancer::connection_error if the stream failed or was
  // cut off, std::system_error if the program closed it itself.
  void write(std::string_view bytes);

  class flush_awaiter;
  // Sends everything written so far and waits until the transport took it all (a slow peer
  // makes this wait: that is the backpressure). Throws lancer::connection_error on a
  // transport error.
  [[nodiscard]] flush_awaiter flush();
  // Appends `bytes` and starts sending, then waits only if the outbound buffer is above the
  // high-water mark, until it drains below half of it. Use it to stream large bodies, or to
  // pass bytes on, in bounded memory.
  [[nodiscard]] flush_awaiter send(std::string_view bytes);
  // Bytes written and not yet taken by the transport, a file's being sent included.
  std::size_t unsent() const noexcept { return out_.size() + (file_ ? file_->left : 0); }

  // Sends `length` bytes of the open file `fd`, starting `offset` bytes in, after everything
  // written before it. Where the transport sends files itself (a TCP or Unix socket:
  // sends_files()), the bytes go from the page cache to the socket with sendfile(2), never
  // through user space, and it returns once the last of them was handed to the kernel.
  // Elsewhere (a layer, the fake source, a pipe) they are read (pread) in pieces into the
  // outbound buffer, and it returns, as send() does, once the last piece is there and the
  // buffer is below the high-water mark. Either way a slow peer makes it wait and memory stays
  // bounded. `fd` must stay open until it returns; no other thread may write to the stream
  // meanwhile. A length of 0 sends nothing. The zero-copy path allocates nothing (the frame
  // comes from the frame pool); the buffered one takes the outbound buffer's storage.
  // Throws lancer::connection_error on a transport error (as flush), `timed_out` past the
  // deadline, and lancer::file_error (io/error.hpp) when the file cannot be read or ends
  // before offset + length (it was truncated while being sent). A send_file that does not
  // finish (any of these, a cancel, its frame destroyed) aborts the stream first: the peer
  // sees the connection end mid-body, never a body with a hole in it.
  [[nodiscard]] task<> send_file(int fd, std::uint64_t offset, std::uint64_t length);
  // Whether send_file goes zero-copy on this stream now (transport::sends_files()).
  bool sends_files() const noexcept;

  // --- byte counts ---------------------------------------------------------------------

  // Bytes the transport delivered to the inbound buffer since the stream was made (after any
  // layer: a TLS layer's plaintext), modulo 2^32: the difference of two readings is exact for
  // less than 4 GiB between them (http::request widens its own with its body's count).
  std::uint32_t bytes_received() const noexcept { return in_.added(); }
  // Bytes the program wrote to be sent since the stream was made (write, send and send_file),
  // counted when written (bytes an abort dropped before they left count too), except a file
  // sent zero-copy, whose bytes count once the transport took them. Neither count costs more
  // than an addition where the bytes are added. Modulo 2^32, as bytes_received.
  std::uint32_t bytes_written() const noexcept { return out_.added(); }

  // --- lifetime ------------------------------------------------------------------------

  // Stops accepting writes; what was written is still sent, then the sending side is shut
  // (the peer reads EOF). Reading goes on.
  void close() noexcept;
  // Closes at once, dropping unsent bytes, and records `why` as the error.
  void abort(std::error_code why) noexcept;
  // abort(), and the peer is told with a reset (transport::reset): what a forwarder does to
  // one side when the other was reset.
  void reset(std::error_code why) noexcept;
  bool closed() const noexcept { return closing_ || aborted_; }

  // Wakes the threads waiting on this stream in their next turn (a pending read returns 0).
  // Any layer may use it to poke a waiting handler.
  void require_wakeback() noexcept;

  // The deadline: when it passes, the pending waits throw `timed_out` and reads fail.
  virtual void set_deadline(clock::time_point t) noexcept = 0;
  void set_timeout(clock::duration d) noexcept { set_deadline(now() + d); }
  virtual void clear_deadline() noexcept = 0;
  virtual clock::time_point deadline() const noexcept = 0;
  // The time on the stream's scheduler clock (virtual under a manual clock).
  clock::time_point now() const noexcept { return sched_.now(); }
  scheduler& sched() const noexcept { return sched_; }

  // --- for transports (the sink) -------------------------------------------------------
  buffer& inbound() noexcept override { return in_; }
  buffer& outbound() noexcept override { return out_; }
  void on_read(std::error_code ec) noexcept override;
  void on_written(std::error_code ec) noexcept override;
  file_region* outbound_file() noexcept override { return file_pending() ? file_ : nullptr; }

  // --- awaiters ------------------------------------------------------------------------

  // One direction's wait: the thread parked on it and its suspension.
  struct wait_slot {
    thread_id thread;        // the waiting thread
    std::uint32_t wait = 0;  // its suspension's number, for the wakeback signal
    bool parked = false;     // a thread waits here
    bool pushed = false;     // a wakeback is on its way to it
  };

  class read_awaiter {
   public:
    explicit read_awaiter(stream& s) noexcept : s_(s) {}
    read_awaiter(const read_awaiter&) = delete;
    read_awaiter& operator=(const read_awaiter&) = delete;
    // A frame destroyed while parked here (a discarded thread) frees the slot.
    ~read_awaiter() { s_.abandon(s_.reader_, wait_); }
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    std::size_t await_resume();

   private:
    stream& s_;
    std::size_t before_ = 0;
    std::uint32_t wait_ = 0;  // the suspension parked in reader_ (0: none)
    bool suspended_ = false;
  };

  class read_and_wait_awaiter {
   public:
    explicit read_and_wait_awaiter(stream& s) noexcept : read_(s), s_(s) {}
    bool await_ready() { return (have_ = !s_.in_.empty()) || read_.await_ready(); }
    void await_suspend(std::coroutine_handle<> h) { read_.await_suspend(h); }
    std::string_view await_resume() {
      if (!have_) read_.await_resume();
      return s_.buffered();
    }

   private:
    read_awaiter read_;
    stream& s_;
    bool have_ = false;  // bytes were buffered already: no read at all
  };

  class flush_awaiter {
   public:
    flush_awaiter(stream& s, std::size_t limit) noexcept : s_(s), limit_(limit) {}
    flush_awaiter(const flush_awaiter&) = delete;
    flush_awaiter& operator=(const flush_awaiter&) = delete;
    ~flush_awaiter() { s_.abandon(s_.writer_, wait_); }
    bool await_ready();
    void await_suspend(std::coroutine_handle<> h);
    void await_resume();

   private:
    stream& s_;
    std::size_t limit_;       // done once unsent() <= limit_
    std::uint32_t wait_ = 0;  // the suspension parked in writer_ (0: none)
    bool suspended_ = false;
  };

 protected:
  // `t` may be null (attach one before the first read or write); the stream owns it.
  // `options` must outlive the stream.
  stream(scheduler& sched, std::unique_ptr<transport> t, const stream_options& options) noexcept;

  // Something a waiter may be waiting for happened (bytes, EOF, an error, drained output, a
  // deadline). A stream the program opened wakes its waiters at once; a server's connection
  // tells its managing coroutine instead.
  virtual void on_event() noexcept;
  // Pushes a wakeback to each parked waiter whose wait can end now. Returns how many.
  // `source` names the pushing thread in the signals (the managing coroutine, or none).
  std::size_t wake_waiters(thread_id source = {}) noexcept;
  // Whether a parked waiter's wait can end now: a read on news (bytes, EOF, an error, a
  // required wakeback), a flush once its bytes are gone (or the stream failed).
  bool read_can_end() const noexcept { return news_ || error_ || aborted_ || expired_; }
  bool flush_can_end() const noexcept {
    return (out_.size() <= flush_limit_ && !file_pending()) || error_ || aborted_ || expired_;
  }
  // send_file's region waits for the transport (it has not failed).
  bool file_pending() const noexcept {
    return file_ != nullptr && file_->left != 0 && file_->error == 0;
  }
  // Marks news for a reader (a wakeback on purpose) and tells on_event().
  void poke() noexcept {
    news_ = true;
    on_event();
  }

  // The deadline passed: reads fail from now on, and a waiter still parked throws timed_out.
  void expire() noexcept;
  // Throws what a failed stream throws: timed_out past the deadline, else the error.
  void throw_if_failed() const;
  void request_read();
  void request_write();
  transport& link() const noexcept { return *transport_; }
  void attach(std::unique_ptr<transport> t) noexcept { transport_ = std::move(t); }
  // Closes the transport (nothing more is read or sent); the buffers stay.
  void close_transport() noexcept;
  void end(std::error_code why, bool with_reset) noexcept;

  scheduler& sched_;
  const stream_options& options_;
  std::unique_ptr<transport> transport_;
  buffer in_;                      // received, not consumed
  buffer out_;                     // written, not yet taken by the transport
  file_region* file_ = nullptr;    // send_file's zero-copy region, in its frame (or none)
  std::error_code error_;          // first transport error
  std::uint32_t flush_limit_ = 0;  // a parked flush wakes once unsent() <= this
  wait_slot reader_;               // a thread waiting in read()
  wait_slot writer_;               // a thread waiting in flush() or send()
  // Flags in bits: with them a server's connection descriptor fits a 248-byte frame-pool
  // block (a 256-byte malloc chunk).
  bool eof_ : 1 = false;           // peer finished sending
  bool eof_reported_ : 1 = false;  // a read returned 0 for EOF: the next one throws
  bool expired_ : 1 = false;       // the deadline passed: reads fail, writes still go out
  bool reading_ : 1 = false;       // a transport read is outstanding
  bool writing_ : 1 = false;       // a transport write is outstanding
  bool closing_ : 1 = false;       // close(): send what is left, then shut the sending side
  bool aborted_ : 1 = false;       // closed at once; the transport is closed
  bool write_shut_ : 1 = false;    // the transport's write side is shut
  bool news_ : 1 = false;          // something a parked read waits for happened

 private:
  // Throws what a write to this stream throws now (it ended, or the program closed it).
  void check_writable() const;
  // A send_file that cannot go on: aborts the stream, then throws file_error for `err` (an
  // errno; ENODATA: the file ended early).
  [[noreturn]] void fail_file(int err, std::uint64_t offset);
  std::uint32_t park(wait_slot& w, std::coroutine_handle<> h);
  void unpark(wait_slot& w) noexcept;
  // An awaiter's frame is going while its wait `wait` may still be parked in `w`.
  void abandon(wait_slot& w, std::uint32_t wait) noexcept {
    if (wait != 0 && w.parked && w.wait == wait) unpark(w);
  }
  // A stream the program opened keeps its deadline itself, with a scheduler timer aimed at
  // one of its waiters (connections leave deadlines to their server): told when a waiter
  // parks and unparks, and asked whether the signal that woke one was that timer's.
  virtual void on_park() noexcept {}
  virtual void on_unpark() noexcept {}
  virtual bool timer_fired(const signal&) const noexcept { return false; }
};

// A stream the program opened over `t` (a connected socket, a pipe, an in-memory peer),
// waking its own waiters. `name` names it in errors ("tcp/10.0.0.2:8080"). Must be made and
// used on a running scheduler's OS thread.
std::unique_ptr<stream> make_stream(std::unique_ptr<transport> t, std::string name,
                                    const stream_options& options = {});

}  // namespace lancer
