#include "site.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "lancer/http/cgi.hpp"
#include "lancer/http/files.hpp"
#include "lancer/http/proxy.hpp"
#include "lancer/http/router.hpp"
#include "lancer/io/address.hpp"
#include "lancer/log.hpp"
#include "lancer/ws/socket.hpp"

namespace lancer_serve {

namespace fs = std::filesystem;
using lancer::task;

namespace {

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

[[noreturn]] void fail(const origin& where, std::string_view what) {
  throw config_error(fmt::format("{}: {}", where.str(), what), where.file.empty());
}

// A request handler as a route's.
http::route_handler as_route(http::request_handler h) {
  return
      [h = std::move(h)](http::context& x) { return h(x.conn(), x.req(), x.state(), x.shared()); };
}

task<> answer_health(lancer::connection& c, http::request& req, bool draining) {
  if (draining) {
    co_await http::respond(c, req, 503, "text/plain", "draining\n");
  } else {
    co_await http::respond(c, req, 200, "text/plain", "ok\n");
  }
}

// /ws: a WebSocket echo. ws::accept answers a request that is not a WebSocket handshake.
task<> ws_echo(lancer::connection& c, http::request& req, lancer::ws::options o) {
  std::unique_ptr<lancer::ws::socket> ws = co_await lancer::ws::accept(c, req, o);
  if (!ws) co_return;
  for (;;) {
    const std::optional<lancer::ws::message> m = co_await ws->read();
    if (!m) break;
    const bool sent = co_await ws->send(*m);
    if (!sent) break;
  }
}

// A files route: a missing or forbidden file gets the configuration's error page, if it has
// one. `files` is taken by value: the coroutine then needs no copy of the route to live.
task<> serve_files(http::static_files files, http::context& x) {
  const unsigned status = co_await files.answer_or_error(x.conn(), x.req());
  if (status != 0) co_await x.error(status);
}

task<> echo(http::context& x) {
  const auto body = co_await x.body();
  if (body) co_await x.respond(200, "application/octet-stream", *body);
}

lancer::clock::duration seconds(double s) {
  return std::chrono::duration_cast<lancer::clock::duration>(std::chrono::duration<double>(s));
}

// `prefix` as a route pattern taking everything under it ("/api/" -> "/api/{rest...}").
std::string under(std::string prefix) {
  if (prefix.back() != '/') prefix += '/';
  return prefix + "{rest...}";
}

// Whether a route of `prefix` takes `path`: the prefix itself, or anything under it.
bool covers(std::string_view prefix, std::string_view path) {
  if (prefix.empty()) return false;
  if (prefix.back() == '/') return path.substr(0, prefix.size()) == prefix;
  return path == prefix || (path.size() > prefix.size() &&
                            path.substr(0, prefix.size()) == prefix && path[prefix.size()] == '/');
}

void add_route(http::site& s, const route_config& r) {
  try {
    switch (r.what) {
      case route_config::kind::files: {
        http::static_options o = r.files;
        o.prefix = r.prefix.back() == '/' ? r.prefix : r.prefix + '/';
        std::error_code ec;
        if (!fs::is_directory(r.target, ec))
          fail(r.where, fmt::format("root '{}' is not a directory", r.target));
        const http::static_files files(r.target, o);
        s.route("GET, HEAD", under(r.prefix),
                [files](http::context& x) { return serve_files(files, x); });
        break;
      }
      case route_config::kind::proxy: {
        http::proxy_options o;
        if (r.timeout >= 0) o.response_timeout = seconds(r.timeout);
        if (r.connect_timeout >= 0) o.connect_timeout = seconds(r.connect_timeout);
        const http::request_handler p = http::proxy(lancer::parse_address(r.target, true), o);
        s.route("*", under(r.prefix), as_route(p));
        if (r.prefix.back() != '/' && r.prefix != "/") s.route("*", r.prefix, as_route(p));
        break;
      }
      case route_config::kind::cgi: {
        std::error_code ec;
        const fs::path dir = fs::canonical(r.target, ec);
        if (ec || !fs::is_directory(dir))
          fail(r.where, fmt::format("cgi '{}' is not a directory", r.target));
        std::string prefix = r.prefix;
        if (prefix.back() != '/') prefix += '/';
        http::cgi_options o;
        if (r.timeout >= 0) o.timeout = seconds(r.timeout);
        s.route("*", under(prefix), as_route(http::cgi_dir(prefix, dir, o)));
        break;
      }
    }
  } catch (const config_error&) {
    throw;
  } catch (const std::exception& e) {
    fail(r.where, e.what());
  }
}

// What one service holds. The members go in reverse order: the routes (which may be the
// modules' code) before the modules.
struct generation {
  std::vector<std::shared_ptr<const http::loaded_module>> modules;
  http::request_handler routes;
  http::request_handler scrape;
  std::string health;
  std::string metrics;
  runtime* rt = nullptr;

  task<> serve(lancer::connection& c, http::request& req, lancer::frame& f,
               lancer::pubframe& p) const {
    if (!health.empty() || !metrics.empty()) {
      const std::string_view path = path_of(req.target());
      if (!health.empty() && path == health)
        return answer_health(c, req, rt->draining.load(std::memory_order_relaxed));
      if (!metrics.empty() && path == metrics) return scrape(c, req, f, p);
    }
    return routes(c, req, f, p);
  }
};

// A route the options make (--proxy, --cgi, --root).
route_config flag_route(route_config::kind what, std::string prefix, std::string target,
                        http::static_options files, origin where) {
  route_config r;
  r.what = what;
  r.prefix = std::move(prefix);
  r.target = std::move(target);
  r.files = std::move(files);
  r.where = std::move(where);
  return r;
}

// A module whose registration failed in a router made with the configuration's routes.
struct module_refused {
  std::size_t index;  // in `use`
  std::string why;
};

// The router for `c`, with the modules of `use` registered. Throws module_refused for a
// module whose registration failed, config_error for the rest.
http::router make_router(const config& c, const std::vector<const module_config*>& use,
                         const module_set& modules,
                         std::vector<std::shared_ptr<const http::loaded_module>>& held) {
  http::router r;
  // The flags' routes (--proxy, --cgi, --root) and the built-in ones, on the any host.
  http::site& any = r.any();
  for (const auto& [prefix, upstream] : c.proxy)
    add_route(any,
              flag_route(route_config::kind::proxy, prefix, upstream, {}, c.where_of("proxy")));
  for (const auto& [prefix, dir] : c.cgi)
    add_route(any, flag_route(route_config::kind::cgi, prefix, dir, {}, c.where_of("cgi")));
  // A --proxy or --cgi of "/" takes every path: the root is left out then.
  const auto everything = [](const auto& rules) {
    return std::any_of(rules.begin(), rules.end(),
                       [](const auto& rule) { return rule.first == "/"; });
  };
  if (!c.root.empty() && !everything(c.proxy) && !everything(c.cgi))
    add_route(any, flag_route(route_config::kind::files, "/", c.root, c.files, c.where_of("root")));
  // The built-in routes, each unless a proxy or CGI route on the any host takes its path
  // (`--proxy /=U` sends /plaintext on too).
  std::vector<std::string_view> taken;
  for (const auto& rule : c.proxy)
    taken.push_back(rule.first);
  for (const auto& rule : c.cgi)
    taken.push_back(rule.first);
  for (const host_config& h : c.hosts) {
    if (!h.names.empty()) continue;
    for (const route_config& route : h.routes)
      if (route.what != route_config::kind::files) taken.push_back(route.prefix);
  }
  const auto open_path = [&taken](std::string_view path) {
    return std::none_of(taken.begin(), taken.end(),
                        [path](std::string_view p) { return covers(p, path); });
  };
  if (open_path("/plaintext")) {
    any.get("/plaintext",
            [](http::context& x) { return x.respond(200, "text/plain", "Hello, World!"); });
  }
  if (open_path("/echo")) any.route("*", "/echo", echo);
  if (open_path("/ws"))
    any.get("/ws", [o = c.ws](http::context& x) { return ws_echo(x.conn(), x.req(), o); });

  for (const host_config& h : c.hosts) {
    http::site* s = &r.any();
    if (!h.names.empty()) {
      try {
        s = &r.host(h.names);
      } catch (const std::exception& e) {
        fail(h.where, e.what());
      }
    }
    if (h.no_fallback) s->no_fallback();
    for (const route_config& route : h.routes)
      add_route(*s, route);
  }
  for (const auto& [status, file] : c.error_pages) {
    try {
      r.error_page(status, fs::path(file));
    } catch (const std::exception& e) {
      fail(c.where_of("error-pages"), fmt::format("error page {}: {}", status, e.what()));
    }
  }
  for (std::size_t i = 0; i < use.size(); ++i) {
    const module_config* m = use[i];
    std::shared_ptr<const http::loaded_module> loaded = modules.get(m->path);
    if (!loaded) continue;  // failed at its first load: left out (logged then)
    http::site* s = &r.any();
    if (!m->host.empty()) {
      try {
        s = &r.host(m->host);
      } catch (const std::exception& e) {
        fail(m->where, e.what());
      }
    }
    http::module_registry reg{r, *s};
    try {
      loaded->register_into(reg);
    } catch (const std::exception& e) {  // a route the configuration has already, say
      throw module_refused{i, fmt::format("{}: {}", m->path, e.what())};
    }
    held.push_back(std::move(loaded));
  }
  return r;
}

}  // namespace

bool module_set::update(const config& c, bool reload_changed, bool strict) {
  bool loaded = false;
  std::map<std::string, entry> kept;
  for (const module_config& m : c.modules) {
    auto it = modules_.find(m.path);
    entry e = it == modules_.end() ? entry{} : it->second;
    const std::optional<http::file_state> now = http::file_state_of(m.path);
    const bool need = !e.current || (reload_changed && e.current->changed_on_disk());
    const bool failed_already = e.tried && now && *e.tried == *now;
    if (need && !failed_already) {
      e.tried = now;
      try {
        std::shared_ptr<const http::loaded_module> fresh = http::load_module(m.path);
        if (e.current) lancer::log(lancer::log_level::info, "module", "{}: loaded again", m.path);
        e.current = std::move(fresh);
        e.tried.reset();
        loaded = true;
      } catch (const http::module_error& ex) {
        if (!e.current && strict) fail(m.where, ex.what());
        lancer::log(lancer::log_level::error, "module", "{}{}", ex.what(),
                    e.current ? "; the previous version stays" : "; it is left out");
      }
    }
    kept[m.path] = std::move(e);
  }
  modules_ = std::move(kept);
  return loaded;
}

bool module_set::any_changed() const {
  for (const auto& [path, e] : modules_) {
    const std::optional<http::file_state> now = http::file_state_of(path);
    if (e.tried && now == e.tried) continue;  // this version failed already
    if (!e.current || !now || *now != e.current->state()) return true;
  }
  return false;
}

std::shared_ptr<const http::loaded_module> module_set::get(const std::string& path) const {
  const auto it = modules_.find(path);
  return it == modules_.end() ? nullptr : it->second.current;
}

std::shared_ptr<const http::service> make_service(const config& c, const module_set& modules,
                                                  runtime& rt) {
  std::vector<const module_config*> use;
  for (const module_config& m : c.modules)
    use.push_back(&m);
  auto gen = std::make_shared<generation>();
  http::router r;
  for (;;) {
    gen->modules.clear();
    try {
      r = make_router(c, use, modules, gen->modules);
      break;
    } catch (const module_refused& e) {
      // That module's registration clashed with the configuration (or failed here only): the
      // router is made again without it.
      lancer::log(lancer::log_level::error, "module", "{}; it is left out", e.why);
      use.erase(use.begin() + static_cast<std::ptrdiff_t>(e.index));
    }
  }
  gen->routes = r.dispatcher(c.limits);
  gen->health = c.health;
  gen->metrics = c.metrics;
  gen->scrape = rt.metrics.handler();
  gen->rt = &rt;
  http::request_handler h = [gen](lancer::connection& conn, http::request& req, lancer::frame& f,
                                  lancer::pubframe& p) { return gen->serve(conn, req, f, p); };
  // An upgrade to WebSocket goes to the routes too: /ws (or a module's route) takes it, any
  // other path answers over HTTP/1.1 as if it had not asked.
  http::upgrades up;
  up.add("websocket", h);
  return std::make_shared<const http::service>(
      http::service{std::move(h), c.limits, rt.log_request, std::move(up)});
}

}  // namespace lancer_serve
