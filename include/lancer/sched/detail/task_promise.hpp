// The promise behind lancer::task<T>. Users never name these types.
#pragma once

#include <coroutine>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer {
template <class T>
class task;
}

namespace lancer::detail {

// Symmetric transfer through a trampoline. A coroutine that hands control to another (a task
// starting its child, a finished task resuming its awaiter) stores the next coroutine here and
// suspends; `resume_chain`, where the scheduler resumes a thread, runs the hand-overs in a loop.
// Control passes from coroutine to coroutine without nesting, so a million synchronously
// completing awaits run in constant stack. The usual form (await_suspend returning the next
// handle) leaves that to the compiler's tail call, which GCC does not emit at -O0, under
// AddressSanitizer, or for a coroutine with an address-taken local: measured, not guessed.
constinit inline thread_local std::coroutine_handle<> t_handoff{};

// Resumes `h`, then every coroutine handed over to, until none is. Returns when the chain
// suspends to wait for a signal or the thread finishes.
inline void resume_chain(std::coroutine_handle<> h) noexcept {
  h.resume();
  while (t_handoff)
    std::exchange(t_handoff, nullptr).resume();
}

class task_promise_base {
 public:
  // Frames come from the per-thread pool: steady-state spawn-and-finish calls no malloc.
  static void* operator new(std::size_t size) { return frame_pool::allocate(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    frame_pool::deallocate(frame, size);
  }

  // Lazy: nothing runs until the task is awaited or spawned.
  std::suspend_always initial_suspend() const noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    // Hand control to the awaiter (none for a thread's root: the chain ends here).
    template <class Promise>
    void await_suspend(std::coroutine_handle<Promise> self) noexcept {
      t_handoff = self.promise().continuation_;
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() const noexcept { return {}; }

  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }
  const std::exception_ptr& exception() const noexcept { return exception_; }

 protected:
  void rethrow_if_failed() const {
    if (exception_) std::rethrow_exception(exception_);
  }

 private:
  std::coroutine_handle<> continuation_;  // resumed when this task finishes; null for a thread root
  std::exception_ptr exception_;          // set when the body threw
};

template <class T>
class task_promise final : public task_promise_base {
 public:
  task_promise() noexcept {}
  ~task_promise() {
    if (has_value_) value_.~T();
  }
  task<T> get_return_object() noexcept;

  template <class U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    ::new (static_cast<void*>(&value_)) T(std::forward<U>(v));
    has_value_ = true;
  }

  T& result() & {
    rethrow_if_failed();
    return value_;
  }
  T&& result() && {
    rethrow_if_failed();
    return std::move(value_);
  }

 private:
  union {
    T value_;  // constructed by return_value only
  };
  bool has_value_ = false;
};

template <class T>
class task_promise<T&> final : public task_promise_base {
 public:
  task<T&> get_return_object() noexcept;
  void return_value(T& v) noexcept { value_ = &v; }
  T& result() {
    rethrow_if_failed();
    return *value_;
  }

 private:
  T* value_ = nullptr;
};

template <>
class task_promise<void> final : public task_promise_base {
 public:
  task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void result() const { rethrow_if_failed(); }
};

}  // namespace lancer::detail
