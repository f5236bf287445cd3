#include "lancer/http/json.hpp"

#include <string>
#include <string_view>

#include <fmt/format.h>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

#include "detail/media_type.hpp"
#include "lancer/http/httputil.hpp"

namespace lancer::http {

namespace {

struct parsed {
  std::optional<boost::json::value> value;
  std::string error;  // the 400's body when there is no value
};

// Outside the coroutine, so the parser's state never lives in a coroutine frame.
parsed parse_json(std::string_view body) {
  if (body.empty()) return {std::nullopt, "empty body: a JSON text was expected\n"};
  boost::json::parse_options opt;
  opt.max_depth = json_max_depth;
  boost::json::parser p({}, opt);
  boost::system::error_code ec;
  const std::size_t at = p.write(body.data(), body.size(), ec);
  if (ec) return {std::nullopt, fmt::format("bad JSON at byte {}: {}\n", at, ec.message())};
  return {p.release(), {}};
}

}  // namespace

bool is_json_type(std::string_view content_type) noexcept {
  const std::string_view t = detail::media_type_of(content_type);
  const std::size_t slash = t.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  if (iequals(t, "application/json")) return true;
  const std::string_view subtype = t.substr(slash + 1);
  return subtype.size() > 5 && iequals(subtype.substr(subtype.size() - 5), "+json");
}

task<std::optional<boost::json::value>> read_json(connection& c, request& req, const limits& lim) {
  if (!is_json_type(req.headers().get("Content-Type"))) {
    response r;
    r.status = 415;
    r.body = "Content-Type must be application/json\n";
    co_await respond(c, req, r);
    co_return std::nullopt;
  }
  const std::optional<std::string_view> body = co_await read_body(c, req, lim);
  if (!body) co_return std::nullopt;  // answered by read_body
  parsed p = parse_json(*body);
  if (!p.value) {
    response r;
    r.status = 400;
    r.body = p.error;
    co_await respond(c, req, r);
  }
  co_return std::move(p.value);
}

task<> respond_json(connection& c, request& req, unsigned status, const boost::json::value& v) {
  const std::string text = boost::json::serialize(v);
  response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = text;
  co_await respond(c, req, r);
}

}  // namespace lancer::http
