// The awaitables every handler may use, on the scheduler running the current OS thread.
//
//   co_await wakeback_later();          // yield: resume next turn
//   co_await sleep_for(2s);             // resume once 2 s have passed on the scheduler's clock
//   co_await sleep_until(t);
//   thread_id me = co_await current_thread();
//   signal s = co_await wait_signal();  // resume on the next resume/wakeback/value_ready
//
// Each of them throws `cancelled` in a cancelled thread and `timed_out` when a timeout signal
// ends the wait; each allocates nothing. Used outside a scheduler's thread they throw
// std::logic_error.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "lancer/sched/scheduler.hpp"

namespace lancer {
namespace detail {

inline scheduler& running_scheduler() {
  scheduler* s = scheduler::current();
  if (s == nullptr || !s->current_thread()) {
    throw std::logic_error("lancer: awaiting a scheduler awaitable outside a scheduler thread");
  }
  return *s;
}

// Common shape: throw at once in a cancelled thread, park with a mask, report the signal.
class parking_awaiter {
 public:
  explicit parking_awaiter(signal_mask accepts) : sched_(&running_scheduler()), accepts_(accepts) {}

  bool await_ready() const noexcept { return sched_->current_cancelled(); }

 protected:
  // Parks and returns the suspension's number.
  std::uint32_t park(std::coroutine_handle<> h) {
    suspended_ = true;
    return sched_->park(h, accepts_);
  }
  // Throws for cancel/timeout (or if the thread was cancelled before it could suspend).
  const signal& finish() const {
    if (!suspended_) throw cancelled{};
    return sched_->take_signal();
  }

  scheduler* sched_;
  signal_mask accepts_;
  bool suspended_ = false;
};

}  // namespace detail

// Yields: the thread is resumed in the next turn, after every signal already queued.
class wakeback_later : public detail::parking_awaiter {
 public:
  wakeback_later() : parking_awaiter(mask_of(signal_kind::wakeback)) {}
  void await_suspend(std::coroutine_handle<> h) {
    const std::uint32_t wait = park(h);
    const thread_id me = sched_->current_thread();
    sched_->push(signal{me, signal_kind::wakeback, wait, 0, me});
  }
  void await_resume() const { finish(); }
};

namespace detail {

// A wait that also ends at a deadline: a timer node in the coroutine frame (no allocation),
// scheduled when the thread parks and unscheduled however the wait ends.
class timed_awaiter : public parking_awaiter {
 public:
  timed_awaiter(clock::time_point deadline, signal_mask accepts) : parking_awaiter(accepts) {
    node_.deadline = deadline;
  }
  timed_awaiter(const timed_awaiter&) = delete;
  timed_awaiter& operator=(const timed_awaiter&) = delete;
  // The frame may be destroyed while parked (a discarded thread): unschedule the timer then.
  ~timed_awaiter() { sched_->remove_timer(node_); }

  bool await_ready() const noexcept {
    return sched_->current_cancelled() || node_.deadline <= sched_->now();
  }
  void await_suspend(std::coroutine_handle<> h) {
    const std::uint32_t wait = park(h);
    const thread_id me = sched_->current_thread();
    // The timer's signal carries the node's address: no other sender forges it by accident.
    node_.fire = signal{me, signal_kind::resume, wait, timer_value(), me};
    sched_->add_timer(node_);
  }

 protected:
  // Ends the wait: unschedules the timer (a cancel or timeout may come first) and returns the
  // signal that resumed the thread, or null if it never suspended (the deadline had passed).
  const signal* end_wait() {
    sched_->remove_timer(node_);
    if (suspended_) return &finish();
    if (sched_->current_cancelled()) throw cancelled{};
    return nullptr;
  }
  bool is_timer(const signal& s) const noexcept {
    return s.kind == signal_kind::resume && s.value == timer_value();
  }

 private:
  std::uint64_t timer_value() const noexcept { return reinterpret_cast<std::uintptr_t>(&node_); }
  timer_node node_;
};

}  // namespace detail

// Suspends until the scheduler's clock reaches `deadline`. A deadline already passed returns
// at once without suspending. Other signals do not end the sleep early, except cancel/timeout.
class sleep_until : public detail::timed_awaiter {
 public:
  explicit sleep_until(clock::time_point deadline)
      : timed_awaiter(deadline, mask_of(signal_kind::resume)) {}
  void await_resume() { end_wait(); }
};

// Suspends for `d` on the scheduler's clock.
class sleep_for : public sleep_until {
 public:
  explicit sleep_for(clock::duration d) : sleep_until(detail::running_scheduler().now() + d) {}
};

// Returns the running thread's id without suspending.
class current_thread {
 public:
  current_thread() : id_(detail::running_scheduler().current_thread()) {}
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  thread_id await_resume() const noexcept { return id_; }

 private:
  thread_id id_;
};

// Suspends until a signal of a kind in `accepts` arrives, and returns it. Signals of other
// kinds sent meanwhile are dropped (the sender should only signal a thread that waits).
class wait_signal : public detail::parking_awaiter {
 public:
  static constexpr signal_mask k_default = mask_of(signal_kind::resume) |
                                           mask_of(signal_kind::wakeback) |
                                           mask_of(signal_kind::value_ready);
  explicit wait_signal(signal_mask accepts = k_default) : parking_awaiter(accepts) {}
  void await_suspend(std::coroutine_handle<> h) { park(h); }
  signal await_resume() const { return finish(); }
};

// Suspends until a signal of a kind in `accepts` arrives (returned) or the clock reaches
// `deadline` (returns nullopt). A deadline already passed returns nullopt without suspending.
class wait_signal_until : public detail::timed_awaiter {
 public:
  wait_signal_until(clock::time_point deadline, signal_mask accepts = wait_signal::k_default)
      : timed_awaiter(deadline, accepts | mask_of(signal_kind::resume)) {}
  std::optional<signal> await_resume() {
    const signal* s = end_wait();
    if (s == nullptr || is_timer(*s)) return std::nullopt;
    return *s;
  }
};

}  // namespace lancer
