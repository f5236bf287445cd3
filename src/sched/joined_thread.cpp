#include "lancer/sched/joined_thread.hpp"

#include <stdexcept>

namespace lancer {

namespace {
scheduler& current_or_throw() {
  scheduler* s = scheduler::current();
  if (s == nullptr) throw std::logic_error("lancer::joined_thread: no scheduler runs here");
  return *s;
}
}  // namespace

joined_thread::joined_thread(task<> t) : sched_(current_or_throw()) {
  thread_ = sched_.spawn(run(std::move(t), this));
}

joined_thread::~joined_thread() {
  if (!done_ && sched_.alive(thread_)) sched_.discard(thread_);
}

task<> joined_thread::run(task<> t, joined_thread* self) {
  try {
    co_await std::move(t);
  } catch (...) {
    self->error_ = std::current_exception();
  }
  self->done_ = true;
  if (self->waiter_) {
    self->sched_.push(signal{self->waiter_, signal_kind::value_ready, self->wait_, 0, {}});
  }
}

void joined_thread::join_awaiter::await_suspend(std::coroutine_handle<> h) {
  j_.waiter_ = j_.sched_.current_thread();
  j_.wait_ = j_.sched_.park(h, mask_of(signal_kind::value_ready));
  suspended_ = true;
}

void joined_thread::join_awaiter::await_resume() {
  if (suspended_) {
    j_.waiter_ = {};
    j_.sched_.take_signal();  // throws if the joining thread was cancelled meanwhile
  }
  if (j_.error_) std::rethrow_exception(j_.error_);
}

}  // namespace lancer
