// lancer::joined_thread: a thread its spawner waits for, and that never outlives it.
//
//   lancer::joined_thread feeder{copy_body(c, child.in())};  // runs beside this thread
//   co_await relay_output(child.out(), c);
//   co_await feeder.join();                                   // ends when the feeder has
//
// The thread starts in the next turn, as with spawn(). join() resumes the spawner once it has
// ended (and rethrows what it threw). Destroying the handle before the thread ended destroys
// the thread at once (its frames unwind without resuming), so a thread that refers to the
// spawner's locals never runs after they are gone: a stop or a timeout that unwinds the
// spawner takes its helpers with it. Not movable: the thread refers to the handle.
#pragma once

#include <coroutine>
#include <exception>

#include "lancer/sched/scheduler.hpp"
#include "lancer/sched/task.hpp"

namespace lancer {

class joined_thread {
 public:
  // Spawns `t` on the scheduler running this OS thread.
  explicit joined_thread(task<> t);
  ~joined_thread();
  joined_thread(const joined_thread&) = delete;
  joined_thread& operator=(const joined_thread&) = delete;

  // True once the thread has ended.
  bool done() const noexcept { return done_; }

  class join_awaiter {
   public:
    explicit join_awaiter(joined_thread& j) noexcept : j_(j) {}
    bool await_ready() const noexcept { return j_.done_; }
    void await_suspend(std::coroutine_handle<> h);
    void await_resume();

   private:
    joined_thread& j_;
    bool suspended_ = false;
  };
  // Waits until the thread has ended; rethrows the exception it ended with, if any.
  [[nodiscard]] join_awaiter join() noexcept { return join_awaiter{*this}; }

 private:
  static task<> run(task<> t, joined_thread* self);

  scheduler& sched_;
  thread_id thread_;
  thread_id waiter_;        // the thread in join(), if any
  std::uint32_t wait_ = 0;  // its suspension
  std::exception_ptr error_;
  bool done_ = false;
};

}  // namespace lancer
