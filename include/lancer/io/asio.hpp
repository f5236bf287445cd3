// The Asio bridge: any Asio asynchronous operation, awaited from a lancer coroutine.
//
//   boost::asio::steady_timer timer(sched.reactor(), 2s);
//   auto [ec] = co_await timer.async_wait(lancer::use_signal);
//   boost::asio::ip::tcp::resolver resolver(sched.reactor());
//   auto [ec2, results] = co_await resolver.async_resolve("example.com", "80", lancer::use_signal);
//
// The result is a std::tuple of the completion handler's arguments: errors come as values,
// never thrown. The completion handler stores them and pushes a signal to the waiting thread
// (from any OS thread: push is thread-safe), and the thread resumes in the scheduler's next
// turn, under its trampoline. Nothing resumes a coroutine directly: that is the rule for
// every awaitable (see "For awaitable authors" in sched/scheduler.hpp).
//
// Cancellation: if the waiting thread is cancelled (or times out) while the operation is
// pending, the operation is cancelled through Asio's per-operation cancellation slot, and its
// late completion is ignored. The operation's state is one small shared allocation.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <coroutine>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lancer/sched/scheduler.hpp"
#include "lancer/sched/signal.hpp"
#include "lancer/sched/task.hpp"

namespace lancer {

// The completion token: `co_await op(args..., lancer::use_signal)`.
struct use_signal_t {
  constexpr use_signal_t() noexcept = default;
};
inline constexpr use_signal_t use_signal{};

namespace detail {

// Shared by the awaiting coroutine and the operation's completion handler.
template <class... Args>
struct bridge_state {
  std::optional<std::tuple<std::decay_t<Args>...>> result;  // set by the handler
  boost::asio::cancellation_signal cancel;                  // emitted if the wait is abandoned
  scheduler* sched = nullptr;
  thread_id thread;        // the waiting thread
  std::uint32_t wait = 0;  // its suspension, named in the signal
  bool abandoned = false;  // the waiter is gone: a late completion tells no one
};

template <class... Args>
class bridge_handler {
 public:
  using cancellation_slot_type = boost::asio::cancellation_slot;

  explicit bridge_handler(std::shared_ptr<bridge_state<Args...>> st) noexcept
      : st_(std::move(st)) {}
  cancellation_slot_type get_cancellation_slot() const noexcept { return st_->cancel.slot(); }

  template <class... A>
  void operator()(A&&... args) {
    st_->result.emplace(std::forward<A>(args)...);
    if (!st_->abandoned) {
      st_->sched->push(signal{st_->thread, signal_kind::value_ready, st_->wait, 0, {}});
    }
  }

 private:
  std::shared_ptr<bridge_state<Args...>> st_;
};

template <class Initiation, class InitArgs, class... Args>
class bridge_awaitable {
 public:
  bridge_awaitable(Initiation init, InitArgs args)
      : init_(std::move(init)), args_(std::move(args)) {}
  bridge_awaitable(bridge_awaitable&&) noexcept = default;
  bridge_awaitable(const bridge_awaitable&) = delete;
  ~bridge_awaitable() {
    if (st_ && !st_->result) {  // abandoned while pending: cancel it, ignore its completion
      st_->abandoned = true;
      st_->cancel.emit(boost::asio::cancellation_type::terminal);
    }
  }

  bool await_ready() const noexcept {
    scheduler* s = scheduler::current();
    return s != nullptr && s->current_cancelled();
  }
  void await_suspend(std::coroutine_handle<> h) {
    scheduler* s = scheduler::current();
    if (s == nullptr || !s->current_thread()) {
      throw std::logic_error("lancer::use_signal: awaited outside a scheduler's thread");
    }
    st_ = std::make_shared<bridge_state<Args...>>();
    st_->sched = s;
    st_->thread = s->current_thread();
    st_->wait = s->park(h, mask_of(signal_kind::value_ready));
    std::apply(
        [&](auto&&... a) {
          std::move(init_)(bridge_handler<Args...>(st_), std::forward<decltype(a)>(a)...);
        },
        std::move(args_));
  }
  std::tuple<std::decay_t<Args>...> await_resume() {
    if (!st_) throw cancelled{};          // cancelled before it could start
    scheduler::current()->take_signal();  // throws if cancelled or timed out meanwhile
    return std::move(*st_->result);
  }

 private:
  Initiation init_;
  InitArgs args_;
  std::shared_ptr<bridge_state<Args...>> st_;
};

}  // namespace detail
}  // namespace lancer

template <class... Args>
struct boost::asio::async_result<lancer::use_signal_t, void(Args...)> {
  template <class Initiation, class... InitArgs>
  static auto initiate(Initiation&& init, lancer::use_signal_t, InitArgs&&... args) {
    return lancer::detail::bridge_awaitable<std::decay_t<Initiation>,
                                            std::tuple<std::decay_t<InitArgs>...>, Args...>(
        std::forward<Initiation>(init),
        std::tuple<std::decay_t<InitArgs>...>(std::forward<InitArgs>(args)...));
  }
};
