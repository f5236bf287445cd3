#include "lancer/http/test_client.hpp"

#include <fmt/core.h>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstdlib>
#include <ctime>

namespace lancer::http {

namespace beast = boost::beast;

std::string_view test_response::header(std::string_view name) const noexcept {
  for (const auto& [n, v] : fields)
    if (iequals(n, name)) return v;
  return {};
}

std::size_t test_response::count(std::string_view name) const noexcept {
  std::size_t k = 0;
  for (const auto& f : fields)
    k += iequals(f.first, name);
  return k;
}

namespace detail {

std::optional<test_response> parse_response(std::string_view in, bool head, bool eof,
                                            std::size_t& used) {
  beast::http::response_parser<beast::http::string_body> p;
  p.eager(true);
  p.body_limit(boost::none);
  p.header_limit(1 << 20);
  if (head) p.skip(true);
  beast::error_code ec;
  std::size_t at = 0;
  while (at < in.size() && !p.is_done()) {
    const std::size_t n = p.put(boost::asio::buffer(in.data() + at, in.size() - at), ec);
    at += n;
    if (ec == beast::http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) {
      test_response bad;
      bad.raw = std::string(in);
      bad.body = "test_client: cannot parse the response: " + ec.message();
      used = in.size();
      return bad;
    }
    if (n == 0) break;
  }
  if (!p.is_done() && eof && p.is_header_done()) {
    p.put_eof(ec);
    if (ec) return std::nullopt;
  }
  if (!p.is_done()) return std::nullopt;
  used = at;
  const auto& m = p.get();
  test_response r;
  r.status = m.result_int();
  for (const auto& f : m)
    r.fields.emplace_back(std::string(f.name_string()), std::string(f.value()));
  r.body = m.body();
  r.raw = std::string(in.substr(0, at));
  return r;
}

}  // namespace detail

namespace {

bool expired(std::string_view attrs, std::chrono::system_clock::time_point now) {
  bool gone = false;
  bool max_age = false;  // Max-Age wins over Expires (RFC 6265 5.3)
  std::string_view rest = attrs;
  while (!rest.empty()) {
    const std::size_t semi = rest.find(';');
    std::string_view a = rest.substr(0, semi);
    while (!a.empty() && a.front() == ' ')
      a.remove_prefix(1);
    const std::size_t eq = a.find('=');
    const std::string_view name = a.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : a.substr(eq + 1);
    if (iequals(name, "Max-Age")) {
      gone = !value.empty() && (value.front() == '-' || value == "0");
      max_age = true;
    } else if (iequals(name, "Expires") && !max_age) {
      std::tm tm{};
      const std::string text(value);
      if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) != nullptr)
        gone = gone || std::chrono::system_clock::from_time_t(timegm(&tm)) <= now;
    }
    if (semi == std::string_view::npos) break;
    rest.remove_prefix(semi + 1);
  }
  return gone;
}

}  // namespace

test_client::test_client(server::handler h, test_options o)
    : options_(std::move(o)), saved_level_(get_log_level()) {
  log_level level = options_.log;
  if (const char* env = std::getenv("LANCER_TEST_LOG")) parse_log_level(env, level);
  set_log_level(level);
  sched_ = std::make_unique<scheduler>(clock::manual());
  fake_ = std::make_unique<fake_source>();
  srv_ = std::make_unique<server>(*sched_, std::move(h), options_.server);
  srv_->attach_source(*fake_);
  srv_->run();
  sched_->run_until_idle();
}

test_client::~test_client() {
  conn_.reset();
  srv_.reset();
  fake_.reset();
  sched_.reset();
  set_log_level(saved_level_);
}

bool test_client::connected() const noexcept {
  return conn_.has_value() && !conn_->peer_done();
}

void test_client::advance(clock::duration d) {
  sched_->advance(d);
  if (conn_) pending_ += conn_->read();
}

test_response test_client::get(std::string_view target, const http::fields& extra) {
  return request("GET", target, {}, extra);
}

test_response test_client::post(std::string_view target, std::string_view body,
                                std::string_view content_type, const http::fields& extra) {
  http::fields f = extra;
  if (extra.get("Content-Type").empty()) f.add("Content-Type", content_type);
  return request("POST", target, body, f);
}

test_response test_client::request(std::string_view method, std::string_view target,
                                   std::string_view body, const http::fields& extra) {
  std::string out = fmt::format("{} {} HTTP/1.1\r\n", method, target);
  if (extra.get("Host").empty()) out += fmt::format("Host: {}\r\n", options_.host);
  if (!cookies_.empty() && extra.get("Cookie").empty()) {
    out += "Cookie: ";
    bool first = true;
    for (const auto& [n, v] : cookies_) {
      if (!first) out += "; ";
      out += n + "=" + v;
      first = false;
    }
    out += "\r\n";
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
    out += fmt::format("Content-Length: {}\r\n", body.size());
  out += extra.wire();
  out += "\r\n";
  out += body;
  head_ = method == "HEAD";
  return exchange(out);
}

test_response test_client::send_raw(std::string_view bytes) {
  head_ = bytes.starts_with("HEAD ");
  test_response r = exchange(bytes);
  pending_.clear();  // answers to further requests in `bytes`: dropped, as documented
  return r;
}

test_response test_client::exchange(std::string_view bytes) {
  if (!connected()) {
    conn_.reset();
    pending_.clear();
    conn_.emplace(fake_->connect());
  }
  conn_->write(bytes);
  const clock::time_point until = sched_->now() + options_.max_wait;
  for (;;) {
    sched_->run_until_idle();
    pending_ += conn_->read();
    const bool eof = conn_->peer_done();
    std::size_t used = 0;
    if (std::optional<test_response> r = detail::parse_response(pending_, head_, eof, used)) {
      pending_.erase(0, used);
      if (r->status >= 100 && r->status < 200 && r->status != 101) continue;  // interim
      sched_->run_until_idle();  // whatever the server does right after its answer
      pending_ += conn_->read();
      r->closed = conn_->peer_done();
      keep_cookies(*r);
      return std::move(*r);
    }
    const std::optional<clock::time_point> next = sched_->next_timer();
    if (eof || !next || *next > until) {
      test_response none;
      none.raw = pending_;
      none.closed = eof;
      pending_.clear();
      return none;
    }
    sched_->clock().advance_to(*next);
  }
}

void test_client::keep_cookies(const test_response& r) {
  for (const auto& [n, v] : r.fields) {
    if (!iequals(n, "Set-Cookie")) continue;
    const std::string_view text = v;
    const std::size_t semi = text.find(';');
    const std::string_view pair = text.substr(0, semi);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    std::string name(pair.substr(0, eq));
    std::string value(pair.substr(eq + 1));
    const std::string_view attrs = semi == std::string_view::npos ? "" : text.substr(semi + 1);
    if (expired(attrs, sched_->clock().wall_now())) {
      cookies_.erase(name);
    } else {
      cookies_[std::move(name)] = std::move(value);
    }
  }
}

}  // namespace lancer::http
