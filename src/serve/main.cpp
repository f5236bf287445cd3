// lancer-serve: the deployable server built on lancer.
//
// What it serves comes from its flags and its configuration file (config.hpp): hosts and their
// routes (static roots, reverse proxies, CGI directories), handler modules, and built-in
// routes: /plaintext answers "Hello, World!"; /echo answers any method with the request body;
// /ws is a WebSocket echo (each message comes back whole, text as text, binary as binary; a
// plain request gets 426). A health endpoint and a metrics endpoint are opt-in.
// SIGINT and SIGTERM drain: stop accepting, let requests in flight finish (up to --drain
// seconds), close idle keep-alive connections, write the access log's last lines, exit 0
// (SIGTERM first waits --drain-delay seconds, the health endpoint answering 503).
// SIGUSR2 starts the binary anew with the listening sockets (upgrade.hpp), then drains.
// SIGHUP reloads the configuration file (a file that fails to load is refused, logged, and the
// old configuration stays; so is any during a drain), then writes the access log's buffered
// lines and reopens its file.
#include <unistd.h>

#include <fmt/format.h>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config.hpp"
#include "lancer/core/forward.hpp"
#include "lancer/http/access_log.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/proxies.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/systemd.hpp"
#include "lancer/source/tcp.hpp"
#include "lancer/source/unix.hpp"
#include "site.hpp"
#include "upgrade.hpp"

namespace fs = std::filesystem;
namespace http = lancer::http;
using lancer_serve::config;
using lancer_serve::config_error;

namespace {

// Says why the configuration cannot be used; returns the exit code: 2 (with the usage) for a
// bad command line, 1 for a bad file (or any error of -t's).
int refuse(const config_error& e, bool test_only) {
  std::fprintf(stderr, "lancer-serve: %s\n", e.what());
  if (!e.command_line() || test_only) return 1;
  std::fputs(lancer_serve::usage(), stderr);
  return 2;
}

// The access log `c` names, opened as a start opens it (a file is created if missing). Throws
// config_error, naming where it was set, if it cannot be.
std::unique_ptr<http::access_log> open_access_log(const config& c) {
  http::access_log_options lo;
  lo.format = c.access_log_format;
  if (!c.trusted_proxies.empty())
    lo.trusted = std::make_shared<const http::trusted_proxies>(c.trusted_proxies);
  try {
    return std::make_unique<http::access_log>(c.access_log, lo);
  } catch (const std::system_error& e) {
    const lancer_serve::origin where = c.where_of("access-log");
    throw config_error(
        fmt::format("{}: cannot open the access log {}: {}", where.str(), c.access_log, e.what()),
        where.file.empty());
  }
}

// Writes this process's id to `path`; false (logged) if it cannot.
bool write_pid_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  bool ok = f != nullptr;
  if (ok) {
    ok = std::fprintf(f, "%d\n", static_cast<int>(::getpid())) > 0;
    ok = std::fclose(f) == 0 && ok;
  }
  if (!ok) {
    lancer::log(lancer::log_level::error, "server", "cannot write the pid file {}: {}", path,
                std::strerror(errno));
  }
  return ok;
}

// After the drain deadline the core cuts off whatever is left; this is how long that may take
// before the process stops anyway.
constexpr auto k_drain_margin = std::chrono::milliseconds(100);

struct worker;
lancer::task<> drain_on_request(worker& w);

// One thread's share of the server: its scheduler, its service slot, the HTTP server
// (servers[0]) and one server per --forward rule, and their listeners.
struct worker {
  worker(std::shared_ptr<const http::service> s)
      : slot(std::make_shared<http::service_slot>(std::move(s))) {
    add_server(http::serve(slot));
  }

  lancer::server& add_server(lancer::server::handler h) {
    servers.push_back(std::make_unique<lancer::server>(sched, std::move(h)));
    return *servers.back();
  }
  // An HTTP listener, named by its address as configured (a reload adds and removes them).
  void listen(std::string name, std::unique_ptr<lancer::source> src) {
    listeners.push_back({std::move(name), std::move(src)});
    servers[0]->attach_source(*listeners.back().src);
  }
  // Stops and forgets the HTTP listener called `name`; false if there is none.
  bool unlisten(const std::string& name) {
    const auto it = std::find_if(listeners.begin(), listeners.end(),
                                 [&](const auto& l) { return l.name == name; });
    if (it == listeners.end()) return false;
    servers[0]->detach_source(*it->src);
    listeners.erase(it);
    return true;
  }
  void attach(lancer::server& srv, std::unique_ptr<lancer::source> src) {
    sources.push_back(std::move(src));
    srv.attach_source(*sources.back());
  }
  void start() {
    for (auto& s : servers)
      s->run();
    control = sched.spawn(drain_on_request(*this));
  }
  // Drains for up to `drain_seconds` (the configuration's at the signal: a reload may have
  // changed it). Thread-safe: the drain itself runs on the worker's own thread.
  void request_drain(int drain_seconds) {
    lancer::signal request{control, lancer::signal_kind::value_ready, 0, 0, {}};
    request.value = static_cast<std::uint64_t>(drain_seconds);
    sched.push(request);
  }
  std::size_t connections() const noexcept {
    std::size_t n = 0;
    for (const auto& s : servers)
      n += s->connections();
    return n;
  }

  struct listener {
    std::string name;
    std::unique_ptr<lancer::source> src;
  };

  lancer::scheduler sched;
  std::shared_ptr<http::service_slot> slot;
  std::vector<std::unique_ptr<lancer::server>> servers;
  std::vector<listener> listeners;                       // servers[0]'s, by address
  std::vector<std::unique_ptr<lancer::source>> sources;  // the others (forward, systemd)
  lancer::thread_id control;
  std::thread os_thread;
};

// Waits for the drain request (a value_ready signal, possibly from another OS thread, whose
// value is the drain's seconds), drains every server of the worker, and stops its scheduler
// once every server says its drain is done (server::drained_until: no polling), or the drain
// deadline (and its margin) passed.
lancer::task<> drain_on_request(worker& w) {
  const lancer::signal request =
      co_await lancer::wait_signal(lancer::mask_of(lancer::signal_kind::value_ready));
  lancer::scheduler& sched = *lancer::scheduler::current();
  const auto deadline =
      sched.now() + std::chrono::seconds(static_cast<std::int64_t>(request.value));
  for (auto& s : w.servers)
    s->drain(deadline);
  for (auto& s : w.servers) {
    const bool drained = co_await s->drained_until(deadline + k_drain_margin);
    if (!drained) break;
  }
  if (w.connections() > 0) {
    lancer::log(lancer::log_level::warn, "server", "{} connections left at the drain's end",
                w.connections());
  }
  sched.stop();
}

// The addresses the HTTP server listens on: the configured ones, or the default when there
// are none (and no socket activation gave any).
std::vector<std::string> listen_of(const config& c, bool activated) {
  if (c.listen.empty() && !activated) return {"tcp/$4:8080"};
  return c.listen;
}

// The whole process: its workers and what a reload changes.
class app {
 public:
  app(lancer_serve::command_line cl, config c) : cl_(std::move(cl)), cfg_(std::move(c)) {}

  int run();

 private:
  // The address `name` names; a TCP port 0 becomes the port worker 0's listener by that name
  // got, if it has one. On worker 0's thread.
  lancer::address resolve(const std::string& name) const;
  // Adds the listener for `name` at `a` to worker `i`, on that worker's thread (TCP: every
  // worker; Unix: worker 0 only).
  static void add_listener(worker& w, std::size_t i, const std::string& name, lancer::address a,
                           bool reuse_port);
  void on_signal(int sig);
  // SIGUSR2: each worker names its listeners on its own thread, then worker 0 starts the new
  // binary with them (upgrade.hpp) and drains once it serves.
  void upgrade();
  void start_drain();
  void reload();
  // Makes the services from `next` and puts them in place; false (logged) if they cannot be.
  // `done` is logged once every worker thread serves them.
  bool install(const config& next, std::string_view why, std::string done);
  void watch_modules();

  lancer_serve::command_line cl_;
  config cfg_;
  lancer_serve::runtime rt_;
  lancer_serve::module_set modules_;
  std::unique_ptr<http::access_log> access_log_;
  std::vector<std::unique_ptr<worker>> workers_;
  lancer_serve::upgrader upgrader_;  // after workers_: it goes before their io_contexts
  std::vector<int> activated_;
  std::optional<boost::asio::signal_set> signals_;
  std::optional<boost::asio::steady_timer> delay_timer_, module_timer_;
  bool drain_delayed_ = false;  // a SIGTERM started the drain delay
  bool drain_started_ = false;
};

lancer::address app::resolve(const std::string& name) const {
  lancer::address a = lancer::parse_address(name);
  if (a.connector == lancer::address::kind::tcp && a.port == 0 && !workers_.empty()) {
    for (const auto& l : workers_[0]->listeners)
      if (l.name == name) a.port = lancer_serve::local_port(*l.src);
  }
  return a;
}

void app::add_listener(worker& w, std::size_t i, const std::string& name, lancer::address a,
                       bool reuse_port) {
  if (a.connector == lancer::address::kind::tcp) {
    lancer::tcp_options to;
    to.exclusive = i == 0 && !reuse_port;  // later workers share worker 0's port
    w.listen(name, std::make_unique<lancer::tcp_source>(a, to));
  } else if (i == 0) {
    w.listen(name, std::make_unique<lancer::unix_source>(a));
  }
}

int app::run() {
  try {
    modules_.update(cfg_, true, true);
  } catch (const config_error& e) {
    return refuse(e, false);
  }
  // Buffered per worker thread, written at the end of each scheduler turn.
  try {
    access_log_ = open_access_log(cfg_);
  } catch (const config_error& e) {
    return refuse(e, false);
  }
  http::access_hook logged;
  if (access_log_->enabled()) logged = access_log_->hook();
  http::access_hook counted = rt_.metrics.hook();
  rt_.log_request = [logged, counted](const lancer::connection& c, const http::request& req) {
    if (logged) logged(c, req);
    counted(c, req);
  };

  if (cfg_.systemd) activated_ = lancer::systemd::listen_fds();
  const std::vector<std::string> listen = listen_of(cfg_, !activated_.empty());
  for (int i = 0; i < cfg_.threads; ++i) {
    std::shared_ptr<const http::service> service;
    try {
      service = lancer_serve::make_service(cfg_, modules_, rt_);
    } catch (const config_error& e) {
      return refuse(e, false);
    }
    workers_.push_back(std::make_unique<worker>(std::move(service)));
    worker& w = *workers_.back();
    const std::size_t index = workers_.size() - 1;
    for (const std::string& name : listen) {
      if (auto inherited = upgrader_.take(name)) {  // the socket an older process handed over
        w.listen(name, std::move(inherited));
      } else {
        add_listener(w, index, name, resolve(name), cfg_.reuse_port);
      }
    }
    if (i == 0) {
      for (const int fd : activated_)
        w.attach(*w.servers[0], std::make_unique<lancer::fd_source>(fd));
    }
    // Each --forward rule: a server of its own, whose listener sends every connection on.
    for (const auto& [from, to] : cfg_.forward) {
      const lancer::address listen_at = lancer::parse_address(from);
      lancer::server& fwd = w.add_server(lancer::forward(lancer::parse_address(to, true)));
      if (listen_at.connector == lancer::address::kind::tcp) {
        lancer::tcp_options to_options;
        to_options.exclusive = i == 0 && !cfg_.reuse_port;
        w.attach(fwd, std::make_unique<lancer::tcp_source>(listen_at, to_options));
      } else if (i == 0) {
        w.attach(fwd, std::make_unique<lancer::unix_source>(listen_at));
      }
    }
    try {
      w.start();
    } catch (const std::system_error& e) {
      const bool taken = e.code() == std::errc::address_in_use;
      lancer::log(lancer::log_level::error, "server", "{}{}", e.what(),
                  taken && !cfg_.reuse_port ? " (--reuse-port shares a TCP port on purpose)" : "");
      return 1;
    }
  }

  // Signals arrive through worker 0's reactor.
  worker& first = *workers_[0];
  signals_.emplace(first.sched.reactor(), SIGINT, SIGTERM, SIGHUP);
  signals_->add(SIGUSR2);
  std::function<void(const boost::system::error_code&, int)> on_sig =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        on_signal(sig);
        signals_->async_wait(on_sig);
      };
  signals_->async_wait(on_sig);
  delay_timer_.emplace(first.sched.reactor());
  module_timer_.emplace(first.sched.reactor());
  if (!cfg_.modules.empty() && !cfg_.no_reload) watch_modules();
  // Ready only now: a SIGTERM from here on drains (before, it would have killed the process).
  if (!cfg_.pid_file.empty() && !write_pid_file(cfg_.pid_file)) return 1;
  if (cfg_.systemd) lancer::systemd::notify("READY=1");
  upgrader_.started();

  for (std::size_t i = 1; i < workers_.size(); ++i) {
    workers_[i]->os_thread = std::thread([this, w = workers_[i].get()] {
      for (auto& srv : w->servers)  // the HTTP server's connections and --forward's
        rt_.metrics.watch(*srv);
      w->sched.run_forever();
    });
  }
  for (auto& srv : first.servers)
    rt_.metrics.watch(*srv);
  first.sched.run_forever();
  for (std::size_t i = 1; i < workers_.size(); ++i)
    workers_[i]->os_thread.join();
  access_log_->flush();  // every request answered has its line before the process ends
  // After an upgrade, the pid file and the socket files are the new process's.
  if (!upgrader_.handed_over()) {
    if (!cfg_.pid_file.empty()) fs::remove(cfg_.pid_file);
    upgrader_.remove_inherited_paths();
  }
  lancer::log(lancer::log_level::info, "server", "exiting");
  return 0;
}

void app::on_signal(int sig) {
  if (sig == SIGHUP) {
    // A draining server takes no new connection: a new listener would never serve.
    if (drain_started_) {
      lancer::log(lancer::log_level::warn, "server",
                  "SIGHUP: draining, the configuration is not reloaded");
    } else {
      reload();
    }
    if (access_log_->enabled() && access_log_->destination() != "-" && access_log_->reopen()) {
      lancer::log(lancer::log_level::info, "server", "SIGHUP: reopened the access log {}",
                  access_log_->destination());
    }
    return;
  }
  if (sig == SIGUSR2) {
    upgrade();
    return;
  }
  upgrader_.stop();
  rt_.draining.store(true, std::memory_order_relaxed);  // the health endpoint says so
  if (sig == SIGTERM && cfg_.drain_delay_seconds > 0 && !drain_started_ && !drain_delayed_) {
    drain_delayed_ = true;
    lancer::log(lancer::log_level::info, "server",
                "SIGTERM: draining in {} s; the health endpoint says draining until then",
                cfg_.drain_delay_seconds);
    if (cfg_.systemd) lancer::systemd::notify("STOPPING=1");
    delay_timer_->expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(cfg_.drain_delay_seconds)));
    delay_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) start_drain();
    });
    return;
  }
  lancer::log(lancer::log_level::info, "server", "{}: draining {} thread(s) for up to {} s",
              sig == SIGINT ? "SIGINT" : "SIGTERM", workers_.size(), cfg_.drain_seconds);
  start_drain();
}

void app::upgrade() {
  if (!activated_.empty()) {
    lancer::log(lancer::log_level::warn, "upgrade",
                "SIGUSR2 ignored: socket activation's listeners are systemd's to keep; restart "
                "the unit instead");
    return;
  }
  using named = std::vector<lancer_serve::listener>;
  auto per_worker = std::make_shared<std::vector<named>>(workers_.size());
  auto left = std::make_shared<std::atomic<std::size_t>>(workers_.size());
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    worker* w = workers_[i].get();
    boost::asio::post(w->sched.reactor(), [this, i, w, per_worker, left] {
      for (const auto& l : w->listeners)
        (*per_worker)[i].push_back({lancer_serve::listening_fd(*l.src), l.name});
      if (left->fetch_sub(1) != 1) return;
      boost::asio::post(workers_[0]->sched.reactor(), [this, per_worker] {
        named all;
        for (const named& n : *per_worker)
          all.insert(all.end(), n.begin(), n.end());
        upgrader_.upgrade(workers_[0]->sched.reactor(), all, [this] {
          for (const auto& l : workers_[0]->listeners)
            lancer_serve::keep_path(*l.src);
          start_drain();
        });
      });
    });
  }
}

void app::start_drain() {
  if (drain_started_) return;
  drain_started_ = true;
  delay_timer_->cancel();
  module_timer_->cancel();
  if (cfg_.systemd) lancer::systemd::notify("STOPPING=1");
  for (auto& w : workers_)
    w->request_drain(cfg_.drain_seconds);
}

bool app::install(const config& next, std::string_view why, std::string done) {
  std::vector<std::shared_ptr<const http::service>> services;
  try {
    for (std::size_t i = 0; i < workers_.size(); ++i)
      services.push_back(lancer_serve::make_service(next, modules_, rt_));
  } catch (const config_error& e) {
    lancer::log(lancer::log_level::error, "server", "{}: refused, the old configuration stays: {}",
                why, e.what());
    return false;
  }
  // New listeners first, in worker 0, on this thread: one that cannot be had refuses it all.
  const bool activated = !activated_.empty();
  const std::vector<std::string> old_listen = listen_of(cfg_, activated);
  const std::vector<std::string> new_listen = listen_of(next, activated);
  std::vector<std::string> added, removed;
  for (const std::string& a : new_listen)
    if (std::find(old_listen.begin(), old_listen.end(), a) == old_listen.end()) added.push_back(a);
  for (const std::string& a : old_listen)
    if (std::find(new_listen.begin(), new_listen.end(), a) == new_listen.end())
      removed.push_back(a);
  std::vector<std::string> bound;
  for (const std::string& a : added) {
    try {
      add_listener(*workers_[0], 0, a, resolve(a), cfg_.reuse_port);
      bound.push_back(a);
    } catch (const std::exception& e) {
      for (const std::string& b : bound)
        workers_[0]->unlisten(b);
      lancer::log(lancer::log_level::error, "server",
                  "{}: refused, the old configuration stays: cannot listen on {}: {}", why, a,
                  e.what());
      return false;
    }
  }
  for (const std::string& a : removed)
    workers_[0]->unlisten(a);
  // `done` is logged once every worker serves the new services.
  auto left = std::make_shared<std::atomic<std::size_t>>(workers_.size());
  const auto switched = [left, done = std::move(done)] {
    if (left->fetch_sub(1, std::memory_order_acq_rel) == 1)
      lancer::log(lancer::log_level::info, "server", "{}", done);
  };
  workers_[0]->slot->set(services[0]);
  std::vector<std::pair<std::string, lancer::address>> to_add;
  for (const std::string& a : added)
    to_add.emplace_back(a, resolve(a));
  const bool reuse_port = cfg_.reuse_port;
  for (std::size_t i = 1; i < workers_.size(); ++i) {
    worker* w = workers_[i].get();
    auto apply = [i, w, s = services[i], to_add, removed, reuse_port, switched] {
      w->slot->set(s);
      for (const std::string& a : removed)
        w->unlisten(a);
      for (const auto& [name, a] : to_add) {
        try {
          add_listener(*w, i, name, a, reuse_port);
        } catch (const std::exception& e) {
          lancer::log(lancer::log_level::error, "server", "thread {}: cannot listen on {}: {}", i,
                      name, e.what());
        }
      }
      switched();
    };
    boost::asio::post(w->sched.reactor(), std::move(apply));
  }
  for (const std::string& a : added)
    lancer::log(lancer::log_level::info, "server", "{}: listening on {}", why, a);
  for (const std::string& a : removed)
    lancer::log(lancer::log_level::info, "server", "{}: no longer listening on {}", why, a);
  switched();  // worker 0's
  return true;
}

void app::reload() {
  if (cl_.config_file.empty()) {
    lancer::log(lancer::log_level::info, "server", "SIGHUP: no configuration file to reload");
    return;
  }
  config next;
  try {
    next = lancer_serve::load(cl_);
    if (!next.trusted_proxies.empty()) http::trusted_proxies check(next.trusted_proxies);
  } catch (const std::exception& e) {
    lancer::log(lancer::log_level::error, "server",
                "SIGHUP: the configuration was not reloaded, the old one stays: {}", e.what());
    rt_.metrics.count_reload(false);
    return;
  }
  // What a reload cannot change: said, and kept as it is.
  const auto keeps = [&](bool same, std::string_view key) {
    if (!same)
      lancer::log(lancer::log_level::warn, "server",
                  "SIGHUP: {} changes only at a restart; it stays as it was", key);
  };
  keeps(next.threads == cfg_.threads, "threads");
  keeps(next.forward == cfg_.forward, "forward");
  keeps(next.access_log == cfg_.access_log && next.access_log_format == cfg_.access_log_format,
        "access-log");
  keeps(next.trusted_proxies == cfg_.trusted_proxies, "trusted-proxy");
  keeps(next.systemd == cfg_.systemd && next.reuse_port == cfg_.reuse_port &&
            next.pid_file == cfg_.pid_file,
        "systemd, reuse-port and out-pid");
  next.threads = cfg_.threads;
  next.forward = cfg_.forward;
  next.access_log = cfg_.access_log;
  next.access_log_format = cfg_.access_log_format;
  next.trusted_proxies = cfg_.trusted_proxies;
  next.systemd = cfg_.systemd;
  next.reuse_port = cfg_.reuse_port;
  next.pid_file = cfg_.pid_file;
  modules_.update(next, !next.no_reload, false);
  if (!install(next, "SIGHUP", fmt::format("SIGHUP: reloaded {}", cl_.config_file))) {
    rt_.metrics.count_reload(false);
    return;
  }
  const bool watching = !cfg_.modules.empty() && !cfg_.no_reload;
  cfg_ = std::move(next);
  lancer::set_log_level(cfg_.level);
  rt_.metrics.count_reload(true);
  if (!watching && !cfg_.modules.empty() && !cfg_.no_reload) watch_modules();
}

// Once a second: a module whose file changed is loaded again, and the services made anew.
void app::watch_modules() {
  module_timer_->expires_after(std::chrono::seconds(1));
  module_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || drain_started_ || cfg_.modules.empty() || cfg_.no_reload) return;
    if (modules_.any_changed() && modules_.update(cfg_, true, false)) {
      if (install(cfg_, "module reload", "module reload: every thread serves the new modules"))
        rt_.metrics.count_reload(true);
    }
    watch_modules();
  });
}

}  // namespace

int main(int argc, char** argv) {
  const lancer_serve::command_line cl = lancer_serve::parse_command_line(argc, argv);
  config c;
  try {
    c = lancer_serve::load(cl);
    if (!c.trusted_proxies.empty()) {
      try {
        http::trusted_proxies check(c.trusted_proxies);
      } catch (const std::invalid_argument& e) {
        const lancer_serve::origin where = c.where_of("trusted-proxy");
        throw config_error(fmt::format("{}: {}", where.str(), e.what()), where.file.empty());
      }
    }
  } catch (const config_error& e) {
    return refuse(e, cl.test_only);
  }
  lancer::set_log_level(c.level);
  if (cl.test_only) {
    // Everything a start would make, but no listener: the routes, the modules, the files,
    // the access log.
    lancer_serve::runtime rt;
    lancer_serve::module_set modules;
    try {
      modules.update(c, true, true);
      (void)lancer_serve::make_service(c, modules, rt);
      (void)open_access_log(c);
    } catch (const config_error& e) {
      return refuse(e, true);
    }
    std::printf("lancer-serve: the configuration%s%s is good\n",
                cl.config_file.empty() ? "" : " in ", cl.config_file.c_str());
    return 0;
  }
  return app(cl, std::move(c)).run();
}
