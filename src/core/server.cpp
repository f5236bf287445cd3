#include "lancer/core/server.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "lancer/core/detail/descriptor.hpp"
#include "lancer/core/failure.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"

namespace lancer {

using detail::descriptor;

namespace {

// While a drain runs, a wake_at() comes this long before the drain's deadline at the latest:
// the handler gets a last turn (a last look for input) before what is left is cut off.
constexpr clock::duration k_last_look = std::chrono::milliseconds(1);

std::string conn_name(const connection& c) {
  return fmt::format("conn/{}", c.id());
}
}  // namespace

// A thread waiting in drained_until, linked into the server's list from its coroutine frame
// (no allocation). The server sets `fired` and signals the thread when the drain is done.
struct server::drain_waiter {
  explicit drain_waiter(server& srv, thread_id t)
      : owner(&srv), thread(t), next(srv.drain_waiters_) {
    if (next != nullptr) next->prev = this;
    srv.drain_waiters_ = this;
  }
  drain_waiter(const drain_waiter&) = delete;
  drain_waiter& operator=(const drain_waiter&) = delete;
  // A wait that ends otherwise (a cancel, its deadline, the thread discarded) unlinks itself.
  ~drain_waiter() { unlink(); }

  void unlink() noexcept {
    if (owner == nullptr) return;
    if (prev != nullptr) {
      prev->next = next;
    } else {
      owner->drain_waiters_ = next;
    }
    if (next != nullptr) next->prev = prev;
    owner = nullptr;
    prev = next = nullptr;
  }

  server* owner;  // null once fired or unlinked
  thread_id thread;
  drain_waiter* prev = nullptr;
  drain_waiter* next;
  bool fired = false;
};

server::server(scheduler& sched, handler h, server_options options)
    : sched_(sched), handler_(std::move(h)), options_(options) {
  if (!handler_) throw std::invalid_argument("lancer::server: empty handler");
}

source::~source() {
  // Only forget it: the derived part is gone already (and stopped itself), so no stop().
  if (attached_ != nullptr) attached_->forget_source(*this);
}

server::~server() {
  for (source* s : sources_) {
    s->stop();
    s->attached_ = nullptr;
  }
  stopping_ = true;
  destroying_ = true;
  // Threads first: their frames refer to the connections.
  if (manager_) sched_.discard(manager_);
  for (descriptor* d = all_; d != nullptr; d = d->all_next) {
    if (d->thread) sched_.discard(d->thread);
  }
  while (all_ != nullptr)
    reap(*all_);
  // Threads waiting for the drain are resumed (their wait ends as if drained); callbacks are
  // dropped: they could only find the server half gone.
  on_drained_.clear();
  check_drained();
}

void server::attach_source(source& src) {
  if (src.attached_ == this) return;
  if (src.attached_ != nullptr) {
    throw std::logic_error("lancer::server::attach_source: the source serves another server");
  }
  src.attached_ = this;
  sources_.push_back(&src);
  if (running_ && !stopping_) src.start(*this);
}

void server::detach_source(source& src) noexcept {
  if (src.attached_ != this) return;
  src.stop();
  forget_source(src);
}

void server::forget_source(source& src) noexcept {
  const auto it = std::find(sources_.begin(), sources_.end(), &src);
  if (it != sources_.end()) sources_.erase(it);
  src.attached_ = nullptr;
}

void server::run() {
  if (running_) throw std::logic_error("lancer::server::run: already running");
  running_ = true;
  manager_ = sched_.spawn(manage());
  for (source* s : sources_) {
    s->start(*this);
    // A test's in-memory source says it at DEBUG: every test starts one.
    log(s->in_memory() ? log_level::debug : log_level::info, "server", "listening on {}",
        s->name());
  }
}

void server::stop() {
  if (!stopping_) log(log_level::info, "server", "stopping: closing {} connections", live_);
  stopping_ = true;
  for (source* s : sources_)
    s->stop();
  for (descriptor* d = all_; d != nullptr; d = d->all_next) {
    d->conn.abort(std::make_error_code(std::errc::operation_canceled));
    if (d->thread) sched_.cancel(d->thread);
    flag(*d);
  }
  wake_manager();
  check_drained();  // no connection: drained at once
}

void server::drain(clock::time_point deadline) {
  if (!stopping_) {
    log(log_level::info, "server", "draining {} connections", live_);
    for (source* s : sources_) {
      try {
        s->accept_pending();  // what the kernel queued for us is served, not reset
      } catch (const std::exception& e) {
        log(log_level::warn, "server", "{}: taking queued connections failed: {}", s->name(),
            e.what());
      }
    }
  }
  stopping_ = true;
  drain_deadline_ = std::min(drain_deadline_, deadline);
  for (source* s : sources_)
    s->stop();
  for (descriptor* d = all_; d != nullptr; d = d->all_next) {
    set_deadline(*d, std::min(d->due, drain_deadline_), d->wake_only);
    if (d->conn.reader_.parked) d->conn.poke();  // let idle handlers see it: a read returns 0
  }
  wake_manager();
  check_drained();  // no connection: drained at once
}

// --- the end of a drain -----------------------------------------------------------------------

task<> server::drained() {
  co_await drained_until(clock::time_point::max());
}

task<bool> server::drained_until(clock::time_point deadline) {
  if (is_drained()) co_return true;
  const thread_id me = co_await current_thread();
  drain_waiter w{*this, me};
  // From here on the server may be gone whenever this thread is resumed: only `w` is read.
  // A value_ready signal from elsewhere (wait 0: any suspension) is not the drain's: wait on.
  while (!w.fired) {
    if (deadline == clock::time_point::max()) {
      co_await wait_signal(mask_of(signal_kind::value_ready));
    } else {
      const std::optional<signal> s =
          co_await wait_signal_until(deadline, mask_of(signal_kind::value_ready));
      if (!s) break;  // the deadline
    }
  }
  co_return w.fired;
}

void server::on_drained(std::function<void()> f) {
  if (!f) throw std::invalid_argument("lancer::server::on_drained: empty callback");
  on_drained_.push_back(std::move(f));
  check_drained();
}

// Once the server is drained: every waiting thread is signalled and every callback called,
// once. Cheap when there is nothing to tell.
void server::check_drained() noexcept {
  if (!is_drained()) return;
  while (drain_waiters_ != nullptr) {
    drain_waiter& w = *drain_waiters_;
    w.unlink();
    w.fired = true;
    sched_.push(signal{w.thread, signal_kind::value_ready, 0, 0, {}});
  }
  if (on_drained_.empty()) return;
  // A callback may add another (called at once, is_drained() holds): take the list first.
  std::vector<std::function<void()>> calls = std::move(on_drained_);
  on_drained_.clear();
  for (auto& f : calls) {
    try {
      f();
    } catch (const std::exception& e) {
      log(log_level::error, "server", "an on_drained callback failed: {}", e.what());
    } catch (...) {
      log(log_level::error, "server", "an on_drained callback failed");
    }
  }
}

connection* server::add_connection(std::unique_ptr<transport> t) {
  if (!t) throw std::invalid_argument("lancer::server::add_connection: no transport");
  if (stopping_) {
    ++stats_.refused;
    t->close();
    return nullptr;
  }
  if (layer_) t = layer_(std::move(t));
  auto* d = new descriptor(*this, next_id_++, std::move(t));
  d->all_next = all_;
  if (all_ != nullptr) all_->all_prev = d;
  all_ = d;
  ++live_;
  ++stats_.accepted;
  if (options_.timeout.count() > 0) set_deadline(*d, sched_.now() + options_.timeout);
  log(log_level::debug, conn_name(d->conn), "accepted from {}", d->conn.peer_address());
  try {
    d->thread = sched_.spawn(handler_(d->conn, d->frame, pub_), d);
  } catch (const std::exception& e) {
    // The handler threw before it returned a coroutine (or returned none): this connection
    // fails, every other one carries on.
    ++stats_.handler_errors;
    log(log_level::error, conn_name(d->conn), "handler failed to start: {}", e.what());
    d->finished = true;
    d->conn.abort(std::make_error_code(std::errc::connection_aborted));
    flag(*d);
  }
  return &d->conn;
}

void descriptor::thread_ended(thread_id, bool done, std::exception_ptr error) noexcept {
  conn.server_.thread_ended(*this, done, std::move(error));
}

// The end of a connection's thread: the handler returned, threw, or was destroyed unfinished.
// No exception reaches the scheduler; a failure is logged and closes only its connection.
void server::thread_ended(descriptor& d, bool done, std::exception_ptr error) noexcept {
  d.finished = true;
  d.thread = {};
  if (destroying_) return;  // ~server reaps every descriptor next
  connection& c = d.conn;
  if (error) {
    const failure f = classify_failure(error);
    if (f.peer) {
      log(f.level, conn_name(c), "handler ended: {}", f.what);
      if (f.code) c.abort(f.code);  // the transport failed: nothing more goes out
    } else {
      ++stats_.handler_errors;
      log(f.level, conn_name(c), "handler failed: {}", f.what);
      c.abort(std::make_error_code(std::errc::connection_aborted));
    }
  } else if (!done) {
    // Cancelled before its first turn (a stop right after the accept): nothing ran.
    c.abort(std::make_error_code(std::errc::operation_canceled));
  }
  c.close();
  flag(d);
}

// --- the managing coroutine -----------------------------------------------------------------

task<> server::manage() {
  for (;;) {
    manager_woken_ = false;
    process_ready();
    process_deadlines();
    if (stopping_ && live_ == 0) break;
    manager_parked_ = true;
    // Flagged while processing: run again next turn, after every other thread had its turn
    // (a lingering connection whose reads complete at once must not hold the scheduler).
    if (ready_head_ != nullptr) wake_manager();
    if (deadlines_.empty()) {
      manager_until_ = clock::time_point::max();
      co_await wait_signal(mask_of(signal_kind::wakeback));
    } else {
      manager_until_ = deadlines_.top().deadline;
      co_await wait_signal_until(manager_until_, mask_of(signal_kind::wakeback));
    }
    manager_parked_ = false;
  }
  manager_ = {};
  log(log_level::info, "server", "stopped after {} connections", stats_.accepted);
}

void server::wake_manager() noexcept {
  if (manager_parked_ && !manager_woken_ && manager_) {
    manager_woken_ = true;
    sched_.push(signal{manager_, signal_kind::wakeback, 0, 0, {}});
  }
}

void server::flag(descriptor& d) noexcept {
  if (!d.ready) {
    d.ready = true;
    d.ready_next = nullptr;
    if (ready_tail_ != nullptr) {
      ready_tail_->ready_next = &d;
    } else {
      ready_head_ = &d;
    }
    ready_tail_ = &d;
  }
  wake_manager();
}

void server::process_ready() {
  // Take the whole list: what is flagged while it is processed waits for the next round.
  descriptor* d = std::exchange(ready_head_, nullptr);
  ready_tail_ = nullptr;
  while (d != nullptr) {
    descriptor* next = d->ready_next;
    d->ready = false;
    d->ready_next = nullptr;
    if (d->finished) {
      try_finish(*d);  // may reap d
    } else {
      stats_.wakebacks += d->conn.wake_waiters(manager_);
    }
    d = next;
  }
}

void server::process_deadlines() {
  const clock::time_point now = sched_.now();
  while (!deadlines_.empty() && deadlines_.top().deadline <= now) {
    descriptor& d = deadlines_.pop();
    if (d.due > now) {
      // The deadline moved later since this key was filed: file it again at its place.
      d.deadline = d.due;
      deadlines_.push(d);
      continue;
    }
    d.due = clock::time_point::max();
    expire(d);
  }
}

void server::expire(descriptor& d) {
  connection& c = d.conn;
  if (d.finished) {
    // Its handler returned, but the peer would not take the rest of the output, or did not
    // end its side while the server lingered, in time.
    log(log_level::debug, conn_name(c), "{}",
        d.lingering ? "linger over" : "output not taken in time");
    c.abort(std::make_error_code(std::errc::timed_out));
    reap(d);
    return;
  }
  if (stopping_ && sched_.now() >= drain_deadline_) {
    cut_off(d, "cut off at the drain deadline");
    return;
  }
  if (d.wake_only) {  // wake_at(): the handler decides what the time means
    d.wake_only = false;
    c.poke();  // a pending read returns 0
    if (stopping_) {
      // The drain's deadline still holds, but the handler has its turn before it is cut.
      set_deadline(d, std::max(drain_deadline_, sched_.now() + clock::duration(1)));
    }
    return;
  }
  if (d.expiry_stage == 0) {
    ++stats_.timed_out;
    log(log_level::debug, conn_name(c), "deadline passed");
    c.expired_ = true;  // reads fail from now on; writes still go out during the grace
    d.expiry_stage = 1;
    // The pending co_await throws timed_out: the handler's, and another thread's waiting on
    // the connection (a forwarder's second direction).
    sched_.push(signal{d.thread, signal_kind::timeout, 0, 0, manager_});
    for (const stream::wait_slot* w : {&c.reader_, &c.writer_}) {
      if (w->parked && w->thread != d.thread) {
        sched_.push(signal{w->thread, signal_kind::timeout, 0, 0, manager_});
      }
    }
    if (options_.grace.count() > 0) {
      set_deadline(d, sched_.now() + options_.grace);
      return;
    }
  }
  cut_off(d, "still running past its deadline: cut off");
}

void server::cut_off(descriptor& d, const char* why) {
  ++stats_.cut_off;
  log(log_level::warn, conn_name(d.conn), "{}", why);
  d.conn.abort(std::make_error_code(std::errc::timed_out));
  sched_.cancel(d.thread);
}

void server::try_finish(descriptor& d) {
  connection& c = d.conn;
  if (!c.aborted_ && !c.error_ && !c.out_.empty()) {
    c.request_write();  // on_written flags again until the output is gone
    if (!c.out_.empty() || c.writing_) return;
  }
  if (linger(d)) return;
  reap(d);
}

// RFC 9112 9.6, a staged close: the sending side is shut (the FIN follows the last response);
// what the peer still sends is read and dropped until its EOF or the linger time, so the
// close never meets unread input (which makes the kernel send a reset). Returns false when
// there is nothing to wait for: the peer ended its side, the transport failed, or linger is 0.
bool server::linger(descriptor& d) {
  connection& c = d.conn;
  if (c.aborted_ || c.error_ || c.eof_ || options_.linger.count() <= 0) return false;
  if (!d.lingering) {
    d.lingering = true;
    if (!c.write_shut_) {
      c.write_shut_ = true;
      c.link().shutdown_write();
    }
    set_deadline(d, sched_.now() + options_.linger);
  }
  c.in_.consume(c.in_.size());
  c.in_.release();
  c.request_read();  // on_read flags the descriptor: this runs again
  if (c.eof_ || c.error_) return false;
  c.in_.consume(c.in_.size());
  c.in_.release();
  return true;
}

void server::reap(descriptor& d) noexcept {
  deadlines_.remove(d);
  if (d.ready) {  // unlink from the ready list (rare: reaped while flagged again)
    descriptor** p = &ready_head_;
    descriptor* prev = nullptr;
    while (*p != &d) {
      prev = *p;
      p = &(*p)->ready_next;
    }
    *p = d.ready_next;
    if (ready_tail_ == &d) ready_tail_ = prev;
  }
  if (d.all_prev != nullptr) {
    d.all_prev->all_next = d.all_next;
  } else {
    all_ = d.all_next;
  }
  if (d.all_next != nullptr) d.all_next->all_prev = d.all_prev;
  d.conn.close_transport();
  --live_;
  ++stats_.closed;
  log(log_level::debug, conn_name(d.conn), "closed");
  delete &d;
  if (live_ == 0 && !destroying_) check_drained();  // ~server tells the waiters itself
}

void server::set_deadline(descriptor& d, clock::time_point t, bool wake_only) noexcept {
  if (wake_only && drain_deadline_ != clock::time_point::max() &&
      t > drain_deadline_ - k_last_look) {
    t = drain_deadline_ - k_last_look;  // the wake comes first: a last look before the cut
  } else if (t > drain_deadline_) {
    t = drain_deadline_;  // a drain bounds every deadline
  }
  d.wake_only = wake_only;
  d.due = t;
  if (d.scheduled() && d.deadline <= t) return;  // the key comes first: moved up when due
  deadlines_.remove(d);
  d.deadline = t;
  deadlines_.push(d);
  if (t < manager_until_) wake_manager();  // it sleeps past the new deadline: re-arm
}

void server::clear_deadline(descriptor& d) noexcept {
  if (stopping_) {
    set_deadline(d, drain_deadline_);
    return;
  }
  d.wake_only = false;
  d.due = clock::time_point::max();
  deadlines_.remove(d);
}

}  // namespace lancer
