#include "lancer/http/form.hpp"

#include <string>
#include <utility>

#include <fmt/format.h>

#include "detail/media_type.hpp"
#include "lancer/http/httputil.hpp"

namespace lancer::http {

task<bool> read_form(connection& c, request& req, params& into, const limits& lim) {
  into.clear();
  if (!detail::media_type_is(req.headers().get("Content-Type"),
                             "application/x-www-form-urlencoded")) {
    response r;
    r.status = 415;
    r.body = "Content-Type must be application/x-www-form-urlencoded\n";
    co_await respond(c, req, r);
    co_return false;
  }
  const std::optional<std::string_view> body = co_await read_body(c, req, lim);
  if (!body) co_return false;  // answered by read_body
  if (into.parse(*body)) co_return true;
  const std::string text = fmt::format("bad form body: {}\n", into.error());
  response r;
  r.status = 400;
  r.body = text;
  co_await respond(c, req, r);
  co_return false;
}

task<std::optional<params>> read_form(connection& c, request& req, const limits& lim) {
  params p;
  const bool ok = co_await read_form(c, req, p, lim);
  if (!ok) co_return std::nullopt;
  co_return std::move(p);
}

}  // namespace lancer::http
