#include "lancer/io/stream.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "lancer/sched/detail/timer_heap.hpp"

namespace lancer {

stream::stream(scheduler& sched, std::unique_ptr<transport> t,
               const stream_options& options) noexcept
    : sched_(sched), options_(options), transport_(std::move(t)) {}

stream::~stream() {
  close_transport();
}

std::string_view stream::peer_address() const {
  return transport_ ? transport_->peer_address() : std::string_view{};
}
std::string_view stream::local_address() const {
  return transport_ ? transport_->local_address() : std::string_view{};
}
std::string stream::name() const {
  return std::string(peer_address());
}

void stream::close_transport() noexcept {
  if (transport_) transport_->close();
}

bool stream::input_pending() noexcept {
  if (!in_.empty()) return true;
  if (eof_ || error_ || aborted_ || !transport_) return false;
  return transport_->input_pending() || !in_.empty();
}

void stream::read_ahead() {
  request_read();
  if (in_.empty()) in_.release();  // the transport takes room only when bytes come
}

void stream::throw_if_failed() const {
  if (expired_) throw timed_out{};
  if (error_) throw connection_error(error_, name());
}

// --- transport side -------------------------------------------------------------------------

void stream::request_read() {
  if (reading_ || eof_ || error_ || aborted_) return;
  const std::size_t max = options_.max_buffered;
  if (in_.size() >= max) {
    error_ = std::make_error_code(std::errc::no_buffer_space);
    return;
  }
  reading_ = true;
  transport_->start_read(*this, std::min(options_.read_chunk, max - in_.size()));
}

void stream::request_write() {
  if (writing_ || (out_.empty() && !file_pending()) || error_ || aborted_) return;
  writing_ = true;
  transport_->start_write(*this);
}

void stream::on_read(std::error_code ec) noexcept {
  reading_ = false;
  if (ec == eof_error()) {
    eof_ = true;
  } else if (ec && !error_) {
    error_ = ec;
  }
  // A closing stream is told too: after its handler, a server reads what the peer still
  // sends until its EOF (server_options::linger).
  if (reader_.parked || closing_) poke();
}

void stream::on_written(std::error_code ec) noexcept {
  writing_ = false;
  if (ec) {
    if (!error_) error_ = ec;
    poke();
    return;
  }
  if ((!out_.empty() || file_pending()) && !aborted_) {
    // Keep the bytes moving; a transport that took only part of them is asked again.
    writing_ = true;
    transport_->start_write(*this);
    if (writing_) return;  // it will report again
  }
  if (out_.empty() && (file_ == nullptr || file_->left == 0)) {  // a failed region: no FIN
    out_.release();
    if (closing_ && !write_shut_) {
      write_shut_ = true;
      transport_->shutdown_write();
    }
  }
  if ((writer_.parked && flush_can_end()) || closing_) on_event();
}

// --- the program's side ---------------------------------------------------------------------

void stream::write(std::string_view bytes) {
  check_writable();
  out_.append(bytes);
}

void stream::check_writable() const {
  if (aborted_) {  // the transport failed, or the stream was cut off
    throw connection_error(error_ ? error_ : std::make_error_code(std::errc::not_connected),
                           name() + ": write after the stream ended");
  }
  if (closing_) {  // closed by the program itself: writing now is a bug, not the peer's doing
    throw std::system_error(std::make_error_code(std::errc::not_connected),
                            name() + ": write after close");
  }
  if (error_) throw_if_failed();
}

void stream::close() noexcept {
  if (closing_ || aborted_) return;
  closing_ = true;
  if (out_.empty() && file_ == nullptr && !writing_ && !write_shut_ && transport_) {
    write_shut_ = true;
    transport_->shutdown_write();
  }
}

void stream::abort(std::error_code why) noexcept {
  end(why, false);
}

void stream::reset(std::error_code why) noexcept {
  end(why, true);
}

void stream::end(std::error_code why, bool with_reset) noexcept {
  if (aborted_) return;
  aborted_ = true;
  if (!error_) error_ = why;
  out_.consume(out_.size());
  out_.release();
  file_ = nullptr;
  in_.release();
  if (with_reset && transport_) {
    transport_->reset();
  } else {
    close_transport();
  }
  reading_ = writing_ = false;
  if (reader_.parked || writer_.parked) poke();
}

void stream::require_wakeback() noexcept {
  poke();
}

void stream::on_event() noexcept {
  wake_waiters();
}

std::size_t stream::wake_waiters(thread_id source) noexcept {
  std::size_t n = 0;
  if (reader_.parked && !reader_.pushed && read_can_end()) {
    reader_.pushed = true;
    sched_.push(signal{reader_.thread, signal_kind::wakeback, reader_.wait, 0, source});
    ++n;
  }
  if (writer_.parked && !writer_.pushed && flush_can_end()) {
    writer_.pushed = true;
    sched_.push(signal{writer_.thread, signal_kind::wakeback, writer_.wait, 0, source});
    ++n;
  }
  return n;
}

void stream::expire() noexcept {
  expired_ = true;
  news_ = true;
  // The other direction's waiter, if parked, throws timed_out too.
  for (wait_slot* w : {&reader_, &writer_}) {
    if (w->parked && !w->pushed) {
      w->pushed = true;
      sched_.push(signal{w->thread, signal_kind::timeout, w->wait, 0, {}});
    }
  }
}

std::uint32_t stream::park(wait_slot& w, std::coroutine_handle<> h) {
  if (scheduler::current() != &sched_ || !sched_.current_thread()) {
    throw std::logic_error("lancer::stream: " + name() +
                           " awaited outside a thread of its scheduler");
  }
  if (w.parked) {
    throw std::logic_error("lancer::stream: two threads wait to " +
                           std::string(&w == &reader_ ? "read " : "write ") + name());
  }
  w.thread = sched_.current_thread();
  w.parked = true;
  w.pushed = false;
  if (&w == &reader_) news_ = false;
  w.wait = sched_.park(h, mask_of(signal_kind::wakeback) | mask_of(signal_kind::resume));
  on_park();
  return w.wait;
}

void stream::unpark(wait_slot& w) noexcept {
  w.parked = false;
  w.pushed = false;
  on_unpark();
}

// --- awaiters -------------------------------------------------------------------------------

stream::read_awaiter stream::read() {
  return read_awaiter{*this};
}

bool stream::read_awaiter::await_ready() {
  before_ = s_.in_.size();
  if (s_.sched_.current_cancelled()) return true;
  if (s_.expired_ || s_.error_ || s_.eof_) return true;
  s_.request_read();  // may complete at once
  return s_.in_.size() > before_ || s_.eof_ || s_.error_;
}

void stream::read_awaiter::await_suspend(std::coroutine_handle<> h) {
  s_.request_write();                    // whatever was written leaves before the wait for input
  if (s_.in_.empty()) s_.in_.release();  // idle: hold no buffer while waiting
  if (s_.out_.empty()) s_.out_.release();
  wait_ = s_.park(s_.reader_, h);
  suspended_ = true;
}

std::size_t stream::read_awaiter::await_resume() {
  if (suspended_) {
    s_.unpark(s_.reader_);
    wait_ = 0;
    const signal& sig = s_.sched_.take_signal();  // throws on timeout or cancel
    if (s_.timer_fired(sig)) {
      s_.expire();
      throw timed_out{};
    }
  } else if (s_.sched_.current_cancelled()) {
    throw cancelled{};
  }
  const std::size_t now = s_.in_.size();
  if (now > before_) return now - before_;
  if (s_.expired_ || s_.error_) s_.throw_if_failed();
  if (s_.eof_) {
    if (s_.eof_reported_) {
      throw std::system_error(eof_error(), s_.name() + ": read after EOF");
    }
    s_.eof_reported_ = true;
  }
  return 0;  // EOF, or a wakeback on purpose
}

stream::read_and_wait_awaiter stream::read_and_wait() {
  return read_and_wait_awaiter{*this};
}

stream::flush_awaiter stream::flush() {
  return flush_awaiter{*this, 0};
}

stream::flush_awaiter stream::send(std::string_view bytes) {
  write(bytes);
  const std::size_t high = options_.high_water;
  // Below the mark: no wait at all. Above it: wait until half of it is left.
  return flush_awaiter{*this, out_.size() > high ? high / 2 : out_.size()};
}

bool stream::flush_awaiter::await_ready() {
  if (s_.sched_.current_cancelled()) return true;
  if (s_.error_) return true;
  s_.request_write();  // the bytes start to leave now (and may all leave at once)
  return (s_.out_.size() <= limit_ && !s_.file_pending()) || static_cast<bool>(s_.error_);
}

void stream::flush_awaiter::await_suspend(std::coroutine_handle<> h) {
  s_.flush_limit_ = static_cast<std::uint32_t>(std::min<std::size_t>(limit_, UINT32_MAX));
  wait_ = s_.park(s_.writer_, h);
  suspended_ = true;
}

void stream::flush_awaiter::await_resume() {
  if (suspended_) {
    s_.unpark(s_.writer_);
    wait_ = 0;
    const signal& sig = s_.sched_.take_signal();
    if (s_.timer_fired(sig)) {
      s_.expire();
      throw timed_out{};
    }
  } else if (s_.sched_.current_cancelled()) {
    throw cancelled{};
  }
  if (s_.error_) throw connection_error(s_.error_, s_.name());
}

// --- files ----------------------------------------------------------------------------------

namespace {

constexpr std::size_t k_file_piece = 64 * 1024;  // one pread on the buffered path

// Aborts the stream when a send_file does not finish (an exception, a cancel, its frame
// destroyed with its thread): what was sent of the file is a body with a hole in it.
struct file_guard {
  stream& s;
  bool done = false;
  ~file_guard() {
    if (!done) s.abort(std::make_error_code(std::errc::operation_canceled));
  }
};

}  // namespace

bool stream::sends_files() const noexcept {
  return transport_ && !aborted_ && transport_->sends_files();
}

void stream::fail_file(int err, std::uint64_t offset) {
  const bool early = err == ENODATA;
  const std::error_code code = early ? std::make_error_code(std::errc::io_error)
                                     : std::error_code(err, std::generic_category());
  abort(code);
  throw file_error(code,
                   name() + (early ? ": the file ended at byte " : ": reading the file at byte ") +
                       std::to_string(offset) +
                       (early ? ", before its length (it shrank while being sent)" : " failed"));
}

task<> stream::send_file(int fd, std::uint64_t offset, std::uint64_t length) {
  check_writable();
  if (length == 0) co_return;
  file_region f{fd, offset, length, 0};  // the transport's, while file_ points to it
  file_guard guard{*this};               // destroyed first: file_ is cleared before f goes
  if (sends_files()) {
    file_ = &f;
    flush_awaiter sent = flush();  // the bytes before it, then the whole region
    try {
      co_await sent;
    } catch (...) {
      out_.count_added(length - f.left);  // what went before the failure
      throw;
    }
    file_ = nullptr;
    out_.count_added(length - f.left);
    if (f.error == 0) {
      guard.done = true;
      co_return;
    }
    if (f.error != EINVAL) fail_file(f.error, f.offset);
    offset = f.offset;  // this file cannot go zero-copy: the rest goes the buffered way
    length = f.left;
  }
  const std::size_t high = options_.high_water;
  while (length != 0) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(length, k_file_piece));
    const std::span<char> room = out_.prepare(want);
    ssize_t n = 0;
    do {
      n = ::pread(fd, room.data(), want, static_cast<off_t>(offset));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) fail_file(n == 0 ? ENODATA : errno, offset);
    out_.commit(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
    length -= static_cast<std::uint64_t>(n);
    if (out_.size() > high) {  // as send() does: wait until half of the mark is left
      flush_awaiter drained{*this, high / 2};
      co_await drained;
    } else {
      request_write();
    }
  }
  guard.done = true;
}

// --- a stream the program opened ------------------------------------------------------------

namespace {

// The options live here, ahead of the stream that refers to them.
struct options_holder {
  stream_options held;
};

class free_stream final : private options_holder, public stream {
 public:
  free_stream(scheduler& sched, std::unique_ptr<transport> t, std::string name,
              const stream_options& options)
      : options_holder{options}, stream(sched, std::move(t), held), name_(std::move(name)) {}
  ~free_stream() override { sched_.remove_timer(timer_); }

  std::string name() const override { return name_; }
  void set_deadline(clock::time_point t) noexcept override {
    deadline_ = t;
    retime();
  }
  void clear_deadline() noexcept override { set_deadline(clock::time_point::max()); }
  clock::time_point deadline() const noexcept override { return deadline_; }

 private:
  void on_park() noexcept override { retime(); }
  void on_unpark() noexcept override { retime(); }
  bool timer_fired(const signal& s) const noexcept override {
    return s.kind == signal_kind::resume && s.value == marker();
  }
  std::uint64_t marker() const noexcept { return reinterpret_cast<std::uintptr_t>(&timer_); }

  // Aims the deadline's timer at a parked waiter (the reader first), or unschedules it. The
  // waiter it wakes marks the stream expired, which wakes the other one.
  void retime() noexcept {
    wait_slot* target = reader_.parked ? &reader_ : writer_.parked ? &writer_ : nullptr;
    sched_.remove_timer(timer_);
    if (target == nullptr || deadline_ == clock::time_point::max()) return;
    timer_.deadline = deadline_;
    timer_.fire = signal{target->thread, signal_kind::resume, target->wait, marker(), {}};
    sched_.add_timer(timer_);
  }

  std::string name_;
  clock::time_point deadline_ = clock::time_point::max();
  detail::timer_node timer_;
};

}  // namespace

std::unique_ptr<stream> make_stream(std::unique_ptr<transport> t, std::string name,
                                    const stream_options& options) {
  scheduler* s = scheduler::current();
  if (s == nullptr) throw std::logic_error("lancer::make_stream: no scheduler runs here");
  return std::make_unique<free_stream>(*s, std::move(t), std::move(name), options);
}

}  // namespace lancer
