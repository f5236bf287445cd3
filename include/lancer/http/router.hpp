// lancer::http::router: virtual hosts, path patterns and methods, for an HTTP app.
//
//   http::router app;
//   app.get("/hello/{name}", [](http::context& x) -> lancer::task<> {
//     co_await x.respond(200, "text/plain", fmt::format("Hello, {}!\n", x.param("name")));
//   });
//   app.host("api.example.com, *.api.example.org").post("/items", add_item);
//   lancer::server srv{sched, app.handler()};
//
// Hosts. Routes added on the router itself belong to the `any` host. host(names) makes (or
// finds) a host from a comma list of names, each one of:
//   example.com     that name exactly (names compare case-insensitively; a port and a
//                   trailing dot in the request's Host are ignored);
//   *.example.com   example.com and every name under it;
//   ~.example.com   the names under example.com, not example.com itself;
//   +.example.com   a name one label under example.com (a.example.com, not a.b.example.com).
// An exact name wins over a pattern, and a longer pattern over a shorter one. A request whose
// path no route of its host matches falls back to the `any` host's routes, unless the host
// says no_fallback(). A request for a host nobody serves, when the `any` host has no routes,
// gets 421 Misdirected Request naming the host.
//
// Patterns. A path pattern is a list of segments: a literal (`items`), a capture of one whole
// segment (`{id}`), or, last, a capture of the rest of the path (`{path...}`, which may be
// empty; a `{name}` capture never is). Captures are percent-decoded; a literal wins over a
// capture and a capture over a rest, and a path goes to the first route (in that order) that
// has the request's method, so `GET /items/new` and `DELETE /items/{id}` live side by side. The
// request's path is split at '/' before decoding, so `%2F` stays inside a segment; a path with a
// bad escape, a NUL, or a `.` or `..` step (also one made of "%2F" and dots) gets 400.
//
// Methods. A path that matches but not for the method gets 405 with Allow; OPTIONS gets 204
// with Allow unless routed; HEAD is served by the GET route (the body is not sent), unless
// HEAD is routed itself. The method "*" routes every method the pattern has no route of its
// own for (a proxy's or a CGI directory's prefix). `OPTIONS *` gets 204 with the methods of
// every route.
//
// Error pages: error_page(status, handler or file) replaces the router's plain page for that
// status, for its own answers (400, 404, 405, 421) and for context::error().
//
// Hooks and middleware, in the order they run for a request:
//   on_loaded(f)   once per server and table, before the table's first request on that
//                  server: f(pubframe&) sets up state;
//   before(h)      each request, before routing: h may answer (then routing stops) or not;
//   use(m)         middleware around routing and the route's handler (or the automatic
//                  404/405/OPTIONS answer): m(x, next) may act before and after co_await
//                  next(x), or answer without calling it. The first use() is the outermost.
//
// The table is fixed once handler() is called (a change then throws std::logic_error); the
// handler shares it, so the router itself may go. Routing a request allocates nothing: the
// context and its buffers are reused from a per-scheduler pool.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/core/connection.hpp"
#include "lancer/core/frame.hpp"
#include "lancer/core/server.hpp"
#include "lancer/http/headers.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/request.hpp"
#include "lancer/http/url.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

namespace detail {
struct router_table;
struct route_state;
}  // namespace detail

// What a route's handler is given: the request and its connection, the pattern's captures, the
// app's state, and ways to answer that add the context's extra fields.
class context {
 public:
  connection& conn() noexcept { return *conn_; }
  request& req() noexcept { return *req_; }
  const request& req() const noexcept { return *req_; }
  frame& state() noexcept { return *frame_; }    // this connection's
  pubframe& shared() noexcept { return *pub_; }  // the server's

  // The capture called `name`, percent-decoded; "" if the route has none by that name.
  std::string_view param(std::string_view name) const noexcept;
  // The capture as a number: nullopt if absent, not wholly a number, or out of T's range.
  template <class T = std::int64_t>
  std::optional<T> param_as(std::string_view name) const noexcept {
    const std::string_view v = param(name);
    T out{};
    const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
    if (v.empty() || r.ec != std::errc{} || r.ptr != v.data() + v.size()) return std::nullopt;
    return out;
  }
  // The request's path, percent-decoded, and its query (after '?', as sent).
  std::string_view path() const noexcept { return path_; }
  std::string_view query() const noexcept { return query_; }
  // The query's parameters, parsed on first use; an unparsable query has none.
  const params& query_params();
  // The limits the request is read under (router::handler's).
  const limits& read_limits() const noexcept { return *limits_; }
  // The host the request was routed to ("" for the `any` host), as the router names it.
  std::string_view host_name() const noexcept { return host_name_; }

  // Extra fields for this request's response (Set-Cookie, Cache-Control, ...): middleware and
  // handlers add them, every answer below writes them. Cleared for each request.
  http::fields& fields() noexcept { return fields_; }

  // Answers with a body (and the extra fields).
  task<> respond(unsigned status, std::string_view content_type, std::string_view body);
  // Answers with a redirect (301, 302, 303, 307, 308) to `location`.
  task<> redirect(unsigned status, std::string_view location);
  // Answers with the router's page for `status` (error_page), or a plain one.
  task<> error(unsigned status);
  // Reads the whole body (read_body); nullopt when it was bad and answered.
  task<std::optional<std::string_view>> body();

  context(const context&) = delete;
  context& operator=(const context&) = delete;

 private:
  friend struct detail::route_state;
  friend struct detail::router_table;
  context() = default;

  static constexpr std::size_t k_max_captures = 8;
  connection* conn_ = nullptr;
  request* req_ = nullptr;
  frame* frame_ = nullptr;
  pubframe* pub_ = nullptr;
  const detail::router_table* table_ = nullptr;
  const limits* limits_ = nullptr;
  std::string_view path_, query_, host_name_;
  std::array<std::string_view, k_max_captures> capture_names_{};
  std::array<std::string_view, k_max_captures> captures_{};
  std::size_t capture_count_ = 0;
  std::string target_;   // a copy of the request's target (its bytes move as a body is read)
  std::string decoded_;  // the decoded path, when it had escapes
  std::string scratch_;  // decoded segments, for the match
  std::vector<std::string_view> segments_;  // into target_, or scratch_ if it had escapes
  params query_params_;                     // parsed on first use
  bool query_parsed_ = false;
  http::fields fields_;
};

using route_handler = std::function<task<>(context&)>;
using middleware = std::function<task<>(context&, const route_handler& next)>;

// A virtual host: its routes.
class site {
 public:
  // Routes `pattern` for `methods` (one method, or a comma list: "GET, POST") to `h`. Throws
  // std::invalid_argument for a bad pattern (a capture not a whole segment, a rest not last,
  // more than 8 captures, two names alike) or a method that is not a token, and
  // std::logic_error for a pattern and method routed twice.
  site& route(std::string_view methods, std::string_view pattern, route_handler h);
  site& get(std::string_view pattern, route_handler h) { return route("GET", pattern, h); }
  site& post(std::string_view pattern, route_handler h) { return route("POST", pattern, h); }
  site& put(std::string_view pattern, route_handler h) { return route("PUT", pattern, h); }
  site& patch(std::string_view pattern, route_handler h) { return route("PATCH", pattern, h); }
  site& del(std::string_view pattern, route_handler h) { return route("DELETE", pattern, h); }
  // A path this host does not route gets 404 here, rather than the `any` host's routes.
  site& no_fallback();

 private:
  friend class router;
  friend struct detail::router_table;
  explicit site(detail::router_table& t, std::size_t index) : table_(&t), index_(index) {}
  detail::router_table* table_;
  std::size_t index_;
};

class router {
 public:
  router();
  ~router();
  router(router&&) noexcept;
  router& operator=(router&&) noexcept;

  // The `any` host, and routes on it.
  site& any() noexcept { return any_; }
  site& route(std::string_view methods, std::string_view pattern, route_handler h) {
    return any_.route(methods, pattern, std::move(h));
  }
  site& get(std::string_view pattern, route_handler h) { return any_.get(pattern, h); }
  site& post(std::string_view pattern, route_handler h) { return any_.post(pattern, h); }
  site& put(std::string_view pattern, route_handler h) { return any_.put(pattern, h); }
  site& patch(std::string_view pattern, route_handler h) { return any_.patch(pattern, h); }
  site& del(std::string_view pattern, route_handler h) { return any_.del(pattern, h); }

  // The host for a comma list of names (see the top of this file). A name given again
  // returns the host that has it. Throws std::invalid_argument for a malformed name.
  site& host(std::string_view names);

  void on_loaded(std::function<void(pubframe&)> f);
  void before(route_handler h);
  void use(middleware m);
  // The page for `status`: a handler, or a file's content (read now; std::runtime_error if it
  // cannot be) sent as `content_type`.
  void error_page(unsigned status, route_handler h);
  void error_page(unsigned status, const std::filesystem::path& file,
                  std::string_view content_type = "text/html; charset=utf-8");

  // The connection handler that serves the table, reading requests under `lim` (see serve()).
  server::handler handler(limits lim = {}, access_hook log_to = {});
  // The table as a request handler, for a serve() of one's own (a service_slot's, an
  // upgrade's): what handler() runs for each request. `lim` is what context::read_limits()
  // gives the handlers. Fixes the table, as handler() does.
  request_handler dispatcher(limits lim = {});

 private:
  std::shared_ptr<detail::router_table> table_;
  site any_;
};

}  // namespace lancer::http
