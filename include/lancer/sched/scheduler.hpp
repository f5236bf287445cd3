// lancer::scheduler: the by-signal scheduler.
//
// A scheduler runs threads: top-level coroutines (`task<>`) that it owns. Threads move only
// when a signal names them. The loop is small enough to hold in one's head:
//
//   while (!stopped) {
//     wait for the reactor if nothing is queued;   // or poll it, or jump a manual clock
//     push a signal for every timer that is due;   // in deadline order
//     internal queue <- the whole public queue;    // a turn's work is fixed here
//     for each signal in it: resume its target;    // what they push runs next turn
//     run the after-turn callbacks;                // if any (add_after_turn)
//   }
//
// Rules:
// - One scheduler per OS thread. `push`, `cancel` and `stop` may be called from any OS thread
//   (they take a lock and wake a blocked scheduler); everything else belongs to the owner.
// - A signal is delivered only to a live thread that waits for its kind (and, if the signal
//   names a suspension in `wait`, to that suspension). Others are dropped, as they would be
//   for a finished thread. `cancel` and `timeout` are always taken.
// - At most one signal per thread per turn: a second one waits for the next turn, and a
//   build with checks (debug builds by default) reports it through the check handler.
// - No exception escapes: a thread that ends with an exception is handed to the error
//   handler (default: one ERROR log line) and reaped like any other.
// - The reactor (`asio::io_context`) is polled without blocking while signals flow, at least
//   every `k_poll_interval` deliveries; when nothing is queued the scheduler blocks in it until
//   the next timer, so an idle scheduler uses no CPU.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "lancer/sched/clock.hpp"
#include "lancer/sched/detail/timer_heap.hpp"
#include "lancer/sched/signal.hpp"
#include "lancer/sched/task.hpp"

namespace boost::asio {
class io_context;
}

namespace lancer {

class scheduler;

namespace detail {
// The scheduler running on this OS thread (inline: read on every suspension).
constinit inline thread_local scheduler* t_current_scheduler = nullptr;
}  // namespace detail

struct scheduler_stats {
  std::uint64_t turns = 0;       // turns that delivered at least one signal
  std::uint64_t delivered = 0;   // signals that resumed a thread
  std::uint64_t dropped = 0;     // signals for finished threads or for waits that had ended
  std::uint64_t deferred = 0;    // second signals to one thread in one turn, moved to the next
  std::uint64_t spawned = 0;     // threads started
  std::uint64_t finished = 0;    // threads reaped
  std::uint64_t idle_waits = 0;  // times the scheduler waited in the reactor with nothing queued
};

// Told when a thread it was given (spawn(task, owner)) ends. The server core is one: a
// connection's handler runs as a thread, and the server learns of its end without wrapping
// it in a coroutine of its own (a frame per connection saved).
class thread_owner {
 public:
  virtual ~thread_owner() = default;
  // Thread `t` has ended: it returned (`finished`, no `error`), threw (`finished`, `error`
  // holds the exception, `cancelled` and `timed_out` included), or was destroyed before it
  // could finish (not `finished`: discarded, cancelled before its first turn, or destroyed
  // with the scheduler). Called on the scheduler's OS thread, outside any thread, once the
  // thread's frames are destroyed. The scheduler's error handler is not called for it.
  virtual void thread_ended(thread_id t, bool finished, std::exception_ptr error) noexcept = 0;
};

class scheduler {
 public:
  // Called with a thread that ended by throwing (other than `cancelled`).
  using error_handler = std::function<void(thread_id, std::exception_ptr)>;
  // Called when a contract check fails (builds with checks only), with a description.
  using check_handler = std::function<void(std::string_view)>;

  // Deliveries between two non-blocking polls of the reactor while signals keep flowing.
  static constexpr std::uint32_t k_poll_interval = 64;

  explicit scheduler(lancer::clock clk = lancer::clock::steady());
  // Destroys every thread still alive (their frames unwind: RAII runs, nothing resumes).
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // The scheduler running on this OS thread, or null outside run()/run_forever().
  static scheduler* current() noexcept { return detail::t_current_scheduler; }

  // True when this build checks the scheduler's contract (one signal per target per turn).
  static bool checks_enabled() noexcept;

  // Starts `t` as a new thread, which the scheduler owns from now on. It first runs in the
  // next turn. Returns its id. Throws std::logic_error for an empty task. If `owner` is given,
  // it is told when the thread ends (and must outlive it).
  thread_id spawn(task<> t, thread_owner* owner = nullptr);

  // Queues `s` for the next turn. Thread-safe; from another OS thread it also wakes a blocked
  // scheduler. `s.source` is filled in with the running thread when left empty.
  void push(const signal& s) {
    if (detail::t_current_scheduler == this) {
      public_.push_back(s);
      if (!s.source) public_.back().source = running_id_;
    } else {
      push_remote(s);
    }
  }

  // Cancels `t`: its pending co_await throws `cancelled`, and so does every later one. A thread
  // that has not started yet is destroyed without running. Thread-safe: on the scheduler's own
  // OS thread the thread is marked at once; from another OS thread the cancel signal does it.
  void cancel(thread_id t);

  // True while `t` names a thread that has not finished.
  bool alive(thread_id t) const noexcept;

  // Destroys thread `t` at once without resuming it: its frames unwind (RAII runs) and its
  // slot is freed. Not for the running thread (use cancel). A no-op for a finished thread.
  void discard(thread_id t) noexcept;

  // Runs turns until nothing is left: no signal queued, no timer pending and no reactor work.
  // Threads still waiting for a signal nobody will send stay parked (see alive()).
  void run();

  // Runs turns until stop(), blocking when idle.
  void run_forever();

  // Runs turns while there is something to do now: queued signals, ready reactor handlers,
  // timers already due. Never blocks and never moves a manual clock. Tests use it to let a
  // server answer what it was sent.
  void run_until_idle();

  // Moves a manual clock forward by `d`, then runs until idle (timers due by then fire, in
  // deadline order, each at its own time). Throws std::logic_error on the steady clock.
  void advance(lancer::clock::duration d);

  // When the earliest pending timer falls due (a timer cancelled since may still count), or
  // nullopt when none is pending. A test stepping a manual clock goes from one to the next.
  std::optional<lancer::clock::time_point> next_timer() const noexcept;

  // Makes run()/run_forever() return after the current turn. Thread-safe.
  void stop() noexcept;

  // Runs `t` as a thread until it finishes, then returns its result or rethrows its exception.
  // Throws std::logic_error if the scheduler runs out of work first (the task is stuck).
  template <class T>
  T run_until_complete(task<T> t);

  lancer::clock& clock() noexcept { return clock_; }
  const lancer::clock& clock() const noexcept { return clock_; }
  // The time on the scheduler's clock. While the scheduler runs a steady clock, the clock is
  // read at most once per turn, when first asked: one read per turn instead of several per
  // request (a read costs tens of nanoseconds on a virtual machine), and every thread in a
  // turn sees the same time, as nginx's cached time does. A turn is short, so the lag is too.
  // Outside a turn, and on a manual clock, it reads the clock.
  lancer::clock::time_point now() const noexcept {
    if (!now_cached_) return clock_.now();
    if (!now_fresh_) {
      now_ = clock_.now();
      now_fresh_ = true;
    }
    return now_;
  }
  boost::asio::io_context& reactor() noexcept { return *reactor_; }

  // A T of this scheduler's own (one per type), made on first use and destroyed with the
  // scheduler, after its threads and before its reactor: state a library keeps per OS thread
  // (a proxy's pool of idle upstream connections), without a thread_local that would
  // outlive the scheduler. T must be default-constructible.
  template <class T>
  T& local() {
    const std::size_t i = local_index<T>();
    if (i >= locals_.size()) locals_.resize(i + 1);
    if (!locals_[i]) locals_[i] = std::make_unique<local_holder<T>>();
    return static_cast<local_holder<T>&>(*locals_[i]).value;
  }
  const scheduler_stats& stats() const noexcept { return stats_; }
  std::size_t live_threads() const noexcept { return live_; }

  // --- After-turn callbacks ---------------------------------------------------------------
  //
  // For work that a turn's threads batch up and that should leave once the turn is over (an
  // access log writes the lines of a whole turn with one write(2)). A callback runs on the
  // scheduler's OS thread at the end of every turn that delivered signals, after the last
  // delivery, outside any thread, in the order the callbacks were added. It may push signals
  // (they run next turn) and remove callbacks (its own included); it may not add one. An
  // exception from it is logged and dropped. With no callback a turn costs one test more.
  using turn_callback = std::function<void()>;
  using turn_callback_id = std::uint64_t;

  // Adds `f`; returns its id for remove_after_turn. Owner's OS thread only; throws
  // std::logic_error from inside a callback and for an empty `f`.
  turn_callback_id add_after_turn(turn_callback f);
  // Removes the callback `id`; a no-op for an id already removed. Owner's OS thread only.
  void remove_after_turn(turn_callback_id id) noexcept;

  void set_error_handler(error_handler h) { on_error_ = std::move(h); }
  void set_check_handler(check_handler h) { on_check_ = std::move(h); }

  // --- For awaitable authors (lancer's own awaitables are built on these) ---------------
  //
  // The rule: a parked thread is resumed only by a signal (push()), never by resuming its
  // coroutine handle directly, not even from a completion handler on this OS thread. Its
  // tasks hand control to each other through the trampoline the scheduler runs them under;
  // a coroutine resumed anywhere else would lose those hand-overs. An Asio operation is
  // awaited through lancer::use_signal (io/asio.hpp), which follows the rule. A breach is
  // caught: park() outside a thread the scheduler is running throws std::logic_error, and
  // builds with checks report a hand-over left behind by a coroutine resumed off the
  // trampoline.

  // The running thread, or an empty id outside a thread.
  thread_id current_thread() const noexcept { return running_id_; }

  // True when the running thread was cancelled: awaitables then throw instead of suspending.
  bool current_cancelled() const noexcept { return running_ != nullptr && running_->cancelled; }

  // Parks the running thread at `h` until a signal of a kind in `accepts` (or cancel or
  // timeout) arrives. Returns the number of this suspension, for `signal::wait`.
  std::uint32_t park(std::coroutine_handle<> h, signal_mask accepts) {
    if (running_ == nullptr) [[unlikely]] {
      resumed_off_trampoline();
    }
    running_->resume_at = h;
    running_->accepts = accepts;
    if (++running_->wait == 0) running_->wait = 1;  // 0 means "any suspension" in a signal
    return running_->wait;
  }

  // The signal that resumed the running thread. Throws `cancelled` or `timed_out` for those
  // kinds, so a co_await that ends this way unwinds the thread.
  const signal& take_signal() const {
    const signal& s = received_;
    if (running_->cancelled || s.kind == signal_kind::timeout) throw_for_signal();
    return s;
  }

  // Schedules `node` (its `fire` signal is pushed once `node.deadline` has passed), or removes
  // it. The node must stay alive and in place while scheduled.
  void add_timer(detail::timer_node& node) { timers_.push(node); }
  void remove_timer(detail::timer_node& node) noexcept { timers_.remove(node); }

 private:
  using root_handle = task<>::handle_type;

  struct local_base {
    virtual ~local_base() = default;
  };
  template <class T>
  struct local_holder final : local_base {
    T value{};
  };
  static std::size_t next_local_index() noexcept;
  template <class T>
  static std::size_t local_index() noexcept {
    static const std::size_t i = next_local_index();
    return i;
  }

  struct thread_slot {
    root_handle root;                   // the thread's root frame; null when the slot is free
    std::coroutine_handle<> resume_at;  // where it is parked; null while running
    thread_owner* owner = nullptr;      // told when the thread ends; may be null
    std::uint64_t last_turn = 0;        // turn of the last delivery (one per turn)
    std::uint32_t generation = 1;       // bumped when the slot is freed
    std::uint32_t wait = 0;             // number of the current suspension
    std::uint32_t next_free = 0;        // free-list link, meaningful while free
    signal_mask accepts = 0;            // kinds the current suspension takes
    bool cancelled = false;             // a cancel arrived: every await throws from now on
    bool started = false;               // resumed at least once
  };

  struct reactor_state;

  [[noreturn]] void throw_for_signal() const;
  [[noreturn]] static void resumed_off_trampoline();
  void push_remote(signal s);
  thread_slot& slot(std::uint32_t index) noexcept {
    return chunks_[index >> k_chunk_bits][index & (k_chunk_size - 1)];
  }
  enum class run_mode : std::uint8_t { until_empty, forever, until_idle };
  void loop(run_mode mode);
  bool turn(run_mode mode);
  bool wait_idle(run_mode mode);
  std::size_t poll_reactor();
  void pull_remote();
  void fire_due_timers();
  void deliver(const signal& s);
  void reap(std::uint32_t index);
  void report_error(thread_id id, const std::exception_ptr& error) noexcept;
  void report(std::string_view what);
  void run_after_turn() noexcept;
  thread_slot* find(thread_id t) noexcept;
  const thread_slot* find(thread_id t) const noexcept;

  template <class T>
  static task<> capture(task<T> t, std::optional<T>& out, std::exception_ptr& error);
  static task<> capture(task<> t, bool& done, std::exception_ptr& error);

  lancer::clock clock_;
  std::unique_ptr<reactor_state> reactor_state_;  // io_context, wake timer, work guard
  boost::asio::io_context* reactor_;              // owned by reactor_state_

  // Slots live in fixed-size chunks: stable addresses (a slot never moves) and cheap indexing.
  static constexpr std::uint32_t k_chunk_bits = 10;
  static constexpr std::uint32_t k_chunk_size = 1u << k_chunk_bits;
  std::vector<std::unique_ptr<thread_slot[]>> chunks_;
  std::uint32_t slot_count_ = 0;    // slots ever created
  std::uint32_t free_head_ = 0;     // first free slot index + 1; 0: none
  std::size_t live_ = 0;            // threads alive
  thread_slot* running_ = nullptr;  // the thread being resumed, if any
  thread_id running_id_{};
  // The signal that resumed the running thread: kept here, not in its slot, since only the
  // running thread takes its signal (a slot is 48 bytes, not 80: one per connection).
  signal received_{};

  std::vector<signal> public_;    // pushed on this OS thread; moved over at each turn
  std::vector<signal> internal_;  // the current turn's signals
  detail::timer_heap timers_;
  std::uint64_t turn_ = 0;
  std::uint32_t since_poll_ = 0;             // deliveries since the reactor was last polled
  mutable lancer::clock::time_point now_{};  // the steady clock, read once this turn
  mutable bool now_fresh_ = false;           // now_ was read this turn
  bool now_cached_ = false;                  // now() caches (a steady clock, inside a turn)

  std::mutex remote_mutex_;
  std::vector<signal> remote_;  // pushed from other OS threads (guarded by remote_mutex_)
  std::atomic<bool> remote_pending_{false};
  std::atomic<bool> wake_posted_{false};
  std::atomic<bool> stop_requested_{false};
  std::atomic<std::thread::id> owner_;  // the OS thread that created or last ran it

  scheduler_stats stats_;
  error_handler on_error_;
  check_handler on_check_;
  std::vector<std::unique_ptr<local_base>> locals_;  // local<T>(), by type

  struct after_turn_entry {
    turn_callback_id id;
    turn_callback fn;  // empty once removed while the callbacks ran
  };
  std::vector<after_turn_entry> after_turn_;  // add_after_turn(), in order
  turn_callback_id next_after_turn_id_ = 1;
  bool in_after_turn_ = false;     // the callbacks are running
  bool after_turn_holes_ = false;  // an entry was removed while they ran
};

// --- run_until_complete ---------------------------------------------------------------------

template <class T>
task<> scheduler::capture(task<T> t, std::optional<T>& out, std::exception_ptr& error) {
  try {
    out.emplace(co_await std::move(t));
  } catch (...) {
    error = std::current_exception();
  }
}

inline task<> scheduler::capture(task<> t, bool& done, std::exception_ptr& error) {
  try {
    co_await std::move(t);
    done = true;
  } catch (...) {
    error = std::current_exception();
  }
}

template <class T>
T scheduler::run_until_complete(task<T> t) {
  static_assert(!std::is_reference_v<T>, "run_until_complete returns values, not references");
  std::exception_ptr error;
  // The capturing thread points at these locals: if it is stuck, it must not outlive them.
  auto run_or_discard = [this](thread_id id) {
    run();
    if (alive(id)) {
      discard(id);
      throw std::logic_error("lancer::scheduler: task did not finish (nothing left to run)");
    }
  };
  if constexpr (std::is_void_v<T>) {
    bool done = false;
    run_or_discard(spawn(capture(std::move(t), done, error)));
    if (error) std::rethrow_exception(error);
  } else {
    std::optional<T> out;
    run_or_discard(spawn(capture(std::move(t), out, error)));
    if (error) std::rethrow_exception(error);
    return std::move(*out);
  }
}

}  // namespace lancer
