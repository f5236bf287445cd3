#include "lancer/http/run.hpp"

#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <functional>
#include <memory>
#include <system_error>

#include "lancer/io/address.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/systemd.hpp"
#include "lancer/source/tcp.hpp"
#include "lancer/source/unix.hpp"

namespace lancer::http {

namespace {

// After the drain deadline the core cuts off what is left; this is how long that may take.
constexpr auto k_drain_margin = std::chrono::milliseconds(500);

// Waits for the drain request (value_ready), drains, waits for the end, stops the scheduler.
task<> drain_on_request(server& srv, const run_options& o) {
  co_await wait_signal(mask_of(signal_kind::value_ready));
  scheduler& sched = *scheduler::current();
  const clock::time_point deadline = sched.now() + o.drain;
  srv.drain(deadline);
  const bool done = co_await srv.drained_until(deadline + k_drain_margin);
  if (!done)
    log(log_level::warn, "server", "{} connections left at the drain's end", srv.connections());
  if (o.on_drained) o.on_drained();
  sched.stop();
}

}  // namespace

int run(server::handler h, run_options o) {
  scheduler sched;
  server srv{sched, std::move(h), o.server};
  std::vector<std::unique_ptr<source>> sources;
  try {
    for (const std::string& where : o.listen) {
      if (where == "systemd") {
        for (const int fd : systemd::listen_fds())
          sources.push_back(std::make_unique<fd_source>(fd));
        continue;
      }
      const address a = parse_address(where);
      if (a.connector == address::kind::unix_socket) {
        sources.push_back(std::make_unique<unix_source>(a));
      } else {
        sources.push_back(std::make_unique<tcp_source>(a));
      }
    }
    if (sources.empty()) {
      log(log_level::error, "server", "nothing to listen on (no address, or systemd passed none)");
      return 1;
    }
    for (auto& s : sources)
      srv.attach_source(*s);
    srv.run();
  } catch (const std::exception& e) {
    log(log_level::error, "server", "{}", e.what());
    return 1;
  }
  const thread_id control = sched.spawn(drain_on_request(srv, o));
  boost::asio::signal_set signals(sched.reactor(), SIGINT, SIGTERM);
  // The first signal drains; a second one stops at once (an operator who means it).
  bool draining = false;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
        if (draining) {
          log(log_level::warn, "server", "{} again: stopping without waiting for the drain", name);
          srv.stop();
          sched.stop();
          return;
        }
        draining = true;
        log(log_level::info, "server", "{}: draining for up to {} ms", name,
            std::chrono::duration_cast<std::chrono::milliseconds>(o.drain).count());
        sched.push(signal{control, signal_kind::value_ready, 0, 0, {}});
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);
  if (o.on_ready) o.on_ready();
  sched.run_forever();
  return 0;
}

}  // namespace lancer::http
