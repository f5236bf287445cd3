#include "lancer/core/connection.hpp"

#include <system_error>

#include "lancer/core/detail/descriptor.hpp"
#include "lancer/core/failure.hpp"
#include "lancer/core/server.hpp"

namespace lancer {

connection::connection(server& srv, detail::descriptor& desc, std::uint64_t id,
                       transport* t) noexcept
    : server_(srv), desc_(desc), transport_(t), id_(id) {}

std::string_view connection::peer_address() const {
  return transport_->peer_address();
}
std::string_view connection::local_address() const {
  return transport_->local_address();
}

void connection::flag() noexcept {
  server_.flag(desc_);
}

bool connection::draining() const noexcept {
  return server_.draining();
}

void connection::require_wakeback() noexcept {
  flag();
}

void connection::set_deadline(clock::time_point t) noexcept {
  server_.set_deadline(desc_, t);
}
void connection::set_timeout(clock::duration d) noexcept {
  server_.set_deadline(desc_, server_.sched().now() + d);
}
void connection::wake_at(clock::time_point t) noexcept {
  server_.set_deadline(desc_, t, true);
}
bool connection::input_pending() noexcept {
  if (!in_.empty()) return true;
  if (eof_ || error_ || aborted_) return false;
  return transport_->input_pending() || !in_.empty();
}
void connection::clear_deadline() noexcept {
  server_.clear_deadline(desc_);
}
clock::time_point connection::now() const noexcept {
  return server_.sched().now();
}
clock::time_point connection::deadline() const noexcept {
  return desc_.due;
}

void connection::throw_if_failed() const {
  if (expired_) throw timed_out{};
  if (error_) throw connection_error(error_, "conn/" + std::to_string(id_));
}

// --- transport side -------------------------------------------------------------------------

void connection::request_read() {
  if (reading_ || eof_ || error_ || aborted_) return;
  const std::size_t max = server_.options().max_buffered;
  if (in_.size() >= max) {
    error_ = std::make_error_code(std::errc::no_buffer_space);
    return;
  }
  reading_ = true;
  transport_->start_read(*this, std::min(server_.options().read_chunk, max - in_.size()));
}

void connection::request_write() {
  if (writing_ || out_.empty() || error_ || aborted_) return;
  writing_ = true;
  transport_->start_write(*this);
}

void connection::on_read(std::error_code ec) noexcept {
  reading_ = false;
  if (ec == eof_error()) {
    eof_ = true;
  } else if (ec && !error_) {
    error_ = ec;
  }
  // A closing connection is flagged too: after its handler, the server reads what the peer
  // still sends until its EOF (see server_options::linger).
  if (waiting_ == waiting::read || closing_) flag();
}

void connection::on_written(std::error_code ec) noexcept {
  writing_ = false;
  if (ec) {
    if (!error_) error_ = ec;
    flag();
    return;
  }
  if (!out_.empty() && !aborted_) {
    // Keep the bytes moving; a transport that took only part of them is asked again.
    writing_ = true;
    transport_->start_write(*this);
    if (writing_) return;  // it will report again
  }
  if (out_.empty()) {
    out_.release();
    if (closing_ && !write_shut_) {
      write_shut_ = true;
      transport_->shutdown_write();
    }
  }
  if ((waiting_ == waiting::flush && out_.size() <= flush_limit_) || closing_) flag();
}

// --- handler side ---------------------------------------------------------------------------

void connection::write(std::string_view bytes) {
  if (aborted_) {  // the transport failed, or the server cut the connection off
    throw connection_error(error_ ? error_ : std::make_error_code(std::errc::not_connected),
                           "conn/" + std::to_string(id_) + ": write after the connection ended");
  }
  if (closing_) {  // the handler closed it itself: writing now is a bug, not the peer's doing
    throw std::system_error(std::make_error_code(std::errc::not_connected),
                            "conn/" + std::to_string(id_) + ": write after close");
  }
  if (error_) throw_if_failed();
  out_.append(bytes);
}

void connection::close() noexcept {
  if (closing_ || aborted_) return;
  closing_ = true;
  if (out_.empty() && !writing_ && !write_shut_) {
    write_shut_ = true;
    transport_->shutdown_write();
  }
}

void connection::abort(std::error_code why) noexcept {
  if (aborted_) return;
  aborted_ = true;
  if (!error_) error_ = why;
  out_.consume(out_.size());
  out_.release();
  in_.release();
  transport_->close();
  reading_ = writing_ = false;
  if (waiting_ != waiting::none) flag();
}

void connection::park(std::coroutine_handle<> h, waiting why) {
  scheduler& s = server_.sched();
  if (s.current_thread() != desc_.thread) {
    throw std::logic_error("lancer::connection: awaited from a thread other than its handler's");
  }
  waiting_ = why;
  desc_.wake_pushed = false;
  park_wait_ = s.park(h, mask_of(signal_kind::wakeback));
}

connection::read_awaiter connection::read() {
  return read_awaiter{*this};
}

bool connection::read_awaiter::await_ready() {
  if (c_.server_.sched().current_cancelled()) return true;
  if (c_.expired_ || c_.error_ || c_.eof_) return true;
  before_ = c_.in_.size();
  c_.request_read();  // may complete at once
  return c_.in_.size() > before_ || c_.eof_ || c_.error_;
}

void connection::read_awaiter::await_suspend(std::coroutine_handle<> h) {
  c_.request_write();  // whatever the handler wrote leaves before it waits for input
  if (c_.in_.empty()) c_.in_.release();  // idle: hold no buffer while waiting
  if (c_.out_.empty()) c_.out_.release();
  suspended_ = true;
  c_.park(h, waiting::read);
}

std::size_t connection::read_awaiter::await_resume() {
  if (suspended_) {
    c_.waiting_ = waiting::none;
    c_.server_.sched().take_signal();  // throws on timeout or cancel
  } else if (c_.server_.sched().current_cancelled()) {
    throw cancelled{};
  }
  const std::size_t now = c_.in_.size();
  if (now > before_) return now - before_;
  if (c_.expired_ || c_.error_) c_.throw_if_failed();
  if (c_.eof_) {
    if (c_.eof_reported_) {
      throw std::system_error(eof_error(), "conn/" + std::to_string(c_.id_) + ": read after EOF");
    }
    c_.eof_reported_ = true;
  }
  return 0;  // EOF, or a required wakeback
}

connection::read_and_wait_awaiter connection::read_and_wait() {
  return read_and_wait_awaiter{*this};
}

connection::flush_awaiter connection::flush() {
  return flush_awaiter{*this, 0};
}

connection::flush_awaiter connection::send(std::string_view bytes) {
  write(bytes);
  const std::size_t high = server_.options().high_water;
  // Below the mark: no wait at all. Above it: wait until half of it is left.
  return flush_awaiter{*this, out_.size() > high ? high / 2 : out_.size()};
}

bool connection::flush_awaiter::await_ready() {
  if (c_.server_.sched().current_cancelled()) return true;
  if (c_.error_) return true;
  if (c_.out_.size() <= limit_) return true;
  c_.request_write();  // may complete at once
  return c_.out_.size() <= limit_ || static_cast<bool>(c_.error_);
}

void connection::flush_awaiter::await_suspend(std::coroutine_handle<> h) {
  suspended_ = true;
  c_.flush_limit_ = limit_;
  c_.park(h, waiting::flush);
}

void connection::flush_awaiter::await_resume() {
  if (suspended_) {
    c_.waiting_ = waiting::none;
    c_.server_.sched().take_signal();
  } else if (c_.server_.sched().current_cancelled()) {
    throw cancelled{};
  }
  if (c_.error_) {
    throw connection_error(c_.error_, "conn/" + std::to_string(c_.id_));
  }
}

}  // namespace lancer
