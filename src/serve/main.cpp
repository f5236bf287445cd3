// lancer-serve: the deployable server built on lancer.
//
// Routes: /plaintext answers "Hello, World!"; /echo answers any method with the request body;
// /ws is a WebSocket echo (each message comes back whole, text as text, binary as binary;
// a plain request gets 426); everything else is a file under --root (GET and HEAD), or 404.
// SIGINT and SIGTERM drain: stop accepting, let requests in flight finish (up to --drain
// seconds), close idle keep-alive connections, write the access log's last lines, exit 0.
// SIGHUP writes the access log's buffered lines and reopens its file.
#include <unistd.h>

#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "lancer/core/forward.hpp"
#include "lancer/http/access_log.hpp"
#include "lancer/http/cgi.hpp"
#include "lancer/http/files.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/proxy.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/systemd.hpp"
#include "lancer/source/tcp.hpp"
#include "lancer/source/unix.hpp"
#include "lancer/ws/socket.hpp"

namespace fs = std::filesystem;
namespace http = lancer::http;

namespace {

constexpr const char* k_usage =
    "usage: lancer-serve [options]\n"
    "  --listen ADDR      listen on ADDR; repeatable (default tcp/$4:8080)\n"
    "                     ADDR is tcp/HOST:PORT; HOST may be an IPv4 address, [IPv6],\n"
    "                     or $4 (127.0.0.1), $6 ([::1]), $n (localhost), *4, *6 (any);\n"
    "                     or unix/PATH, a Unix socket (mode 0660, removed at exit)\n"
    "  --forward L=U      accept connections on address L and send each, byte for byte,\n"
    "                     to address U (which may name a host: tcp/backend:8080);\n"
    "                     repeatable\n"
    "  --cgi P=DIR        run the CGI/1.1 script DIR/NAME for a request to P/NAME[/...];\n"
    "                     repeatable\n"
    "  --proxy P=U        send requests whose path starts with P to the HTTP server at\n"
    "                     address U (a reverse proxy); repeatable\n"
    "  --root DIR         serve the files under DIR (default: none): ETag, Last-Modified,\n"
    "                     304 and 412, ranges, .br/.gz siblings, sendfile\n"
    "  --autoindex        list a directory under --root that has no index.html\n"
    "  --cache-control P=V  send Cache-Control: V for files whose path starts with P;\n"
    "                     repeatable, the longest P wins\n"
    "  --mime EXT=TYPE    serve files ending in EXT as TYPE (--mime .md=text/markdown);\n"
    "                     repeatable\n"
    "  --file-cache-valid SECONDS  how long the open-file cache trusts what it knows of a\n"
    "                     file before it looks again (default 1; 0: at every request)\n"
    "  --no-sendfile      send files through user space instead of sendfile(2)\n"
    "  --out-pid FILE     write the process id to FILE (removed at exit)\n"
    "  --log-level LEVEL  debug, info, warn, error or off (default info)\n"
    "  --access-log FILE  one line per request, appended to FILE; - for stdout, off for\n"
    "                     none (default -); lines are written in batches, at least once a\n"
    "                     second; SIGHUP writes them and reopens FILE\n"
    "  --access-log-format FORMAT\n"
    "                     combined (nginx's, then the request time in seconds) or json\n"
    "                     (one object per line); default combined\n"
    "  --drain SECONDS    on SIGINT/SIGTERM, how long requests in flight may take (default 10);\n"
    "                     the process exits within SECONDS + 0.1 s\n"
    "  --threads N        N worker threads, each with its own scheduler and listeners on\n"
    "                     the same ports (SO_REUSEPORT); default 1\n"
    "  --reuse-port       share TCP ports with other processes (a new instance started\n"
    "                     beside an old one); without it, a port another process listens\n"
    "                     on is refused\n"
    "  --systemd          take listeners from socket activation (LISTEN_FDS) and send\n"
    "                     READY=1 / STOPPING=1 to NOTIFY_SOCKET\n"
    "  --ws-max-message N the largest WebSocket message /ws reads, in bytes (default\n"
    "                     1048576); a larger one closes the connection with 1009\n"
    "  --ws-deflate       offer permessage-deflate on /ws (default off)\n"
    "  --help             print this and exit\n";

struct options {
  std::vector<std::string> listen;
  std::vector<std::string> forward;  // LISTEN=UPSTREAM
  std::vector<std::string> cgi;      // PREFIX=DIR
  std::vector<std::string> proxy;    // PREFIX=UPSTREAM
  std::string root;
  http::static_options files;  // --root's
  std::string pid_file;
  std::string access_log = "-";
  http::log_format access_log_format = http::log_format::combined;
  lancer::log_level level = lancer::log_level::info;
  int drain_seconds = 10;
  bool systemd = false;
  bool reuse_port = false;
  int threads = 1;
  lancer::ws::options ws;  // /ws
};

[[noreturn]] void bad_usage(const std::string& problem) {
  std::fprintf(stderr, "lancer-serve: %s\n%s", problem.c_str(), k_usage);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) bad_usage(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    } else if (flag == "--threads") {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 1 || n > 256) {
        bad_usage("--threads takes a whole number from 1 to 256, not '" + v + "'");
      }
      o.threads = static_cast<int>(n);
    } else if (flag == "--systemd") {
      o.systemd = true;
    } else if (flag == "--reuse-port") {
      o.reuse_port = true;
    } else if (flag == "--listen") {
      o.listen.push_back(value());
    } else if (flag == "--forward") {
      o.forward.push_back(value());
    } else if (flag == "--cgi") {
      o.cgi.push_back(value());
    } else if (flag == "--proxy") {
      o.proxy.push_back(value());
    } else if (flag == "--root") {
      o.root = value();
    } else if (flag == "--autoindex") {
      o.files.autoindex = true;
    } else if (flag == "--no-sendfile") {
      o.files.sendfile = false;
    } else if (flag == "--cache-control" || flag == "--mime") {
      const std::string v = value();
      const std::size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
        bad_usage(std::string(flag) + " takes KEY=VALUE, not '" + v + "'");
      }
      try {
        if (flag == "--mime") {
          o.files.mime.add(v.substr(0, eq), v.substr(eq + 1));
        } else {
          o.files.cache_control.emplace_back(v.substr(0, eq), v.substr(eq + 1));
        }
      } catch (const std::invalid_argument& e) {
        bad_usage(std::string(flag) + ": " + e.what());
      }
    } else if (flag == "--file-cache-valid") {
      const std::string v = value();
      char* end = nullptr;
      const double s = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(s >= 0) || s > 86400) {
        bad_usage("--file-cache-valid takes seconds from 0 to 86400, not '" + v + "'");
      }
      o.files.cache_valid =
          std::chrono::duration_cast<lancer::clock::duration>(std::chrono::duration<double>(s));
    } else if (flag == "--access-log") {
      o.access_log = value();
    } else if (flag == "--access-log-format") {
      const std::string v = value();
      if (!http::parse_log_format(v, o.access_log_format)) {
        bad_usage("--access-log-format takes combined or json, not '" + v + "'");
      }
    } else if (flag == "--out-pid") {
      o.pid_file = value();
    } else if (flag == "--log-level") {
      const std::string v = value();
      if (!lancer::parse_log_level(v, o.level)) bad_usage("unknown log level '" + v + "'");
    } else if (flag == "--ws-max-message") {
      const std::string v = value();
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || v.front() == '-' || n < 1 || n > (1ULL << 32)) {
        bad_usage("--ws-max-message takes a byte count from 1 to 4294967296, not '" + v + "'");
      }
      o.ws.max_message = static_cast<std::size_t>(n);
    } else if (flag == "--ws-deflate") {
      o.ws.deflate = true;
    } else if (flag == "--drain") {
      const std::string v = value();
      char* end = nullptr;
      const long s = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || s < 0 || s > 3600) {
        bad_usage("--drain takes whole seconds from 0 to 3600, not '" + v + "'");
      }
      o.drain_seconds = static_cast<int>(s);
    } else {
      bad_usage("unknown option '" + std::string(flag) + "'");
    }
  }
  return o;
}

struct forward_rule {
  lancer::address listen;
  lancer::address upstream;
};

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

// After the drain deadline the core cuts off whatever is left; this is how long that may take
// before the process stops anyway.
constexpr auto k_drain_margin = std::chrono::milliseconds(100);

struct worker;
lancer::task<> drain_on_request(worker& w, int drain_seconds);

// One thread's share of the server: its scheduler, the HTTP server (servers[0]) and one
// server per --forward rule, and their listeners.
struct worker {
  explicit worker(lancer::server::handler h) { add_server(std::move(h)); }

  lancer::server& add_server(lancer::server::handler h) {
    servers.push_back(std::make_unique<lancer::server>(sched, std::move(h)));
    return *servers.back();
  }
  void attach(lancer::server& srv, std::unique_ptr<lancer::source> src) {
    sources.push_back(std::move(src));
    srv.attach_source(*sources.back());
  }
  void start(int drain_seconds) {
    for (auto& s : servers)
      s->run();
    control = sched.spawn(drain_on_request(*this, drain_seconds));
  }
  // Thread-safe: the drain itself runs on the worker's own thread.
  void request_drain() {
    sched.push(lancer::signal{control, lancer::signal_kind::value_ready, 0, 0, {}});
  }
  std::size_t connections() const noexcept {
    std::size_t n = 0;
    for (const auto& s : servers)
      n += s->connections();
    return n;
  }

  lancer::scheduler sched;
  std::vector<std::unique_ptr<lancer::server>> servers;
  // The HTTP listeners first, in --listen order (worker 0's give later workers their ports).
  std::vector<std::unique_ptr<lancer::source>> sources;
  lancer::thread_id control;
  std::thread os_thread;
};

// Waits for the drain request (a value_ready signal, possibly from another OS thread), drains
// every server of the worker, and stops its scheduler once every server says its drain is done
// (server::drained_until: no polling), or the drain deadline (and its margin) passed.
lancer::task<> drain_on_request(worker& w, int drain_seconds) {
  co_await lancer::wait_signal(lancer::mask_of(lancer::signal_kind::value_ready));
  lancer::scheduler& sched = *lancer::scheduler::current();
  const auto deadline = sched.now() + std::chrono::seconds(drain_seconds);
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

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  const std::vector<int> activated = o.systemd ? lancer::systemd::listen_fds() : std::vector<int>{};
  if (o.listen.empty() && activated.empty()) o.listen.emplace_back("tcp/$4:8080");
  lancer::set_log_level(o.level);

  std::vector<lancer::address> addresses;
  for (const std::string& a : o.listen) {
    try {
      addresses.push_back(lancer::parse_address(a));
    } catch (const lancer::address_error& e) {
      std::fprintf(stderr, "lancer-serve: %s\n%s\n", e.what(), e.pointer().c_str());
      return 2;
    }
  }
  std::vector<forward_rule> forwards;
  for (const std::string& rule : o.forward) {
    const std::size_t eq = rule.find('=');
    if (eq == std::string::npos) {
      bad_usage("--forward takes LISTEN=UPSTREAM, such as tcp/$4:9000=tcp/127.0.0.1:8080");
    }
    try {
      forwards.push_back({lancer::parse_address(rule.substr(0, eq)),
                          lancer::parse_address(rule.substr(eq + 1), true)});
    } catch (const lancer::address_error& e) {
      std::fprintf(stderr, "lancer-serve: --forward %s: %s\n%s\n", rule.c_str(), e.what(),
                   e.pointer().c_str());
      return 2;
    }
  }
  // Path prefixes with their handlers (--cgi, --proxy), tried in order before the routes.
  std::vector<std::pair<std::string, http::request_handler>> prefixed;
  for (const std::string& rule : o.proxy) {
    const std::size_t eq = rule.find('=');
    if (eq == std::string::npos || rule.front() != '/') {
      bad_usage("--proxy takes PREFIX=UPSTREAM, such as /api/=tcp/127.0.0.1:9000");
    }
    try {
      prefixed.emplace_back(rule.substr(0, eq),
                            http::proxy(lancer::parse_address(rule.substr(eq + 1), true)));
    } catch (const lancer::address_error& e) {
      std::fprintf(stderr, "lancer-serve: --proxy %s: %s\n%s\n", rule.c_str(), e.what(),
                   e.pointer().c_str());
      return 2;
    }
  }
  for (const std::string& rule : o.cgi) {
    const std::size_t eq = rule.find('=');
    std::error_code ec;
    const fs::path dir =
        eq == std::string::npos ? fs::path{} : fs::canonical(rule.substr(eq + 1), ec);
    if (eq == std::string::npos || rule.front() != '/' || ec || !fs::is_directory(dir)) {
      bad_usage(
          "--cgi takes PREFIX=DIR, a path prefix and a directory, such as /cgi-bin/=/srv/cgi");
    }
    std::string prefix = rule.substr(0, eq);
    if (prefix.back() != '/') prefix += '/';
    prefixed.emplace_back(prefix, http::cgi_dir(prefix, dir));
  }
  std::optional<http::static_files> files;
  if (!o.root.empty()) {
    try {
      files.emplace(o.root, o.files);
    } catch (const std::exception&) {
      bad_usage("--root " + o.root + " is not a directory");
    }
  }

  // Buffered per worker thread, written at the end of each scheduler turn.
  std::unique_ptr<http::access_log> requests_owned;
  try {
    requests_owned = std::make_unique<http::access_log>(
        o.access_log, http::access_log_options{.format = o.access_log_format});
  } catch (const std::system_error&) {
    bad_usage("cannot open --access-log " + o.access_log);
  }
  http::access_log& requests = *requests_owned;
  http::access_hook log_request;
  if (requests.enabled()) log_request = requests.hook();

  // /ws: a WebSocket echo. ws::accept answers a request that is not a WebSocket handshake.
  const lancer::ws::options& ws_options = o.ws;
  auto ws_echo = [&ws_options](lancer::connection& c, http::request& req) -> lancer::task<> {
    std::unique_ptr<lancer::ws::socket> ws = co_await lancer::ws::accept(c, req, ws_options);
    if (!ws) co_return;
    for (;;) {
      const std::optional<lancer::ws::message> m = co_await ws->read();
      if (!m) break;
      const bool sent = co_await ws->send(*m);
      if (!sent) break;
    }
  };

  // The routes, shared by every worker (they hold no state of their own).
  http::request_handler routes = [&files, &prefixed, &ws_echo](
                                     lancer::connection& c, http::request& req, lancer::frame& f,
                                     lancer::pubframe& p) -> lancer::task<> {
    const std::string_view path = path_of(req.target());
    for (const auto& [prefix, run] : prefixed) {
      if (path.substr(0, prefix.size()) == prefix) {
        co_await run(c, req, f, p);
        co_return;
      }
    }
    if (path == "/plaintext") {
      co_await http::respond(c, req, 200, "text/plain", "Hello, World!");
    } else if (path == "/ws") {
      co_await ws_echo(c, req);
    } else if (path == "/echo") {
      const auto body = co_await http::read_body(c, req);
      if (body) co_await http::respond(c, req, 200, "application/octet-stream", *body);
    } else if (files) {
      co_await (*files)(c, req);
    } else {
      co_await http::respond(c, req, 404, "text/plain", "Not Found\n");
    }
  };

  // One worker per thread: its own scheduler, server and listeners (SO_REUSEPORT), sharing
  // nothing on the request path. Worker 0 also holds the Unix and socket-activated listeners,
  // and resolves port 0, so that every worker binds the same port.
  std::vector<std::unique_ptr<worker>> workers;
  for (int i = 0; i < o.threads; ++i) {
    // An upgrade to WebSocket goes to the routes too: /ws takes it, any other path answers
    // over HTTP/1.1 as if it had not asked. Other protocols (h2c among them) are ignored.
    http::upgrades up;
    up.add("websocket", routes);
    auto w = std::make_unique<worker>(http::serve(routes, {}, log_request, std::move(up)));
    for (std::size_t k = 0; k < addresses.size(); ++k) {
      lancer::address a = addresses[k];
      if (a.connector == lancer::address::kind::tcp) {
        if (i > 0 && a.port == 0) {
          // Worker 0 made one source per address, in order: take the port it was given.
          a.port = static_cast<const lancer::tcp_source&>(*workers[0]->sources[k]).port();
        }
        lancer::tcp_options to;
        to.exclusive = i == 0 && !o.reuse_port;  // later workers share worker 0's port
        w->attach(*w->servers[0], std::make_unique<lancer::tcp_source>(a, to));
      } else if (i == 0) {
        w->attach(*w->servers[0], std::make_unique<lancer::unix_source>(a));
      }
    }
    if (i == 0) {
      for (const int fd : activated)
        w->attach(*w->servers[0], std::make_unique<lancer::fd_source>(fd));
    }
    // Each --forward rule: a server of its own, whose listener sends every connection on.
    for (const forward_rule& rule : forwards) {
      lancer::server& fwd = w->add_server(lancer::forward(rule.upstream));
      if (rule.listen.connector == lancer::address::kind::tcp) {
        lancer::tcp_options to;
        to.exclusive = i == 0 && !o.reuse_port;
        w->attach(fwd, std::make_unique<lancer::tcp_source>(rule.listen, to));
      } else if (i == 0) {
        w->attach(fwd, std::make_unique<lancer::unix_source>(rule.listen));
      }
    }
    try {
      w->start(o.drain_seconds);
    } catch (const std::system_error& e) {
      const bool taken = e.code() == std::errc::address_in_use;
      lancer::log(lancer::log_level::error, "server", "{}{}", e.what(),
                  taken && !o.reuse_port ? " (--reuse-port shares a TCP port on purpose)" : "");
      return 1;
    }
    workers.push_back(std::move(w));
  }
  // Signals arrive through worker 0's reactor; every worker is told to drain.
  worker& first = *workers[0];
  boost::asio::signal_set signals(first.sched.reactor(), SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          if (requests.reopen()) {
            lancer::log(lancer::log_level::info, "server", "SIGHUP: reopened the access log {}",
                        requests.destination());
          }
          signals.async_wait(on_signal);
          return;
        }
        lancer::log(lancer::log_level::info, "server", "{}: draining {} thread(s) for up to {} s",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", workers.size(), o.drain_seconds);
        if (o.systemd) lancer::systemd::notify("STOPPING=1");
        for (auto& w : workers)
          w->request_drain();
      };
  signals.async_wait(on_signal);
  // Ready only now: a SIGTERM from here on drains (before, it would have killed the process).
  if (!o.pid_file.empty()) {
    std::ofstream(o.pid_file) << ::getpid() << "\n";
  }
  if (o.systemd) lancer::systemd::notify("READY=1");

  for (std::size_t i = 1; i < workers.size(); ++i) {
    workers[i]->os_thread = std::thread([w = workers[i].get()] { w->sched.run_forever(); });
  }
  first.sched.run_forever();
  for (std::size_t i = 1; i < workers.size(); ++i)
    workers[i]->os_thread.join();
  requests.flush();  // every request answered has its line before the process ends
  if (!o.pid_file.empty()) fs::remove(o.pid_file);
  lancer::log(lancer::log_level::info, "server", "exiting");
  return 0;
}
