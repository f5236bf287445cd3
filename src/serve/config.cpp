#include "config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string_view>

#include "lancer/io/address.hpp"

namespace lancer_serve {

namespace fs = std::filesystem;

namespace {

constexpr const char* k_usage =
    "usage: lancer-serve [options]\n"
    "  --config FILE      read the settings from FILE (TOML): every option below is also a\n"
    "                     key of the same name; options given here override the file's\n"
    "  -t                 check the configuration (the file and the options), say whether it\n"
    "                     is good, and exit: 0 if it is, 1 if not\n"
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
    "  --health PATH      answer GET PATH with 200 \"ok\", and with 503 \"draining\" once\n"
    "                     SIGTERM came (for a load balancer's health checks)\n"
    "  --metrics PATH     answer GET PATH with the server's metrics (Prometheus text)\n"
    "  --trusted-proxy A  a proxy whose X-Forwarded-For the access log believes: an IP\n"
    "                     address, ADDR/BITS, or unix (peers on Unix sockets); repeatable\n"
    "  --no-reload        do not reload handler modules when their files change\n"
    "  --out-pid FILE     write the process id to FILE (removed at exit)\n"
    "  --log-level LEVEL  debug, info, warn, error or off (default info)\n"
    "  --access-log FILE  one line per request, appended to FILE; - for stdout, off for\n"
    "                     none (default -); lines are written in batches, at least once a\n"
    "                     second; SIGHUP writes them and reopens FILE\n"
    "  --access-log-format FORMAT\n"
    "                     combined (nginx's, then the request time in seconds) or json\n"
    "                     (one object per line); default combined\n"
    "  --drain SECONDS    on SIGINT/SIGTERM, how long requests in flight may take (default 10);\n"
    "                     the process exits within SECONDS + 0.1 s (after the delay below)\n"
    "  --drain-delay SECONDS  on SIGTERM, first go on serving for SECONDS while the health\n"
    "                     endpoint says draining, so that load balancers stop sending\n"
    "                     (default 0); a second SIGTERM or SIGINT drains at once\n"
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
    "  --help             print this and exit\n"
    "Signals: SIGTERM and SIGINT drain and exit; SIGHUP reloads the configuration file and\n"
    "reopens the access log; SIGUSR2 upgrades the binary: it starts the file lancer-serve was\n"
    "started as, with the same arguments, hands it the listening sockets, and drains once the\n"
    "new process serves.\n";

[[noreturn]] void bad_usage(const std::string& problem) {
  std::fprintf(stderr, "lancer-serve: %s\n%s", problem.c_str(), k_usage);
  std::exit(2);
}

// --- values -----------------------------------------------------------------------------

long whole(std::string_view v, long lo, long hi, std::string_view what) {
  const std::string s(v);
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size() || errno != 0 || n < lo || n > hi) {
    throw std::invalid_argument(
        fmt::format("expected {} from {} to {}, not '{}'", what, lo, hi, v));
  }
  return n;
}

double seconds(std::string_view v, double hi) {
  const std::string s(v);
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(d >= 0) || d > hi) {
    throw std::invalid_argument(fmt::format("expected seconds from 0 to {}, not '{}'", hi, v));
  }
  return d;
}

lancer::clock::duration duration_of(double s) {
  return std::chrono::duration_cast<lancer::clock::duration>(std::chrono::duration<double>(s));
}

bool boolean(std::string_view v) {
  if (v == "true") return true;
  if (v == "false") return false;
  throw std::invalid_argument(fmt::format("expected true or false, not '{}'", v));
}

void check_address(std::string_view a, bool may_name_host) {
  try {
    (void)lancer::parse_address(a, may_name_host);
  } catch (const lancer::address_error& e) {
    throw std::invalid_argument(fmt::format("'{}': {}", a, e.what()));
  }
}

void check_prefix(std::string_view p) {
  if (p.empty() || p.front() != '/') {
    throw std::invalid_argument(
        fmt::format("expected a path prefix starting with '/', not '{}'", p));
  }
}

// --- the options: each flag, and its key --------------------------------------------------

enum class kind {
  value,  // --flag VALUE; key = "value" (a string, or a number where one is expected)
  flag,   // --flag; key = true/false
  list,   // --flag VALUE, repeatable; key = ["value", ...]
  pairs,  // --flag K=V, repeatable; key = { K = "V", ... }
};

struct option {
  std::string_view name;
  kind what;
  // Sets the value (for `pairs`: `key` = `value`). Throws std::invalid_argument saying what
  // was expected.
  std::function<void(config&, std::string_view key, std::string_view value)> set;
  // Empties a list (a repeatable flag on the command line replaces the file's).
  std::function<void(config&)> clear = [](config&) {};
  std::string_view pair_names = "KEY=VALUE";  // for `pairs`, what the flag takes
};

const std::vector<option>& options() {
  static const std::vector<option> all = [] {
    std::vector<option> o;
    o.push_back({"listen", kind::list,
                 [](config& c, std::string_view, std::string_view v) {
                   check_address(v, false);
                   c.listen.emplace_back(v);
                 },
                 [](config& c) { c.listen.clear(); }});
    o.push_back({"forward", kind::pairs,
                 [](config& c, std::string_view k, std::string_view v) {
                   check_address(k, false);
                   check_address(v, true);
                   c.forward.emplace_back(k, v);
                 },
                 [](config& c) { c.forward.clear(); }, "LISTEN=UPSTREAM"});
    o.push_back({"cgi", kind::pairs,
                 [](config& c, std::string_view k, std::string_view v) {
                   check_prefix(k);
                   c.cgi.emplace_back(k, v);
                 },
                 [](config& c) { c.cgi.clear(); }, "PREFIX=DIR"});
    o.push_back({"proxy", kind::pairs,
                 [](config& c, std::string_view k, std::string_view v) {
                   check_prefix(k);
                   check_address(v, true);
                   c.proxy.emplace_back(k, v);
                 },
                 [](config& c) { c.proxy.clear(); }, "PREFIX=UPSTREAM"});
    o.push_back(
        {"root", kind::value, [](config& c, std::string_view, std::string_view v) { c.root = v; }});
    o.push_back({"autoindex", kind::flag, [](config& c, std::string_view, std::string_view v) {
                   c.files.autoindex = boolean(v);
                 }});
    o.push_back({"cache-control", kind::pairs,
                 [](config& c, std::string_view k, std::string_view v) {
                   check_prefix(k);
                   c.files.cache_control.emplace_back(k, v);
                 },
                 [](config& c) { c.files.cache_control.clear(); }, "PREFIX=VALUE"});
    o.push_back({"mime", kind::pairs,
                 [](config& c, std::string_view k, std::string_view v) {
                   c.files.mime.add(std::string(k), std::string(v));
                 },
                 [](config& c) { c.files.mime = {}; }, "EXT=TYPE"});
    o.push_back(
        {"file-cache-valid", kind::value, [](config& c, std::string_view, std::string_view v) {
           c.files.cache_valid = duration_of(seconds(v, 86400));
         }});
    o.push_back({"no-sendfile", kind::flag, [](config& c, std::string_view, std::string_view v) {
                   c.files.sendfile = !boolean(v);
                 }});
    o.push_back({"health", kind::value, [](config& c, std::string_view, std::string_view v) {
                   check_prefix(v);
                   c.health = v;
                 }});
    o.push_back({"metrics", kind::value, [](config& c, std::string_view, std::string_view v) {
                   check_prefix(v);
                   c.metrics = v;
                 }});
    o.push_back(
        {"trusted-proxy", kind::list,
         [](config& c, std::string_view, std::string_view v) { c.trusted_proxies.emplace_back(v); },
         [](config& c) { c.trusted_proxies.clear(); }});
    o.push_back({"no-reload", kind::flag, [](config& c, std::string_view, std::string_view v) {
                   c.no_reload = boolean(v);
                 }});
    o.push_back({"out-pid", kind::value,
                 [](config& c, std::string_view, std::string_view v) { c.pid_file = v; }});
    o.push_back({"log-level", kind::value, [](config& c, std::string_view, std::string_view v) {
                   if (!lancer::parse_log_level(v, c.level))
                     throw std::invalid_argument(
                         fmt::format("expected debug, info, warn, error or off, not '{}'", v));
                 }});
    o.push_back({"access-log", kind::value,
                 [](config& c, std::string_view, std::string_view v) { c.access_log = v; }});
    o.push_back(
        {"access-log-format", kind::value, [](config& c, std::string_view, std::string_view v) {
           if (!http::parse_log_format(v, c.access_log_format))
             throw std::invalid_argument(fmt::format("expected combined or json, not '{}'", v));
         }});
    o.push_back({"drain", kind::value, [](config& c, std::string_view, std::string_view v) {
                   c.drain_seconds = static_cast<int>(whole(v, 0, 3600, "whole seconds"));
                 }});
    o.push_back({"drain-delay", kind::value, [](config& c, std::string_view, std::string_view v) {
                   c.drain_delay_seconds = seconds(v, 3600);
                 }});
    o.push_back({"threads", kind::value, [](config& c, std::string_view, std::string_view v) {
                   c.threads = static_cast<int>(whole(v, 1, 256, "a whole number"));
                 }});
    o.push_back({"reuse-port", kind::flag, [](config& c, std::string_view, std::string_view v) {
                   c.reuse_port = boolean(v);
                 }});
    o.push_back({"systemd", kind::flag,
                 [](config& c, std::string_view, std::string_view v) { c.systemd = boolean(v); }});
    o.push_back(
        {"ws-max-message", kind::value, [](config& c, std::string_view, std::string_view v) {
           c.ws.max_message = static_cast<std::size_t>(whole(v, 1, 1L << 32, "a byte count"));
         }});
    o.push_back({"ws-deflate", kind::flag, [](config& c, std::string_view, std::string_view v) {
                   c.ws.deflate = boolean(v);
                 }});
    return o;
  }();
  return all;
}

const option* find_option(std::string_view name) {
  for (const option& o : options())
    if (o.name == name) return &o;
  return nullptr;
}

// --- the file -----------------------------------------------------------------------------

// How many single-character edits make `a` into `b`.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "did you mean 'threads'?" for a key two edits or fewer from a known one, else the list.
std::string expected_key(std::string_view key, const std::vector<std::string_view>& known) {
  std::string_view best;
  std::size_t best_distance = 3;
  for (const std::string_view k : known) {
    const std::size_t d = edit_distance(key, k);
    if (d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  if (!best.empty()) return fmt::format("did you mean '{}'?", best);
  std::string list = "expected one of: ";
  for (std::size_t i = 0; i < known.size(); ++i)
    list += fmt::format("{}{}", i == 0 ? "" : ", ", known[i]);
  return list;
}

origin at(const std::string& file, const toml::source_region& r) {
  return {file, r.begin.line, r.begin.column, {}};
}

[[noreturn]] void fail(const origin& where, std::string_view what) {
  throw config_error(fmt::format("{}: {}", where.str(), what));
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date or time";
  }
}

// A scalar as the text a flag would give: strings as they are, numbers in decimal.
std::optional<std::string> scalar_text(const toml::node& n) {
  if (const auto* s = n.as_string()) return s->get();
  if (const auto* i = n.as_integer()) return fmt::format("{}", i->get());
  if (const auto* d = n.as_floating_point()) return fmt::format("{}", d->get());
  return std::nullopt;
}

struct file_reader {
  std::string file;
  config& c;

  origin where(const toml::node& n) const { return at(file, n.source()); }

  std::string text(const toml::node& n, std::string_view key) const {
    const auto* s = n.as_string();
    if (s == nullptr)
      fail(where(n), fmt::format("{}: expected a string, not {}", key, type_name(n)));
    return s->get();
  }
  bool flag(const toml::node& n, std::string_view key) const {
    const auto* b = n.as_boolean();
    if (b == nullptr)
      fail(where(n), fmt::format("{}: expected true or false, not {}", key, type_name(n)));
    return b->get();
  }
  std::string number(const toml::node& n, std::string_view key) const {
    if (n.is_integer() || n.is_floating_point()) return *scalar_text(n);
    fail(where(n), fmt::format("{}: expected a number, not {}", key, type_name(n)));
  }
  const toml::table& table(const toml::node& n, std::string_view key) const {
    const auto* t = n.as_table();
    if (t == nullptr)
      fail(where(n), fmt::format("{}: expected a table, not {}", key, type_name(n)));
    return *t;
  }
  // Runs `set`, turning its std::invalid_argument into an error at `n`.
  template <class F>
  void checked(const toml::node& n, std::string_view key, F&& set) const {
    try {
      set();
    } catch (const std::invalid_argument& e) {
      fail(where(n), fmt::format("{}: {}", key, e.what()));
    } catch (const std::system_error& e) {
      fail(where(n), fmt::format("{}: {}", key, e.what()));
    }
  }

  [[noreturn]] void unknown(const toml::key& k, std::string_view in,
                            const std::vector<std::string_view>& known) const {
    fail(at(file, k.source()),
         fmt::format("unknown key '{}'{}; {}", k.str(),
                     in.empty() ? "" : fmt::format(" in [{}]", in), expected_key(k.str(), known)));
  }

  void top(const toml::table& t) {
    for (auto&& kv : t) {
      const toml::key& k = kv.first;  // not a structured binding: lambdas capture these
      const toml::node& v = kv.second;
      const std::string_view name = k.str();
      c.origins.emplace_back(std::string(name), where(v));
      if (name == "limits") {
        limits(table(v, name));
      } else if (name == "host") {
        const auto* a = v.as_array();
        if (a == nullptr || !a->is_array_of_tables())
          fail(where(v), "host: expected an array of tables ([[host]])");
        for (const toml::node& h : *a)
          host(*h.as_table());
      } else if (name == "error-pages") {
        for (auto&& entry : table(v, name)) {
          const toml::key& pk =
              entry.first;  // clang 14: lambdas cannot capture a structured binding
          const toml::node& pv = entry.second;
          const std::string file_name = text(pv, name);
          long status = 0;
          checked(pv, name, [&] { status = whole(pk.str(), 400, 599, "an error status"); });
          c.error_pages.emplace_back(static_cast<unsigned>(status), file_name);
        }
      } else if (name == "module") {
        const auto* a = v.as_array();
        if (a == nullptr || !a->is_array_of_tables())
          fail(where(v), "module: expected an array of tables ([[module]])");
        for (const toml::node& m : *a)
          module(*m.as_table());
      } else if (const option* o = find_option(name)) {
        setting(*o, v);
      } else {
        std::vector<std::string_view> known = {"limits", "error-pages", "host", "module"};
        for (const option& x : options())
          known.push_back(x.name);
        unknown(k, "", known);
      }
    }
  }

  void setting(const option& o, const toml::node& v) {
    const std::string_view name = o.name;
    switch (o.what) {
      case kind::value: {
        const std::optional<std::string> s = scalar_text(v);
        if (!s) fail(where(v), fmt::format("{}: expected a value, not {}", name, type_name(v)));
        checked(v, name, [&] { o.set(c, {}, *s); });
        break;
      }
      case kind::flag: {
        const bool b = flag(v, name);
        checked(v, name, [&] { o.set(c, {}, b ? "true" : "false"); });
        break;
      }
      case kind::list: {
        o.clear(c);
        if (v.is_string()) {
          checked(v, name, [&] { o.set(c, {}, text(v, name)); });
          break;
        }
        const auto* a = v.as_array();
        if (a == nullptr)
          fail(where(v),
               fmt::format("{}: expected an array of strings, not {}", name, type_name(v)));
        for (const toml::node& e : *a) {
          const std::string s = text(e, name);
          checked(e, name, [&] { o.set(c, {}, s); });
        }
        break;
      }
      case kind::pairs: {
        o.clear(c);
        for (auto&& entry : table(v, name)) {
          const toml::key& pk =
              entry.first;  // clang 14: lambdas cannot capture a structured binding
          const toml::node& pv = entry.second;
          const std::string value = text(pv, fmt::format("{}.\"{}\"", name, pk.str()));
          checked(pv, name, [&] { o.set(c, pk.str(), value); });
        }
        break;
      }
    }
  }

  void limits(const toml::table& t) {
    http::limits& l = c.limits;
    for (auto&& kv : t) {
      const toml::key& k = kv.first;  // not a structured binding: lambdas capture these
      const toml::node& v = kv.second;
      const std::string_view name = k.str();
      const auto count = [&](long hi) {
        long n = 0;
        const std::string s = number(v, name);
        checked(v, name, [&] { n = whole(s, 0, hi, "a whole number"); });
        return n;
      };
      const auto time = [&] {
        double s = 0;
        const std::string n = number(v, name);
        checked(v, name, [&] { s = seconds(n, 86400); });
        return duration_of(s);
      };
      if (name == "target") {
        l.target = static_cast<std::size_t>(count(1L << 20));
      } else if (name == "header-bytes") {
        l.header_bytes = static_cast<std::uint32_t>(count(1L << 24));
      } else if (name == "header-count") {
        l.header_count = static_cast<std::size_t>(count(100000));
      } else if (name == "body") {
        l.body = static_cast<std::uint64_t>(count(std::numeric_limits<long>::max()));
      } else if (name == "body-min-rate") {
        l.body_min_rate = static_cast<std::uint64_t>(count(1L << 40));
      } else if (name == "header-timeout") {
        l.header_timeout = time();
      } else if (name == "idle-timeout") {
        l.idle_timeout = time();
      } else if (name == "body-timeout") {
        l.body_timeout = time();
      } else if (name == "drain-grace") {
        l.drain_grace = time();
      } else {
        unknown(k, "limits",
                {"target", "header-bytes", "header-count", "body", "body-min-rate",
                 "header-timeout", "idle-timeout", "body-timeout", "drain-grace"});
      }
    }
  }

  void host(const toml::table& t) {
    host_config h;
    h.where = at(file, t.source());
    for (auto&& kv : t) {
      const toml::key& k = kv.first;  // not a structured binding: lambdas capture these
      const toml::node& v = kv.second;
      const std::string_view name = k.str();
      if (name == "names") {
        h.names = text(v, name);
        if (h.names.empty()) fail(where(v), "names: expected host names, not an empty string");
      } else if (name == "no-fallback") {
        h.no_fallback = flag(v, name);
      } else if (name == "route") {
        const auto* a = v.as_array();
        if (a == nullptr || !a->is_array_of_tables())
          fail(where(v), "route: expected an array of tables ([[host.route]])");
        for (const toml::node& r : *a)
          h.routes.push_back(route(*r.as_table()));
      } else {
        unknown(k, "host", {"names", "no-fallback", "route"});
      }
    }
    c.hosts.push_back(std::move(h));
  }

  route_config route(const toml::table& t) {
    route_config r;
    r.where = at(file, t.source());
    int kinds = 0;
    bool files_options = false;
    for (auto&& kv : t) {
      const toml::key& k = kv.first;  // not a structured binding: lambdas capture these
      const toml::node& v = kv.second;
      const std::string_view name = k.str();
      if (name == "prefix") {
        r.prefix = text(v, name);
        checked(v, name, [&] { check_prefix(r.prefix); });
      } else if (name == "root" || name == "proxy" || name == "cgi") {
        ++kinds;
        r.target = text(v, name);
        r.what = name == "root"    ? route_config::kind::files
                 : name == "proxy" ? route_config::kind::proxy
                                   : route_config::kind::cgi;
        if (r.what == route_config::kind::proxy)
          checked(v, name, [&] { check_address(r.target, true); });
      } else if (name == "timeout" || name == "connect-timeout") {
        const std::string n = number(v, name);
        double& out = name == "timeout" ? r.timeout : r.connect_timeout;
        checked(v, name, [&] { out = seconds(n, 86400); });
      } else if (name == "index") {
        files_options = true;
        r.files.index = text(v, name);
      } else if (name == "autoindex") {
        files_options = true;
        r.files.autoindex = flag(v, name);
      } else if (name == "sendfile") {
        files_options = true;
        r.files.sendfile = flag(v, name);
      } else if (name == "precompressed") {
        files_options = true;
        r.files.precompressed = flag(v, name);
      } else if (name == "file-cache-valid") {
        files_options = true;
        const std::string n = number(v, name);
        checked(v, name, [&] { r.files.cache_valid = duration_of(seconds(n, 86400)); });
      } else if (name == "cache-control" || name == "mime") {
        files_options = true;
        for (auto&& entry : table(v, name)) {
          const toml::key& pk =
              entry.first;  // clang 14: lambdas cannot capture a structured binding
          const toml::node& pv = entry.second;
          const std::string value = text(pv, name);
          checked(pv, name, [&] {
            if (name == "mime") {
              r.files.mime.add(std::string(pk.str()), value);
            } else {
              check_prefix(pk.str());
              r.files.cache_control.emplace_back(pk.str(), value);
            }
          });
        }
      } else {
        unknown(
            k, "host.route",
            {"prefix", "root", "proxy", "cgi", "timeout", "connect-timeout", "index", "autoindex",
             "sendfile", "precompressed", "file-cache-valid", "cache-control", "mime"});
      }
    }
    if (kinds != 1) fail(r.where, "a route needs exactly one of root, proxy or cgi");
    if (r.what == route_config::kind::files && (r.timeout >= 0 || r.connect_timeout >= 0))
      fail(r.where, "timeout and connect-timeout are options of a proxy or a CGI directory");
    if (r.what == route_config::kind::cgi && r.connect_timeout >= 0)
      fail(r.where, "connect-timeout is an option of a proxy");
    if (files_options && r.what != route_config::kind::files)
      fail(r.where,
           "index, autoindex, sendfile, precompressed, file-cache-valid, cache-control "
           "and mime are options of a root");
    return r;
  }

  void module(const toml::table& t) {
    module_config m;
    m.where = at(file, t.source());
    for (auto&& kv : t) {
      const toml::key& k = kv.first;  // not a structured binding: lambdas capture these
      const toml::node& v = kv.second;
      const std::string_view name = k.str();
      if (name == "path") {
        m.path = text(v, name);
      } else if (name == "host") {
        m.host = text(v, name);
      } else {
        unknown(k, "module", {"path", "host"});
      }
    }
    if (m.path.empty()) fail(m.where, "a module needs a path");
    c.modules.push_back(std::move(m));
  }
};

// The whole text of `file`. Throws config_error saying why it cannot be read (toml::parse_file
// would read a directory as an empty file: every setting its default).
std::string read_text(const std::string& file) {
  const auto cannot = [&](int error) {
    return config_error(fmt::format("{}: cannot read it: {}", file, std::strerror(error)));
  };
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw cannot(errno);
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      const int error = errno;  // EISDIR for a directory
      ::close(fd);
      throw cannot(error);
    }
  }
  ::close(fd);
  return text;
}

}  // namespace

std::string origin::str() const {
  if (file.empty()) return flag.empty() ? "lancer-serve" : "--" + flag;
  if (line == 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

origin config::where_of(const std::string& key) const {
  for (auto it = origins.rbegin(); it != origins.rend(); ++it)
    if (it->first == key) return it->second;
  return origin{{}, 0, 0, key};
}

const char* usage() {
  return k_usage;
}

command_line parse_command_line(int argc, char** argv) {
  command_line cl;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    }
    if (arg == "-t") {
      cl.test_only = true;
      continue;
    }
    if (arg.substr(0, 2) != "--") bad_usage("unknown option '" + std::string(arg) + "'");
    std::string name(arg.substr(2));
    std::optional<std::string> inline_value;
    if (const std::size_t eq = name.find('='); eq != std::string::npos) {
      // --flag=value (for the flags that take KEY=VALUE, the first '=' is the flag's)
      if (const option* o = find_option(name.substr(0, eq));
          o != nullptr && o->what != kind::pairs) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
    }
    const auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) bad_usage("--" + name + " needs a value");
      return argv[++i];
    };
    if (name == "config") {
      cl.config_file = value();
      continue;
    }
    const option* o = find_option(name);
    if (o == nullptr) bad_usage("unknown option '" + std::string(arg) + "'");
    cl.flags.emplace_back(name, o->what == kind::flag ? inline_value.value_or("true") : value());
  }
  return cl;
}

config load(const command_line& cl) {
  config c;
  if (!cl.config_file.empty()) {
    toml::table t;
    try {
      t = toml::parse(read_text(cl.config_file), cl.config_file);
    } catch (const toml::parse_error& e) {
      const auto& b = e.source().begin;
      if (b.line == 0) throw config_error(fmt::format("{}: {}", cl.config_file, e.description()));
      throw config_error(
          fmt::format("{}:{}:{}: {}", cl.config_file, b.line, b.column, e.description()));
    }
    file_reader{cl.config_file, c}.top(t);
  }
  std::vector<const option*> cleared;
  for (const auto& [name, value] : cl.flags) {
    const option* o = find_option(name);
    const origin where{{}, 0, 0, name};
    try {
      if ((o->what == kind::list || o->what == kind::pairs) &&
          std::find(cleared.begin(), cleared.end(), o) == cleared.end()) {
        o->clear(c);  // the command line's list replaces the file's
        cleared.push_back(o);
      }
      if (o->what == kind::pairs) {
        const std::size_t eq = value.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
          throw std::invalid_argument(fmt::format("expected {}, not '{}'", o->pair_names, value));
        o->set(c, std::string_view(value).substr(0, eq), std::string_view(value).substr(eq + 1));
      } else {
        o->set(c, {}, value);
      }
    } catch (const std::invalid_argument& e) {
      throw config_error(fmt::format("--{}: {}", name, e.what()), true);
    }
    c.origins.emplace_back(name, where);
  }
  return c;
}

}  // namespace lancer_serve
