#include "lancer/core/forward.hpp"

#include <memory>
#include <string>
#include <utility>

#include "lancer/core/connection.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"

namespace lancer {

namespace {

// What the two directions of one forwarded connection share.
struct link_state {
  connection& client;
  stream& upstream;
  clock::duration idle;
  scheduler& sched;
  thread_id parent;             // the handler's thread: it pumps client -> upstream
  bool child_done = false;      // the upstream -> client direction has ended
  bool parent_waiting = false;  // the handler waits for it
};

// Both sides get the idle deadline anew: a byte moved either way is activity for both.
void refresh(link_state& st) noexcept {
  const clock::time_point t = st.client.now() + st.idle;
  st.client.set_deadline(t);
  st.upstream.set_deadline(t);
}

// Moves bytes from `from` to `to` until `from` ends, then passes its EOF on as a half-close.
// A failure on either side (a reset, the idle deadline) aborts both.
task<> pump(stream& from, stream& to, link_state& st) {
  std::error_code failed;
  bool with_reset = false;  // the failure was a transport's: the other side hears of it
  try {
    for (;;) {
      const std::size_t n = co_await from.read();
      if (!from.buffered().empty()) {
        refresh(st);
        co_await to.send(from.buffered());  // waits while `to` is above its high-water mark
        from.consume(from.buffered().size());
      }
      if (n == 0 && from.at_eof()) {
        co_await to.flush();
        to.close();  // the FIN goes on; the other direction carries on
        co_return;
      }
    }
  } catch (const timed_out&) {
    failed = std::make_error_code(std::errc::timed_out);
  } catch (const cancelled&) {
    throw;  // the server stops: its descriptors close every connection
  } catch (const std::system_error& e) {
    failed = e.code();
    with_reset = true;
  }
  from.abort(failed);
  if (with_reset) {
    to.reset(failed);
  } else {
    to.abort(failed);
  }
}

// The upstream -> client direction, on a thread of its own; tells the handler when it ends.
task<> pump_back(link_state& st) {
  co_await pump(st.upstream, st.client, st);
  st.child_done = true;
  if (st.parent_waiting) {
    st.sched.push(signal{st.parent, signal_kind::value_ready, 0, 0, {}});
  }
}

// Destroys the second direction's thread if the handler's frame unwinds first (a stop, a
// cut-off): the thread refers to the streams this frame owns.
struct child_guard {
  scheduler& sched;
  thread_id child;
  bool armed = true;
  ~child_guard() {
    if (armed && sched.alive(child)) sched.discard(child);
  }
};

task<> forward_one(connection& c, const address& up, const forward_options& o) {
  network& net = o.net != nullptr ? *o.net : real_network();
  std::unique_ptr<stream> upstream;
  std::string failure;
  try {
    upstream = co_await net.connect(up, o.connect_timeout);
  } catch (const connection_error& e) {
    failure = e.what();
  }
  if (!upstream) {
    log(log_level::warn, c.name(), "upstream {}", failure);
    c.abort(std::make_error_code(std::errc::connection_refused));
    co_return;
  }
  log(log_level::debug, c.name(), "forwarding to {}", upstream->name());
  scheduler& sched = c.sched();
  link_state st{c, *upstream, o.idle_timeout, sched, sched.current_thread()};
  refresh(st);
  child_guard guard{sched, sched.spawn(pump_back(st))};
  co_await pump(c, *upstream, st);
  while (!st.child_done) {
    st.parent_waiting = true;
    co_await wait_signal(mask_of(signal_kind::value_ready));
    st.parent_waiting = false;
  }
  guard.armed = false;
}

}  // namespace

server::handler forward(address upstream, forward_options options) {
  return [up = std::move(upstream), o = options](connection& c, frame&, pubframe&) {
    return forward_one(c, up, o);
  };
}

}  // namespace lancer
