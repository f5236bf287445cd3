#include "lancer/http/proxy.hpp"

#include <boost/beast/http/error.hpp>

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http/detail/response_parser.hpp"
#include "lancer/log.hpp"

namespace lancer::http {

namespace beast = boost::beast;

namespace {

// Idle keep-alive connections to each upstream, per scheduler (so per OS thread), newest last.
struct idle_connection {
  std::unique_ptr<stream> s;
  clock::time_point since;
};
struct proxy_pools {
  std::unordered_map<std::string, std::vector<idle_connection>> by_upstream;
};

bool idempotent(std::string_view method) noexcept {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

// Fields that describe one hop, not the message (RFC 9110 7.6.1), and those the proxy frames
// or handles itself.
bool hop_by_hop(std::string_view name) noexcept {
  for (const std::string_view h :
       {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding",
        "Upgrade", "Content-Length", "Expect", "Proxy-Authorization"}) {
    if (iequals(name, h)) return true;
  }
  return false;
}

// True if `name` is listed in a Connection field value (also hop-by-hop, RFC 9110 7.6.1).
bool named_in(std::string_view connection_value, std::string_view name) {
  bool found = false;
  for_each_list_item(connection_value, [&](std::string_view item) {
    found = iequals(item, name);
    return !found;
  });
  return found;
}

// The client's address without its port, as X-Forwarded-For and Forwarded want it.
std::string_view client_host(std::string_view peer) noexcept {
  if (!peer.empty() && peer.front() == '[') return peer.substr(0, peer.find(']') + 1);
  return peer.substr(0, peer.rfind(':'));
}

// The length of the header block at the front of `in` (its empty line included); 0 if none.
std::size_t end_of_header(std::string_view in) noexcept {
  const std::size_t end = in.find("\r\n\r\n");
  return end == std::string_view::npos ? 0 : end + 4;
}

// Writes the request line and fields that go to the upstream.
void write_request_head(stream& up, const connection& c, const request& req,
                        const proxy_options& o) {
  std::string_view target = req.target();
  if (!o.strip_prefix.empty() && target.substr(0, o.strip_prefix.size()) == o.strip_prefix) {
    target.remove_prefix(o.strip_prefix.size());
  }
  up.write(req.method());
  up.write(" ");
  if (target.empty() || target.front() != '/') up.write("/");
  up.write(target);
  up.write(" HTTP/1.1\r\n");
  const std::string_view connection_field = req.headers().get("Connection");
  std::string_view forwarded_for;
  bool host_seen = false;
  for (const headers::field f : req.headers()) {
    if (hop_by_hop(f.name) || named_in(connection_field, f.name)) continue;
    if (iequals(f.name, "X-Forwarded-For")) {
      forwarded_for = f.value;  // appended to, below
      continue;
    }
    if (iequals(f.name, "X-Forwarded-Proto") || iequals(f.name, "X-Forwarded-Host") ||
        iequals(f.name, "Forwarded")) {
      continue;  // this hop's, written below
    }
    if (iequals(f.name, "Host")) host_seen = true;
    up.write(f.name);
    up.write(": ");
    up.write(f.value);
    up.write("\r\n");
  }
  const std::string_view host = req.host();
  if (!host_seen && !host.empty()) {  // an absolute-form target's authority
    up.write("Host: ");
    up.write(host);
    up.write("\r\n");
  }
  const std::string_view client = client_host(c.peer_address());
  up.write("X-Forwarded-For: ");
  if (!forwarded_for.empty()) {
    up.write(forwarded_for);
    up.write(", ");
  }
  up.write(client);
  up.write("\r\nX-Forwarded-Proto: http\r\nVia: 1.1 lancer\r\n");
  if (!host.empty()) {
    up.write("X-Forwarded-Host: ");
    up.write(host);
    up.write("\r\n");
  }
  // RFC 7239: an IPv6 address is quoted, a host with a port too.
  const bool quote = client.find(':') != std::string_view::npos;
  up.write(quote ? "Forwarded: for=\"" : "Forwarded: for=");
  up.write(client);
  up.write(quote ? "\";proto=http" : ";proto=http");
  if (!host.empty()) {
    up.write(";host=\"");
    up.write(host);
    up.write("\"");
  }
  up.write("\r\n");
  if (req.chunked()) {
    up.write("Transfer-Encoding: chunked\r\n");
  } else if (req.content_length()) {
    char n[24];
    const auto end = fmt::format_to(n, "Content-Length: {}\r\n", *req.content_length());
    up.write({n, static_cast<std::size_t>(end - n)});
  }
  up.write("\r\n");
}

// Sends the client's body on, re-chunked if it came chunked. Returns false if the client's
// body was bad (it has been answered) or stalled.
task<bool> send_body(connection& c, request& req, stream& up, const proxy_options& o) {
  for (;;) {
    const auto piece = co_await read_body_some(c, req, 64 * 1024, o.request_limits);
    if (!piece) co_return false;
    if (piece->empty()) break;
    if (req.chunked()) {
      char size[20];
      const auto end = fmt::format_to(size, "{:x}\r\n", piece->size());
      up.write({size, static_cast<std::size_t>(end - size)});
      up.write(*piece);
      co_await up.send("\r\n");
    } else {
      co_await up.send(*piece);
    }
  }
  if (req.chunked()) up.write("0\r\n\r\n");
  co_return true;
}

enum class outcome {
  done,       // answered; the upstream connection may be reused if `reusable`
  retry,      // a pooled connection was dead before any answer: try a fresh one
  refused,    // no answer to give: 502
  timed_out,  // no answer in time: 504
  cut,        // the answer had begun: the client's connection is cut
  client_bad  // the client's body was bad: already answered
};

struct attempt_result {
  outcome how = outcome::done;
  bool reusable = false;
  std::string why;
};

// One try: the request on `up`, the answer back to the client.
task<attempt_result> exchange(connection& c, request& req, stream& up, bool reused,
                              const proxy_options& o) {
  attempt_result r;
  bool answered = false;  // the client's answer has begun
  bool heard = false;     // the upstream sent something
  bool timed_out_now = false;
  std::string failure;
  try {
    write_request_head(up, c, req, o);
    if (req.has_body()) {
      const bool ok = co_await send_body(c, req, up, o);
      if (!ok) {
        r.how = outcome::client_bad;
        co_return r;
      }
    }
    co_await up.flush();
    up.set_timeout(o.response_timeout);
    c.set_timeout(o.response_timeout + o.idle_timeout);  // the body reader set its own

    // The answer's header (1xx interim answers are passed over).
    std::optional<detail::response_parser> rp;
    for (;;) {
      // What is buffered first (a final answer may have come with an interim one), then
      // more.
      std::size_t n = 1;
      if (up.buffered().find("\r\n\r\n") == std::string_view::npos) n = co_await up.read();
      heard = heard || !up.buffered().empty();
      const std::string_view in = up.buffered();
      const std::size_t end = in.find("\r\n\r\n");
      if (end != std::string_view::npos) {
        rp.emplace(req.is_head(), o.max_header);
        beast::error_code ec;
        const std::size_t used = rp->put(boost::asio::buffer(in.data(), end + 4), ec);
        if (ec) {
          failure = "a bad answer: " + ec.message();
          break;
        }
        if (rp->status() >= 100 && rp->status() < 200) {  // interim: the final one follows
          up.consume(used);
          rp.reset();
          continue;
        }
        break;
      }
      if (in.size() > o.max_header) {
        failure = "an answer header over " + std::to_string(o.max_header) + " bytes";
        break;
      }
      if (n == 0 && up.at_eof()) {
        failure = heard ? "an answer that ends in its header" : "closed without an answer";
        break;
      }
    }
    if (!failure.empty() || !rp) {
      r.how = !heard && reused && idempotent(req.method()) && !req.has_body() ? outcome::retry
                                                                              : outcome::refused;
      r.why = failure;
      co_return r;
    }

    // The client's answer: the upstream's status and fields, this hop's framing.
    std::string_view content_type;
    std::vector<headers::field, lancer::detail::pool_allocator<headers::field>> fields;
    fields.reserve(rp->fields().size());
    std::string_view connection_field;
    for (const auto& f : rp->fields()) {
      if (iequals(f.name, "Connection")) connection_field = f.value;
    }
    for (const auto& f : rp->fields()) {
      if (iequals(f.name, "Content-Type")) {
        content_type = f.value;
      } else if (!hop_by_hop(f.name) && !named_in(connection_field, f.name) &&
                 !iequals(f.name, "Date") && !iequals(f.name, "Server")) {
        fields.push_back({f.name, f.value});
      }
    }
    const unsigned status = rp->status();
    if (rp->content_length() || (rp->is_done() && !req.is_head())) {
      start_response(c, req, status, content_type, rp->content_length().value_or(0), fields);
    } else {
      start_chunked(c, req, status, content_type, fields);
    }
    answered = true;
    up.consume(end_of_header(up.buffered()));

    // The body, decoded by the parser and passed on as it comes.
    rp->eager(true);
    std::size_t stalled = 0;  // bytes Beast has seen and asked more for (0: none pending)
    while (!rp->is_done()) {
      const std::string_view in = up.buffered();
      // After need_more, feed Beast again only once a new line end has come (Beast 1.81
      // asserts on a chunk header fed a byte at a time; see httputil's chunked reader).
      const bool fresh =
          in.substr(std::min(stalled, in.size())).find('\n') != std::string_view::npos;
      if (!in.empty() && (stalled == 0 || fresh || !rp->chunked())) {
        beast::error_code ec;
        const std::size_t used = rp->put(boost::asio::buffer(in.data(), in.size()), ec);
        up.consume(used);
        stalled = ec == beast::http::error::need_more ? in.size() - used : 0;
        if (ec && ec != beast::http::error::need_more) {
          failure = "a bad answer body: " + ec.message();
          break;
        }
      }
      if (!rp->body().empty()) {
        c.set_timeout(o.idle_timeout);
        co_await send_chunk(c, req, rp->body());
        rp->body().clear();
      }
      if (rp->is_done()) break;
      up.set_timeout(o.idle_timeout);
      const std::size_t n = co_await up.read();
      if (n == 0 && up.at_eof()) {
        beast::error_code ec;
        rp->put_eof(ec);  // the end of a body that runs to the close; an error otherwise
        if (ec) failure = "an answer cut short";
        if (!rp->body().empty()) co_await send_chunk(c, req, rp->body());
        break;
      }
    }
    if (!failure.empty()) {
      r.how = outcome::cut;
      r.why = failure;
      co_return r;
    }
    co_await end_chunked(c, req);
    r.reusable = rp->keep_alive() && up.buffered().empty() && !up.at_eof() && !up.closed();
    co_return r;
  } catch (const timed_out&) {
    timed_out_now = true;
  } catch (const connection_error& e) {
    failure = e.what();
  }
  if (answered) {
    r.how = outcome::cut;
  } else if (timed_out_now) {
    r.how = outcome::timed_out;
  } else {
    r.how = !heard && reused && idempotent(req.method()) && !req.has_body() ? outcome::retry
                                                                            : outcome::refused;
  }
  r.why = timed_out_now ? "no answer in time" : failure;
  co_return r;
}

task<> proxy_one(connection& c, request& req, const address& up, const std::string& name,
                 const proxy_options& o) {
  network& net = o.net != nullptr ? *o.net : real_network();
  auto& pool = c.sched().local<proxy_pools>().by_upstream[name];
  c.set_timeout(o.connect_timeout + o.response_timeout);
  // A request that cannot be sent twice (not idempotent, or with a body): a pooled connection
  // found dead after all could only be answered with 502, so the kernel is asked first.
  const bool once = !idempotent(req.method()) || req.has_body();
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<stream> s;
    bool reused = false;
    while (attempt == 0 && !pool.empty() && !s) {  // a retry goes on a fresh connection
      idle_connection idle = std::move(pool.back());
      pool.pop_back();
      // One the upstream closed (or wrote to) while it waited is no use: its read ahead has
      // seen that, if the reactor has.
      stream& p = *idle.s;
      const bool quiet = p.buffered().empty() && !p.at_eof() && !p.error() && !p.closed();
      if (c.now() - idle.since < o.keepalive && quiet && (!once || !p.input_pending())) {
        s = std::move(idle.s);
        reused = true;
      }
    }
    std::string failure;
    bool connect_timed_out = false;
    if (!s) {
      try {
        s = co_await net.connect(up, o.connect_timeout);
      } catch (const connection_error& e) {
        failure = e.what();
        connect_timed_out = e.code() == std::errc::timed_out;
      }
    }
    if (!s) {
      log(log_level::warn, c.name(), "upstream {} ({})", failure, connect_timed_out ? 504 : 502);
      co_await respond(c, req, connect_timed_out ? 504 : 502, "text/plain",
                       connect_timed_out ? "Gateway Timeout\n" : "Bad Gateway\n");
      co_return;
    }
    const attempt_result r = co_await exchange(c, req, *s, reused, o);
    switch (r.how) {
      case outcome::done:
        if (r.reusable && pool.size() < o.pool) {
          s->clear_deadline();
          s->read_ahead();  // an upstream that closes it meanwhile is seen without asking
          pool.push_back({std::move(s), c.now()});
        }
        co_return;
      case outcome::retry:
        if (attempt == 0) {
          log(log_level::debug, c.name(), "upstream {}: a pooled connection was dead ({}); again",
              name, r.why);
          continue;
        }
        [[fallthrough]];
      case outcome::refused:
        log(log_level::warn, c.name(), "upstream {}: {} (502)", name, r.why);
        co_await respond(c, req, 502, "text/plain", "Bad Gateway\n");
        co_return;
      case outcome::timed_out:
        log(log_level::warn, c.name(), "upstream {}: {} (504)", name, r.why);
        co_await respond(c, req, 504, "text/plain", "Gateway Timeout\n");
        co_return;
      case outcome::cut:
        log(log_level::warn, c.name(), "upstream {}: {}: the answer is cut", name, r.why);
        c.abort(std::make_error_code(std::errc::connection_aborted));
        co_return;
      case outcome::client_bad:
        co_return;
    }
  }
}

}  // namespace

request_handler proxy(address upstream, proxy_options options) {
  const std::string name = upstream.to_string();
  return [up = std::move(upstream), name, o = std::move(options)](connection& c, request& req,
                                                                  frame&, pubframe&) -> task<> {
    return proxy_one(c, req, up, name, o);
  };
}

}  // namespace lancer::http
