#include "lancer/http/router.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "lancer/http/status.hpp"
#include "lancer/sched/scheduler.hpp"

namespace lancer::http {

namespace detail {

namespace {

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = lower(c);
  return out;
}

bool valid_host_label_text(std::string_view name) noexcept {
  if (name.empty() || name.size() > 253) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  if (name.front() == '[') return name.back() == ']';  // an IPv6 literal, without a port
  if (name.find_first_of(":[]") != std::string_view::npos) return false;  // a port never matches
  return name.front() != '.' && name.back() != '.' && name.find("..") == std::string_view::npos;
}

}  // namespace

// One route: a method's handler at a node, with its captures' names in order.
struct method_route {
  std::string method;
  route_handler handler;
  std::vector<std::string> names;
};

// A node of a host's path tree: one segment deeper than its parent.
struct node {
  std::vector<std::pair<std::string, std::unique_ptr<node>>> literals;  // decoded, sorted
  std::unique_ptr<node> capture;                                        // `{name}`
  std::unique_ptr<node> rest;                                           // `{name...}`
  std::vector<method_route> methods;                                    // routes ending here
  std::string allow;  // the Allow value for this node (made at freeze)
};

struct host_entry {
  node root;
  std::string name;  // as given to host() ("" for the any host)
  bool fallback = true;
};

enum class host_kind { exact, any_depth, below, one_level };  // name, *., ~., +.

struct host_pattern {
  host_kind kind;
  std::string suffix;  // lower case; for the patterns, without the leading "*." / "~." / "+."
  std::size_t site;
};

struct error_page_entry {
  route_handler handler;  // or:
  std::string body;
  std::string content_type;
};

enum class automatic : std::uint8_t;

struct router_table {
  std::vector<std::unique_ptr<host_entry>> hosts;  // [0]: the any host
  std::vector<std::unique_ptr<site>> sites;        // the sites handed out, [0] unused
  std::vector<host_pattern> exact, patterns;       // patterns: longest suffix first
  std::vector<std::function<void(pubframe&)>> loaded;
  std::vector<route_handler> before;
  std::vector<middleware> wrap;
  std::map<unsigned, error_page_entry> pages;
  route_handler chain;  // the middleware around route_and_answer (made at freeze)
  std::string allow_all;
  bool frozen = false;
  // Which table this is, for the mark that its on_loaded hooks ran on a server (a server may
  // be given several tables over its life: lancer-serve's reloads).
  const std::uint64_t id = next_id();

  static std::uint64_t next_id() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  void check_open() const {
    if (frozen)
      throw std::logic_error("lancer::http::router: the table is fixed once handler() is called");
  }

  // The host for the request's Host (port and a trailing dot dropped; case-insensitive).
  std::size_t host_for(std::string_view host) const noexcept {
    if (exact.empty() && patterns.empty()) return 0;
    if (!host.empty() && host.front() == '[') {
      host = host.substr(0, host.find(']') + 1);
    } else {
      host = host.substr(0, host.find(':'));
    }
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    char buf[256];
    if (host.size() > sizeof buf) return 0;
    for (std::size_t i = 0; i < host.size(); ++i)
      buf[i] = lower(host[i]);
    const std::string_view h{buf, host.size()};
    for (const host_pattern& p : exact)
      if (p.suffix == h) return p.site;
    for (const host_pattern& p : patterns) {
      if (h.size() < p.suffix.size()) continue;
      if (h == p.suffix) {
        if (p.kind == host_kind::any_depth) return p.site;
        continue;
      }
      if (h.size() <= p.suffix.size() + 1 || !h.ends_with(p.suffix) ||
          h[h.size() - p.suffix.size() - 1] != '.')
        continue;
      const std::string_view label = h.substr(0, h.size() - p.suffix.size() - 1);
      if (p.kind == host_kind::one_level && label.find('.') != std::string_view::npos) continue;
      return p.site;
    }
    return 0;
  }

  bool any_empty = true;  // the any host has no routes (made at freeze)

  void freeze();
  const method_route* resolve(context& x, automatic& why, const node*& at) const;
  task<> answer(context& x, automatic why, const node* at) const;
  task<> route_and_answer(context& x) const;
};

namespace {

// Splits a pattern into segments; checks it.
struct pattern_segment {
  enum kind { literal, capture, rest } what;
  std::string text;  // the literal (decoded) or the capture's name
};

std::vector<pattern_segment> parse_pattern(std::string_view pattern) {
  const auto bad = [&](std::string_view why) {
    return std::invalid_argument(
        fmt::format("lancer::http::router: pattern '{}': {}", pattern, why));
  };
  if (pattern.empty() || pattern.front() != '/') throw bad("it must start with '/'");
  std::vector<pattern_segment> out;
  std::string_view rest = pattern.substr(1);
  for (;;) {
    const std::size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (!out.empty() && out.back().what == pattern_segment::rest)
      throw bad("a {name...} capture must be last");
    if (!seg.empty() && seg.front() == '{') {
      if (seg.back() != '}') throw bad("a capture is a whole segment: {name}");
      std::string_view name = seg.substr(1, seg.size() - 2);
      pattern_segment::kind k = pattern_segment::capture;
      if (name.ends_with("...")) {
        name.remove_suffix(3);
        k = pattern_segment::rest;
      }
      if (name.empty() || !valid_field_name(name)) throw bad("a capture needs a name");
      for (const pattern_segment& s : out)
        if (s.what != pattern_segment::literal && s.text == name)
          throw bad(fmt::format("two captures are called '{}'", name));
      out.push_back({k, std::string(name)});
    } else {
      if (seg.find_first_of("{}") != std::string_view::npos)
        throw bad("a capture is a whole segment: {name}");
      std::string decoded;
      if (!percent_decode(seg, decoded)) throw bad("a bad percent-escape");
      if (decoded == "." || decoded == "..") throw bad("a '.' or '..' segment");
      out.push_back({pattern_segment::literal, std::move(decoded)});
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  std::size_t captures = 0;
  for (const pattern_segment& s : out)
    captures += s.what != pattern_segment::literal;
  if (captures > 8) throw bad("more than 8 captures");
  return out;
}

void make_allow(node& n, std::set<std::string>& all) {
  if (!n.methods.empty()) {
    std::vector<std::string> m;
    for (const method_route& r : n.methods)
      if (r.method != "*") m.push_back(r.method);  // "*" takes any: no 405 is sent there
    const auto has = [&](std::string_view x) {
      return std::find(m.begin(), m.end(), x) != m.end();
    };
    if (has("GET") && !has("HEAD")) m.emplace_back("HEAD");
    if (!has("OPTIONS")) m.emplace_back("OPTIONS");
    std::sort(m.begin(), m.end());
    n.allow.clear();
    for (const std::string& x : m) {
      if (!n.allow.empty()) n.allow += ", ";
      n.allow += x;
      all.insert(x);
    }
  }
  for (auto& [_, child] : n.literals)
    make_allow(*child, all);
  if (n.capture) make_allow(*n.capture, all);
  if (n.rest) make_allow(*n.rest, all);
}

}  // namespace

void router_table::freeze() {
  if (frozen) return;
  frozen = true;
  std::set<std::string> all{"OPTIONS"};
  for (auto& h : hosts)
    make_allow(h->root, all);
  for (const std::string& m : all) {
    if (!allow_all.empty()) allow_all += ", ";
    allow_all += m;
  }
  const node& any_root = hosts[0]->root;
  any_empty =
      any_root.methods.empty() && any_root.literals.empty() && !any_root.capture && !any_root.rest;
  std::stable_sort(patterns.begin(), patterns.end(),
                   [](const host_pattern& a, const host_pattern& b) {
                     // Longer first; on the same suffix, +. before ~. before *.
                     if (a.suffix.size() != b.suffix.size())
                       return a.suffix.size() > b.suffix.size();
                     return static_cast<int>(a.kind) > static_cast<int>(b.kind);
                   });
  route_handler inner = [this](context& x) { return route_and_answer(x); };
  for (auto it = wrap.rbegin(); it != wrap.rend(); ++it) {
    inner = [m = *it, next = std::move(inner)](context& x) { return m(x, next); };
  }
  chain = std::move(inner);
}

// Finds the node the decoded segments lead to (a literal before a capture before a rest),
// filling the captures' values; null if none has routes.
struct matcher {
  const std::vector<std::string_view>& segs;
  std::array<std::string_view, 8>& values;
  std::string_view method;
  std::size_t count = 0;
  const node* path_match = nullptr;  // the first node the path reaches, whatever its methods

  // Whether `n` has a route for the method (HEAD is served by GET).
  bool serves(const node& n) const noexcept {
    for (const method_route& r : n.methods)
      if (r.method == method || r.method == "*" || (method == "HEAD" && r.method == "GET"))
        return true;
    return false;
  }
  // A node the path reaches that routes the method; the first node the path reaches at all is
  // kept in path_match (for 405 and OPTIONS).
  const node* reached(const node& n) {
    if (n.methods.empty()) return nullptr;
    if (path_match == nullptr) path_match = &n;
    return serves(n) ? &n : nullptr;
  }

  const node* match(const node& n, std::size_t i) {
    if (i == segs.size()) {
      if (const node* found = reached(n)) return found;
      if (n.rest) {
        values[count++] = {};
        if (const node* found = reached(*n.rest)) return found;
        --count;
      }
      return nullptr;
    }
    const std::string_view seg = segs[i];
    const auto lit = std::lower_bound(
        n.literals.begin(), n.literals.end(), seg,
        [](const auto& entry, std::string_view s) { return std::string_view(entry.first) < s; });
    if (lit != n.literals.end() && lit->first == seg) {
      if (const node* found = match(*lit->second, i + 1)) return found;
    }
    if (n.capture && !seg.empty()) {  // a capture is never empty: "/items/" is not an item
      const std::size_t mark = count;
      values[count++] = seg;
      if (const node* found = match(*n.capture, i + 1)) return found;
      count = mark;
    }
    if (n.rest) {
      // The rest of the decoded segments, joined: they lie one after another, each followed
      // by its '/', in the context's copy of the path or in its decoded one.
      const char* begin = seg.data();
      const std::string_view last = segs.back();
      values[count++] = {begin, static_cast<std::size_t>(last.data() + last.size() - begin)};
      if (const node* found = reached(*n.rest)) return found;
      --count;
    }
    return nullptr;
  }
};

}  // namespace detail

// --- context ------------------------------------------------------------------------------

std::string_view context::param(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < capture_count_; ++i)
    if (capture_names_[i] == name) return captures_[i];
  return {};
}

const params& context::query_params() {
  if (!query_parsed_) {
    query_parsed_ = true;
    if (!query_params_.parse(query_)) query_params_.clear();
  }
  return query_params_;
}

task<> context::respond(unsigned status, std::string_view content_type, std::string_view body) {
  return http::respond(*conn_, *req_, status, content_type, body, fields_);
}

task<> context::redirect(unsigned status, std::string_view location) {
  if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
    throw std::invalid_argument(
        fmt::format("lancer::http::redirect: {} is not a redirect", status));
  if (location.empty()) throw std::invalid_argument("lancer::http::redirect: an empty Location");
  fields_.add("Location", location);
  return http::respond(*conn_, *req_, status, "text/plain", "Redirecting\n", fields_);
}

task<std::optional<std::string_view>> context::body() {
  return read_body(*conn_, *req_, *limits_);
}

task<> context::error(unsigned status) {
  if (table_ != nullptr) {
    if (const auto it = table_->pages.find(status); it != table_->pages.end()) {
      if (it->second.handler) {
        co_await it->second.handler(*this);
        if (req_->answered() || conn_->closed()) co_return;  // else the plain page, below
      } else {
        co_await respond(status, it->second.content_type, it->second.body);
        co_return;
      }
    }
  }
  char text[64];
  std::string_view reason = code2status(status);
  if (reason.empty()) reason = status >= 500 ? "Server Error" : "Error";
  const auto r = fmt::format_to_n(text, sizeof text - 1, "{}", reason);
  text[r.size] = '\n';
  co_await respond(status, "text/plain", {text, r.size + 1});
}

namespace detail {

// Contexts reused from one request to the next on a scheduler: their buffers keep their
// capacity, so routing allocates nothing once warm.
struct context_pool {
  std::vector<std::unique_ptr<context>> free;
};

// Whether a decoded segment is, or holds ("%2F" decoded), a "." or ".." step: a path that
// climbs, whether it is matched as one segment or joined into a rest.
bool dot_segment(std::string_view seg) noexcept {
  for (;;) {
    const std::size_t slash = seg.find('/');
    const std::string_view step = seg.substr(0, slash);
    if (step == "." || step == "..") return true;
    if (slash == std::string_view::npos) return false;
    seg.remove_prefix(slash + 1);
  }
}

struct route_state {
  static std::unique_ptr<context> take() {
    auto& pool = scheduler::current()->local<context_pool>().free;
    if (pool.empty()) return std::unique_ptr<context>(new context());
    std::unique_ptr<context> x = std::move(pool.back());
    pool.pop_back();
    return x;
  }
  static void give_back(std::unique_ptr<context> x) noexcept {
    scheduler* s = scheduler::current();
    if (s == nullptr) return;
    auto& pool = s->local<context_pool>().free;
    if (pool.size() < 1024) {
      try {
        pool.push_back(std::move(x));
      } catch (...) {  // the context just goes
      }
    }
  }
  // Fills `x` for `req`; false if the path is bad (then it was not routed).
  static bool prepare(context& x, connection& c, request& req, frame& f, pubframe& p,
                      const router_table& t, const limits& lim) {
    std::vector<std::string_view>& segs = x.segments_;
    x.conn_ = &c;
    x.req_ = &req;
    x.frame_ = &f;
    x.pub_ = &p;
    x.table_ = &t;
    x.limits_ = &lim;
    x.capture_count_ = 0;
    x.query_parsed_ = false;
    x.fields_.clear();
    x.host_name_ = {};
    // A copy of the target: the request's own bytes move when the body is read (the buffer
    // grows), and the captures, path and query must outlive that. Its capacity is kept.
    x.target_.assign(req.target());
    const auto [path, query] = split_target(x.target_);
    x.query_ = query;
    x.path_ = path;
    segs.clear();
    if (path == "*") return true;  // OPTIONS * (the parser lets no other method have it)
    if (path.empty() || path.front() != '/') return false;
    // Each segment decoded on its own (so "%2F" stays inside one), one after another in the
    // scratch buffer with a '/' after each: a rest capture is a view over several. A path
    // without escapes is its own decoding: the segments are views into it.
    const bool escaped = path.find('%') != std::string_view::npos;
    if (escaped) {
      x.scratch_.clear();
      x.scratch_.reserve(path.size() + 1);  // no reallocation below: the views stay valid
    }
    std::string_view raw = path.substr(1);
    for (;;) {
      const std::size_t slash = raw.find('/');
      std::string_view seg = raw.substr(0, slash);
      if (escaped) {
        const std::size_t at = x.scratch_.size();
        if (!percent_decode(seg, x.scratch_)) return false;
        seg = {x.scratch_.data() + at, x.scratch_.size() - at};
        x.scratch_.push_back('/');
      }
      if (dot_segment(seg)) return false;
      segs.push_back(seg);
      if (slash == std::string_view::npos) break;
      raw.remove_prefix(slash + 1);
    }
    if (escaped) {
      x.decoded_.clear();
      x.decoded_.push_back('/');
      x.decoded_.append(x.scratch_.data(), x.scratch_.size() - 1);
      x.path_ = x.decoded_;
    }
    return true;
  }
};

// What routing decided for a request that is not handed to a route: the automatic answer.
enum class automatic : std::uint8_t {
  none,
  options_star,
  bad_request,
  no_host,
  not_found,
  options,
  bad_method
};

const method_route* router_table::resolve(context& x, automatic& why, const node*& at) const {
  request& req = x.req();
  const std::string_view method = req.method();
  if (x.path_ == "*") {
    why = method == "OPTIONS" ? automatic::options_star : automatic::bad_request;
    return nullptr;
  }
  std::size_t site = host_for(req.host());
  if (site == 0 && any_empty && (!exact.empty() || !patterns.empty())) {
    why = automatic::no_host;
    return nullptr;
  }
  std::array<std::string_view, 8> values;
  const node* found = nullptr;
  const node* path_match = nullptr;
  std::size_t count = 0;
  for (;;) {
    matcher m{x.segments_, values, method};
    found = m.match(hosts[site]->root, 0);
    count = m.count;
    path_match = m.path_match;
    if (path_match != nullptr || site == 0 || !hosts[site]->fallback) break;
    site = 0;  // the any host's routes
  }
  x.host_name_ = hosts[site]->name;
  at = path_match;
  if (path_match == nullptr) {
    why = automatic::not_found;
    return nullptr;
  }
  const method_route* route = nullptr;
  if (found != nullptr) {
    for (const method_route& r : found->methods)
      if (r.method == method) route = &r;
    if (route == nullptr && method == "HEAD") {  // HEAD, served by GET
      for (const method_route& r : found->methods)
        if (r.method == "GET") route = &r;
    }
    if (route == nullptr) {  // every other method
      for (const method_route& r : found->methods)
        if (r.method == "*") route = &r;
    }
  }
  if (route == nullptr) {
    why = method == "OPTIONS" ? automatic::options : automatic::bad_method;
    return nullptr;
  }
  for (std::size_t i = 0; i < count; ++i) {
    x.capture_names_[i] = route->names[i];
    x.captures_[i] = values[i];
  }
  x.capture_count_ = count;
  return route;
}

task<> router_table::answer(context& x, automatic why, const node* at) const {
  switch (why) {
    case automatic::options_star:
      x.fields().add("Allow", allow_all);
      co_await x.respond(204, "", "");
      break;
    case automatic::no_host:
      if (pages.contains(421)) {
        co_await x.error(421);
      } else {
        const std::string text = fmt::format("No site here for host '{}'\n", x.req().host());
        co_await x.respond(421, "text/plain", text);
      }
      break;
    case automatic::options:
      x.fields().add("Allow", at->allow);
      co_await x.respond(204, "", "");
      break;
    case automatic::bad_method:
      x.fields().add("Allow", at->allow);
      co_await x.error(405);
      break;
    case automatic::not_found:
      co_await x.error(404);
      break;
    case automatic::bad_request:
    case automatic::none:
      co_await x.error(400);
      break;
  }
}

// Routing, then the route's handler (its task returned as it is: no frame of our own), or
// the automatic answer.
task<> router_table::route_and_answer(context& x) const {
  automatic why = automatic::none;
  const node* at = nullptr;
  if (const method_route* route = resolve(x, why, at)) return route->handler(x);
  return answer(x, why, at);
}

namespace {

// One request through the table: the context, the hooks, then the chain.
task<> dispatch(const std::shared_ptr<router_table>& t, const limits& lim, connection& c,
                request& req, frame& f, pubframe& p) {
  // The tables whose on_loaded hooks ran for this server.
  struct loaded_marks {
    std::vector<std::uint64_t> ids;
  };
  loaded_marks* marks = p.get<loaded_marks>();
  if (marks == nullptr ||
      std::find(marks->ids.begin(), marks->ids.end(), t->id) == marks->ids.end()) {
    for (const auto& on_loaded : t->loaded)
      on_loaded(p);  // throws: this request gets 500, and the next one tries again
    if (marks == nullptr) marks = &p.emplace<loaded_marks>();
    marks->ids.push_back(t->id);
  }
  struct lease {
    std::unique_ptr<context> x = route_state::take();
    ~lease() { route_state::give_back(std::move(x)); }
  } held;
  context& x = *held.x;
  if (!route_state::prepare(x, c, req, f, p, *t, lim)) {
    co_await x.error(400);
    co_return;
  }
  for (const route_handler& h : t->before) {
    co_await h(x);
    if (req.answered() || c.closed()) co_return;
  }
  co_await t->chain(x);
}

}  // namespace

}  // namespace detail

// --- site and router ----------------------------------------------------------------------

site& site::route(std::string_view methods, std::string_view pattern, route_handler h) {
  table_->check_open();
  if (!h) throw std::invalid_argument("lancer::http::router: an empty handler");
  const std::vector<detail::pattern_segment> segs = detail::parse_pattern(pattern);
  detail::node* n = &table_->hosts[index_]->root;
  std::vector<std::string> names;
  for (const detail::pattern_segment& s : segs) {
    switch (s.what) {
      case detail::pattern_segment::literal: {
        auto it = std::lower_bound(n->literals.begin(), n->literals.end(), s.text,
                                   [](const auto& e, const std::string& t) { return e.first < t; });
        if (it == n->literals.end() || it->first != s.text)
          it = n->literals.insert(it, {s.text, std::make_unique<detail::node>()});
        n = it->second.get();
        break;
      }
      case detail::pattern_segment::capture:
        if (!n->capture) n->capture = std::make_unique<detail::node>();
        n = n->capture.get();
        names.push_back(s.text);
        break;
      case detail::pattern_segment::rest:
        if (!n->rest) n->rest = std::make_unique<detail::node>();
        n = n->rest.get();
        names.push_back(s.text);
        break;
    }
  }
  std::vector<std::string_view> list;
  const bool ok = for_each_list_item(methods, [&](std::string_view m) {
    if (!valid_field_name(m) || std::find(list.begin(), list.end(), m) != list.end()) return false;
    list.push_back(m);
    return true;
  });
  if (!ok || list.empty())
    throw std::invalid_argument(fmt::format(
        "lancer::http::router: '{}' is not a method or a list of distinct methods", methods));
  for (const std::string_view m : list)
    for (const detail::method_route& r : n->methods)
      if (r.method == m)
        throw std::logic_error(
            fmt::format("lancer::http::router: {} {} is routed twice", m, pattern));
  for (const std::string_view m : list)
    n->methods.push_back({std::string(m), h, names});
  return *this;
}

site& site::no_fallback() {
  table_->check_open();
  table_->hosts[index_]->fallback = false;
  return *this;
}

router::router() : table_(std::make_shared<detail::router_table>()), any_(*table_, 0) {
  table_->hosts.push_back(std::make_unique<detail::host_entry>());
}

router::~router() = default;
router::router(router&&) noexcept = default;
router& router::operator=(router&&) noexcept = default;

site& router::host(std::string_view names) {
  table_->check_open();
  detail::router_table& t = *table_;
  // A name already given: its host.
  std::optional<std::size_t> index;
  std::vector<detail::host_pattern> adds;
  const bool ok = for_each_list_item(names, [&](std::string_view name) {
    detail::host_kind kind = detail::host_kind::exact;
    if (name.size() > 2 && name[1] == '.' && (name[0] == '*' || name[0] == '~' || name[0] == '+')) {
      kind = name[0] == '*'   ? detail::host_kind::any_depth
             : name[0] == '~' ? detail::host_kind::below
                              : detail::host_kind::one_level;
      name.remove_prefix(2);
    }
    if (!detail::valid_host_label_text(name)) return false;
    const std::string low = detail::lowered(name);
    auto& list = kind == detail::host_kind::exact ? t.exact : t.patterns;
    for (const detail::host_pattern& p : list)
      if (p.kind == kind && p.suffix == low) index = p.site;
    adds.push_back({kind, low, 0});
    return true;
  });
  if (!ok || adds.empty())
    throw std::invalid_argument(
        fmt::format("lancer::http::router: '{}' is not a list of host names", names));
  if (!index) {
    t.hosts.push_back(std::make_unique<detail::host_entry>());
    t.hosts.back()->name = std::string(names);
    index = t.hosts.size() - 1;
  }
  for (detail::host_pattern& p : adds) {
    auto& list = p.kind == detail::host_kind::exact ? t.exact : t.patterns;
    const bool known = std::any_of(list.begin(), list.end(), [&](const detail::host_pattern& q) {
      return q.kind == p.kind && q.suffix == p.suffix;
    });
    if (known) continue;
    p.site = *index;
    list.push_back(std::move(p));
  }
  while (t.sites.size() <= *index)
    t.sites.push_back(nullptr);
  if (!t.sites[*index]) t.sites[*index] = std::unique_ptr<site>(new site(t, *index));
  return *t.sites[*index];
}

void router::on_loaded(std::function<void(pubframe&)> f) {
  table_->check_open();
  table_->loaded.push_back(std::move(f));
}

void router::before(route_handler h) {
  table_->check_open();
  table_->before.push_back(std::move(h));
}

void router::use(middleware m) {
  table_->check_open();
  table_->wrap.push_back(std::move(m));
}

void router::error_page(unsigned status, route_handler h) {
  table_->check_open();
  table_->pages[status] = {std::move(h), {}, {}};
}

void router::error_page(unsigned status, const std::filesystem::path& file,
                        std::string_view content_type) {
  table_->check_open();
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw std::runtime_error(
        fmt::format("lancer::http::router: cannot read the error page {}", file.string()));
  std::ostringstream text;
  text << in.rdbuf();
  table_->pages[status] = {{}, text.str(), std::string(content_type)};
}

server::handler router::handler(limits lim, access_hook log_to) {
  return serve(dispatcher(lim), lim, std::move(log_to));
}

request_handler router::dispatcher(limits lim) {
  table_->freeze();
  auto table = table_;
  auto shared_lim = std::make_shared<const limits>(lim);
  return [table, shared_lim](connection& c, request& req, frame& f, pubframe& p) {
    return detail::dispatch(table, *shared_lim, c, req, f, p);
  };
}

}  // namespace lancer::http
