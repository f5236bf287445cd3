// lancer::task<T>: a lazy, awaitable, cancellable coroutine returning T.
//
// - Lazy: creating a task runs nothing. It runs when awaited (`co_await t`) or spawned as a
//   thread (`scheduler::spawn`).
// - Symmetric transfer: starting and finishing a task hands control over without nesting
//   (through the scheduler's trampoline, detail::resume_chain), so a million synchronously
//   completing awaits in a row use constant stack on every compiler and optimisation level.
// - An exception thrown in the body is rethrown by the `co_await` that awaited the task.
// - Cancellation: when a thread is cancelled (or times out), the `co_await` it is suspended in
//   throws `lancer::cancelled` (or `lancer::timed_out`); the exception unwinds every task of the
//   thread, running RAII destructors on the way.
// - Ownership: a task owns its frame and destroys it in its destructor. A task can be awaited
//   once. Frames come from the per-thread frame pool.
#pragma once

#include <coroutine>
#include <stdexcept>
#include <utility>

#include "lancer/sched/detail/task_promise.hpp"

namespace lancer {

class scheduler;

// Thrown by a pending `co_await` in a thread that was cancelled, and by every later one.
class cancelled : public std::runtime_error {
 public:
  cancelled() : std::runtime_error("lancer: thread cancelled") {}

 protected:
  explicit cancelled(const char* what) : std::runtime_error(what) {}
};

// Thrown by a pending `co_await` in a thread whose deadline passed. A handler may catch it and
// still write a reply (unlike `cancelled`, it does not poison later awaits).
class timed_out : public cancelled {
 public:
  timed_out() : cancelled("lancer: deadline passed") {}
};

template <class T = void>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : handle_(h) {}
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { destroy(); }

  // True when the task holds a coroutine (it is not moved-from or default-constructed).
  bool valid() const noexcept { return static_cast<bool>(handle_); }
  // True once the body has returned or thrown.
  bool done() const noexcept { return handle_ && handle_.done(); }

  struct awaiter {
    handle_type handle;
    bool await_ready() const noexcept { return !handle || handle.done(); }
    void await_suspend(std::coroutine_handle<> awaiting) noexcept {
      handle.promise().set_continuation(awaiting);
      detail::t_handoff = handle;  // start the task once `awaiting` has suspended
    }
    decltype(auto) await_resume() {
      if (!handle) throw std::logic_error("lancer::task: awaiting an empty task");
      if constexpr (std::is_void_v<T> || std::is_reference_v<T>) {
        return handle.promise().result();
      } else {
        return std::move(handle.promise()).result();
      }
    }
  };

  awaiter operator co_await() const& noexcept { return awaiter{handle_}; }
  awaiter operator co_await() const&& noexcept { return awaiter{handle_}; }

 private:
  friend class scheduler;

  // Hands the frame over (to the scheduler, which owns thread roots).
  handle_type release() noexcept { return std::exchange(handle_, nullptr); }

  void destroy() noexcept {
    if (handle_) std::exchange(handle_, nullptr).destroy();
  }

  handle_type handle_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<task_promise<T>>::from_promise(*this)};
}
template <class T>
task<T&> task_promise<T&>::get_return_object() noexcept {
  return task<T&>{std::coroutine_handle<task_promise<T&>>::from_promise(*this)};
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<task_promise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace lancer
