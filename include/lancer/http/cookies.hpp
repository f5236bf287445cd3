// Cookies: reading the Cookie fields of a request, and building a Set-Cookie value.
//
//   const auto sid = lancer::http::cookie(req.headers(), "sid");    // optional<string_view>
//   lancer::http::cookie_options o;
//   o.max_age = std::chrono::hours(24);
//   o.secure = true;
//   const std::string set = lancer::http::set_cookie_value("sid", token, o);
//   // "sid=<token>; Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=Lax", the value of a
//   // Set-Cookie field in the response
//
// Reading is lenient (what browsers send varies); building is strict: a value that could
// smuggle another attribute or cookie into the field throws.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "lancer/http/headers.hpp"

namespace lancer::http {

namespace detail {
// Takes the next `name=value` pair off the front of a Cookie field value `rest` (RFC 6265 5.4:
// `a=1; b=2`; missing spaces and tabs around names and values are tolerated, a value wrapped
// in DQUOTEs is unwrapped, items without '=' are skipped). Returns false when none is left.
bool next_cookie(std::string_view& rest, std::string_view& name, std::string_view& value) noexcept;
}  // namespace detail

// Calls `f(name, value)` for each cookie in every Cookie field of `h`, in order (views into the
// request). If `f` returns bool, false stops early. Names are compared by the caller: they are
// case-sensitive.
template <class F>
void for_each_cookie(const headers& h, F&& f) {
  for (const headers::field field : h) {
    if (!iequals(field.name, "Cookie")) continue;
    std::string_view rest = field.value, name, value;
    while (detail::next_cookie(rest, name, value)) {
      if constexpr (std::is_same_v<std::invoke_result_t<F&, std::string_view, std::string_view>,
                                   bool>) {
        if (!f(name, value)) return;
      } else {
        f(name, value);
      }
    }
  }
}

// The value of the first cookie called `name` (case-sensitively) in the Cookie fields of `h`,
// DQUOTEs stripped; nullopt if there is none. A view into the request.
std::optional<std::string_view> cookie(const headers& h, std::string_view name) noexcept;

// The attributes of a Set-Cookie field. Empty strings leave an attribute out.
struct cookie_options {
  std::string_view path = "/";
  std::string_view domain;
  // Max-Age in seconds; 0 or less deletes the cookie (written as Max-Age=0). Unset: a session
  // cookie.
  std::optional<std::chrono::seconds> max_age;
  bool secure = false;
  bool http_only = true;
  std::string_view same_site = "Lax";  // "Strict", "Lax", "None" (needs secure) or ""
};

// The value of a Set-Cookie field that sets `name` to `value` with `o`'s attributes:
// `name=value; Path=/; Domain=d; Max-Age=n; Secure; HttpOnly; SameSite=Lax`. Throws
// std::invalid_argument, naming the problem (never echoing the bytes), if `name` is not a
// token, if `value` is not cookie-octets, optionally in DQUOTEs (RFC 6265 4.1.1: no controls,
// spaces, DQUOTE, ',', ';' or '\'), if Path or Domain holds ';' or a control character (CR,
// LF, NUL...), if SameSite is not one of the three (any case), if SameSite=None comes without
// Secure, or if a `__Secure-` or `__Host-` name breaks its prefix's rules (Secure; for
// `__Host-` also Path=/ and no Domain), which browsers would silently refuse.
std::string set_cookie_value(std::string_view name, std::string_view value,
                             const cookie_options& o = {});

}  // namespace lancer::http
