#include "lancer/core/forward.hpp"

#include <memory>
#include <string>
#include <utility>

#include "lancer/core/connection.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/joined_thread.hpp"

namespace lancer {

namespace {

// What the two directions of one forwarded connection share.
struct link_state {
  connection& client;
  stream& upstream;
  clock::duration idle;
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
  link_state st{c, *upstream, o.idle_timeout};
  refresh(st);
  // The way back on a thread of its own; it refers to this frame's streams, so it goes if
  // this frame unwinds first (a stop, a cut-off).
  joined_thread back{pump(*upstream, c, st)};
  co_await pump(c, *upstream, st);
  co_await back.join();
}

}  // namespace

server::handler forward(address upstream, forward_options options) {
  return [up = std::move(upstream), o = options](connection& c, frame&, pubframe&) {
    return forward_one(c, up, o);
  };
}

}  // namespace lancer
