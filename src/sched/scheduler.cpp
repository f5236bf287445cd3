#include "lancer/sched/scheduler.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lancer/log.hpp"

#ifndef LANCER_SCHED_CHECKS
#ifdef NDEBUG
#define LANCER_SCHED_CHECKS 0
#else
#define LANCER_SCHED_CHECKS 1
#endif
#endif

namespace lancer {
namespace asio = boost::asio;

using detail::t_current_scheduler;

struct scheduler::reactor_state {
  asio::io_context io{1};  // one thread: Asio may skip its internal locking
  asio::steady_timer wake{io};
  clock::time_point wake_at{};  // deadline the wake timer is armed for
  bool wake_armed = false;
};

scheduler::scheduler(lancer::clock clk)
    : clock_(clk),
      reactor_state_(std::make_unique<reactor_state>()),
      reactor_(&reactor_state_->io),
      owner_(std::this_thread::get_id()) {
  public_.reserve(256);
  internal_.reserve(256);
}

scheduler::~scheduler() {
  // Frames first: awaiters in them unschedule their timers from a heap that still exists.
  for (std::uint32_t i = 0; i < slot_count_; ++i) {
    if (slot(i).root) reap(i);
  }
  locals_.clear();  // before the reactor: they may hold sockets in it
  timers_.clear();
}

std::size_t scheduler::next_local_index() noexcept {
  static std::atomic<std::size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

bool scheduler::checks_enabled() noexcept {
  return LANCER_SCHED_CHECKS != 0;
}

// --- threads --------------------------------------------------------------------------------

thread_id scheduler::spawn(task<> t, thread_owner* owner) {
  if (!t.valid() || t.done()) throw std::logic_error("lancer::scheduler::spawn: empty task");
  std::uint32_t index;
  if (free_head_ != 0) {
    index = free_head_ - 1;
    free_head_ = slot(index).next_free;
  } else {
    index = slot_count_;
    if ((index >> k_chunk_bits) == chunks_.size()) {
      chunks_.push_back(std::make_unique<thread_slot[]>(k_chunk_size));
    }
    ++slot_count_;
  }
  thread_slot& fresh = slot(index);
  fresh.root = t.release();
  fresh.resume_at = fresh.root;
  fresh.owner = owner;
  fresh.accepts = mask_of(signal_kind::resume);
  fresh.wait = 0;
  fresh.cancelled = false;
  fresh.started = false;
  ++live_;
  ++stats_.spawned;
  const thread_id id{index, fresh.generation};
  push(signal{id, signal_kind::resume, 0, 0, running_id_});
  return id;
}

scheduler::thread_slot* scheduler::find(thread_id t) noexcept {
  if (t.index >= slot_count_) return nullptr;
  thread_slot& s = slot(t.index);
  return s.generation == t.generation && s.root ? &s : nullptr;
}

const scheduler::thread_slot* scheduler::find(thread_id t) const noexcept {
  return const_cast<scheduler*>(this)->find(t);
}

bool scheduler::alive(thread_id t) const noexcept {
  return find(t) != nullptr;
}

void scheduler::discard(thread_id t) noexcept {
  thread_slot* s = find(t);
  if (s == nullptr || s == running_) return;
  reap(t.index);
}

void scheduler::reap(std::uint32_t index) {
  thread_slot& dead = slot(index);
  const root_handle root = std::exchange(dead.root, nullptr);
  thread_owner* const owner = std::exchange(dead.owner, nullptr);
  const thread_id id{index, dead.generation};
  // Free the slot before destroying the frame: destructors in it may spawn or push.
  dead.resume_at = nullptr;
  dead.accepts = 0;
  if (++dead.generation == 0) dead.generation = 1;
  dead.next_free = free_head_;
  free_head_ = index + 1;
  --live_;
  ++stats_.finished;

  const bool finished = root.done();
  std::exception_ptr error = finished ? root.promise().exception() : nullptr;
  root.destroy();
  if (owner != nullptr) {
    owner->thread_ended(id, finished, std::move(error));
  } else if (error) {
    report_error(id, error);
  }
}

void scheduler::report_error(thread_id id, const std::exception_ptr& error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const cancelled& e) {
    log(log_level::debug, "sched", "thread/{} unwound: {}", id.index, e.what());
  } catch (...) {
    if (on_error_) {
      try {
        on_error_(id, error);
      } catch (...) {
        log(log_level::error, "sched", "thread/{}: the error handler threw", id.index);
      }
      return;
    }
    try {
      throw;
    } catch (const std::exception& e) {
      log(log_level::error, "sched", "thread/{} ended with an exception: {}", id.index, e.what());
    } catch (...) {
      log(log_level::error, "sched", "thread/{} ended with a non-standard exception", id.index);
    }
  }
}

void scheduler::resumed_off_trampoline() {
  throw std::logic_error(
      "lancer::scheduler: a coroutine resumed outside the scheduler tried to wait; an "
      "awaitable must push a signal to resume a thread, never resume its handle directly");
}

void scheduler::throw_for_signal() const {
  if (running_->cancelled) throw cancelled{};
  throw timed_out{};
}

// --- signals --------------------------------------------------------------------------------

void scheduler::push_remote(signal s) {
  // Outside run() on the owning OS thread (a test driving a fake client, a source set up
  // before run): the local queue is safe, and needs neither the lock nor a wake-up.
  if (t_current_scheduler == nullptr && std::this_thread::get_id() == owner_.load()) {
    public_.push_back(s);
    return;
  }
  {
    std::lock_guard lock(remote_mutex_);
    remote_.push_back(s);
    remote_pending_.store(true, std::memory_order_release);
  }
  // One wake-up in flight is enough: it makes a blocked run_one() return.
  if (!wake_posted_.exchange(true, std::memory_order_acq_rel)) {
    asio::post(*reactor_, [this] { wake_posted_.store(false, std::memory_order_release); });
  }
}

void scheduler::cancel(thread_id t) {
  if (std::this_thread::get_id() == owner_.load()) {
    if (thread_slot* slot = find(t)) slot->cancelled = true;
  }
  push(signal{t, signal_kind::cancel, 0, 0, {}});
}

void scheduler::pull_remote() {
  if (!remote_pending_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(remote_mutex_);
  public_.insert(public_.end(), remote_.begin(), remote_.end());
  remote_.clear();
  remote_pending_.store(false, std::memory_order_relaxed);
}

void scheduler::report(std::string_view what) {
  if (on_check_) {
    on_check_(what);
  } else {
    log(log_level::warn, "sched", "check failed: {}", what);
  }
}

void scheduler::deliver(const signal& s) {
  thread_slot* slot = find(s.target);
  if (slot == nullptr || slot->resume_at == nullptr) {
    ++stats_.dropped;
    return;
  }
  const bool forced = s.kind == signal_kind::cancel || s.kind == signal_kind::timeout;
  // An unnumbered resume starts a thread; once it runs, a resume must name its suspension
  // (timers do), so a stray one cannot end a sleep early.
  if (s.kind == signal_kind::resume && s.wait == 0 && slot->started) {
    ++stats_.dropped;
    return;
  }
  if (!forced && ((s.wait != 0 && s.wait != slot->wait) || !(slot->accepts & mask_of(s.kind)))) {
    ++stats_.dropped;  // meant for a suspension that has ended, or a kind nobody waits for
    return;
  }
  if (slot->last_turn == turn_) {
    // Nothing is lost: the signal is delivered next turn, re-checked against the wait then.
    ++stats_.deferred;
    if (LANCER_SCHED_CHECKS) {
      report(fmt::format("thread/{} got a second signal in turn {} (kind {}); deferred",
                         s.target.index, turn_, static_cast<int>(s.kind)));
    }
    public_.push_back(s);
    return;
  }
  slot->last_turn = turn_;
  if (!slot->started && (slot->cancelled || s.kind == signal_kind::cancel)) {
    reap(s.target.index);  // cancelled before it ran: it never starts
    return;
  }
  slot->started = true;
  received_ = s;
  if (s.kind == signal_kind::cancel) slot->cancelled = true;
  ++stats_.delivered;

  if (LANCER_SCHED_CHECKS && detail::t_handoff) {
    // Left by a task that finished in a coroutine resumed off the trampoline: its awaiter
    // was never resumed, and would now run in the wrong thread.
    report(
        "a hand-over is pending outside the trampoline: a coroutine was resumed directly "
        "(an awaitable must push a signal instead)");
    detail::t_handoff = nullptr;
  }
  const std::coroutine_handle<> h = std::exchange(slot->resume_at, nullptr);
  running_ = slot;
  running_id_ = s.target;
  detail::resume_chain(h);
  running_ = nullptr;
  running_id_ = {};
  if (slot->root.done()) reap(s.target.index);
}

// --- the loop -------------------------------------------------------------------------------

void scheduler::fire_due_timers() {
  if (timers_.empty()) return;
  const clock::time_point now = this->now();
  while (!timers_.empty() && timers_.top().deadline <= now) {
    detail::timer_node& node = timers_.pop();
    public_.push_back(node.fire);
  }
}

std::size_t scheduler::poll_reactor() {
  since_poll_ = 0;
  if (reactor_->stopped()) reactor_->restart();
  return reactor_->poll();
}

// Called with nothing queued. Waits until there may be something to do: reactor work, a due
// timer or a remote push. Returns false when there is nothing left at all (run() ends).
bool scheduler::wait_idle(run_mode mode) {
  reactor_state& r = *reactor_state_;
  ++stats_.idle_waits;
  const bool forever = mode == run_mode::forever;
  if (mode == run_mode::until_idle) {
    // Only what can happen now: ready reactor handlers, timers already due.
    const std::size_t ran = poll_reactor();
    pull_remote();
    return ran != 0 || !public_.empty() ||
           (!timers_.empty() && clock_.now() >= timers_.top().deadline);
  }
  if (!timers_.empty()) {
    const clock::time_point next = timers_.top().deadline;
    if (clock_.now() >= next) return poll_reactor(), true;
    if (clock_.is_manual()) {
      // Let the reactor run what is ready first; jump only when the scheduler is truly idle.
      if (poll_reactor() == 0) {
        pull_remote();
        if (public_.empty()) clock_.advance_to(next);
      }
      return true;
    }
    // Re-arm only for an earlier deadline. A later one (a keep-alive deadline pushed on by
    // each request) lets the armed timer fire early, find nothing due, and arm again then:
    // one wake per timeout period instead of a timer syscall per request.
    if (!r.wake_armed || next < r.wake_at) {
      r.wake_at = next;
      r.wake_armed = true;
      r.wake.expires_at(next);
      r.wake.async_wait([&r](const boost::system::error_code& ec) {
        if (!ec) r.wake_armed = false;
      });
    }
  } else if (r.wake_armed) {
    r.wake.cancel();  // the wake timer must not keep run() waiting for a timer that is gone
    r.wake_armed = false;
  }
  if (reactor_->stopped()) reactor_->restart();
  since_poll_ = 0;
  // With a work guard (run_forever) or the wake timer armed, this blocks; otherwise it returns
  // 0 at once when the reactor has no work left. Handlers it runs after a long block must not
  // see the time of the turn before it: they read the clock.
  now_cached_ = false;
  const std::size_t ran = reactor_->run_one();
  if (ran == 0 && !forever && timers_.empty()) {
    pull_remote();
    return !public_.empty();
  }
  return true;
}

bool scheduler::turn(run_mode mode) {
  pull_remote();
  if (public_.empty()) {
    if (!wait_idle(mode)) return false;
    pull_remote();
  } else if (since_poll_ >= k_poll_interval) {
    poll_reactor();
    pull_remote();
  }
  // A new turn: the clock is read again when first asked (see now()).
  now_fresh_ = false;
  now_cached_ = !clock_.is_manual();
  fire_due_timers();
  if (public_.empty()) return true;

  ++turn_;
  ++stats_.turns;
  internal_.swap(public_);
  for (const signal& s : internal_)
    deliver(s);
  since_poll_ += static_cast<std::uint32_t>(internal_.size());
  internal_.clear();
  if (!after_turn_.empty()) [[unlikely]] {
    run_after_turn();
  }
  return true;
}

// --- after-turn callbacks -------------------------------------------------------------------

scheduler::turn_callback_id scheduler::add_after_turn(turn_callback f) {
  if (!f) throw std::logic_error("lancer::scheduler::add_after_turn: empty callback");
  if (in_after_turn_) {
    throw std::logic_error("lancer::scheduler::add_after_turn: called from an after-turn callback");
  }
  after_turn_.push_back({next_after_turn_id_, std::move(f)});
  return next_after_turn_id_++;
}

void scheduler::remove_after_turn(turn_callback_id id) noexcept {
  for (auto it = after_turn_.begin(); it != after_turn_.end(); ++it) {
    if (it->id != id || !it->fn) continue;
    if (in_after_turn_) {
      it->fn = nullptr;  // the running loop skips it; erased once the loop ends
      after_turn_holes_ = true;
    } else {
      after_turn_.erase(it);
    }
    return;
  }
}

void scheduler::run_after_turn() noexcept {
  in_after_turn_ = true;
  for (after_turn_entry& e : after_turn_) {
    if (!e.fn) continue;
    try {
      e.fn();
    } catch (const std::exception& ex) {
      log(log_level::error, "sched", "an after-turn callback threw: {}", ex.what());
    } catch (...) {
      log(log_level::error, "sched", "an after-turn callback threw a non-standard exception");
    }
  }
  in_after_turn_ = false;
  if (after_turn_holes_) {
    std::erase_if(after_turn_, [](const after_turn_entry& e) { return !e.fn; });
    after_turn_holes_ = false;
  }
}

void scheduler::loop(run_mode mode) {
  if (t_current_scheduler == this)
    throw std::logic_error("lancer::scheduler: run() from inside a thread");
  if (t_current_scheduler != nullptr) {
    throw std::logic_error("lancer::scheduler: another scheduler runs on this OS thread");
  }
  scheduler* const previous = std::exchange(t_current_scheduler, this);
  owner_ = std::this_thread::get_id();
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  if (mode == run_mode::forever) guard.emplace(reactor_->get_executor());
  try {
    while (!stop_requested_.load(std::memory_order_acquire) && turn(mode)) {
    }
  } catch (...) {
    now_cached_ = false;
    t_current_scheduler = previous;
    throw;
  }
  now_cached_ = false;
  stop_requested_.store(false, std::memory_order_release);
  t_current_scheduler = previous;
}

void scheduler::run() {
  loop(run_mode::until_empty);
}
void scheduler::run_forever() {
  loop(run_mode::forever);
}
void scheduler::run_until_idle() {
  loop(run_mode::until_idle);
}

void scheduler::advance(lancer::clock::duration d) {
  if (!clock_.is_manual()) throw std::logic_error("lancer::scheduler::advance: steady clock");
  const clock::time_point target = clock_.now() + d;
  // Step through each due timer in turn, so every sleeper wakes at its own deadline.
  for (;;) {
    run_until_idle();
    if (timers_.empty() || timers_.top().deadline > target) break;
    clock_.advance_to(timers_.top().deadline);
  }
  clock_.advance_to(target);
  run_until_idle();
}

std::optional<lancer::clock::time_point> scheduler::next_timer() const noexcept {
  if (timers_.empty()) return std::nullopt;
  return timers_.top().deadline;
}

void scheduler::stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  if (t_current_scheduler != this && !wake_posted_.exchange(true, std::memory_order_acq_rel)) {
    try {
      asio::post(*reactor_, [this] { wake_posted_.store(false, std::memory_order_release); });
    } catch (...) {
      // Out of memory for the wake-up: the flag is still seen at the next wake.
    }
  }
}

}  // namespace lancer
