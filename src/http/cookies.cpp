#include "lancer/http/cookies.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "lancer/http/headers.hpp"

namespace lancer::http {

namespace {

// RFC 6265 4.1.1: cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE ).
bool is_cookie_value(std::string_view s) noexcept {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\') return false;
  }
  return true;
}

// An attribute value must not end the attribute or the field.
bool is_attribute_value(std::string_view s) noexcept {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == ';') return false;
  }
  return true;
}

[[noreturn]] void refuse(std::string_view what) {
  throw std::invalid_argument(fmt::format("lancer::http::set_cookie_value: {}", what));
}

}  // namespace

namespace detail {

bool next_cookie(std::string_view& rest, std::string_view& name, std::string_view& value) noexcept {
  while (!rest.empty()) {
    const std::size_t semi = rest.find(';');
    const std::string_view item = rest.substr(0, semi);
    rest.remove_prefix(semi == std::string_view::npos ? rest.size() : semi + 1);
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;  // not a cookie-pair
    name = trim_ows(item.substr(0, eq));
    value = trim_ows(item.substr(eq + 1));
    if (name.empty()) continue;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return true;
  }
  return false;
}

}  // namespace detail

std::optional<std::string_view> cookie(const headers& h, std::string_view name) noexcept {
  std::optional<std::string_view> found;
  for_each_cookie(h, [&](std::string_view n, std::string_view v) {
    if (n != name) return true;
    found = v;
    return false;
  });
  return found;
}

std::string set_cookie_value(std::string_view name, std::string_view value,
                             const cookie_options& o) {
  if (!valid_field_name(name)) refuse("the cookie name is not a token (RFC 9110 5.6.2)");
  if (!is_cookie_value(value)) {
    refuse("the cookie value holds a byte outside cookie-octets (RFC 6265 4.1.1)");
  }
  if (!is_attribute_value(o.path)) refuse("Path holds ';' or a control character");
  if (!is_attribute_value(o.domain)) refuse("Domain holds ';' or a control character");
  std::string_view same_site;
  for (const std::string_view s : {"Strict", "Lax", "None"}) {
    if (iequals(o.same_site, s)) same_site = s;
  }
  if (!o.same_site.empty() && same_site.empty()) {
    refuse("SameSite must be Strict, Lax or None");
  }
  if (same_site == "None" && !o.secure) refuse("SameSite=None needs Secure");
  if (name.starts_with("__Secure-") && !o.secure) refuse("a __Secure- cookie needs Secure");
  if (name.starts_with("__Host-") && (!o.secure || o.path != "/" || !o.domain.empty())) {
    refuse("a __Host- cookie needs Secure, Path=/ and no Domain");
  }

  std::string out;
  out.reserve(name.size() + value.size() + o.path.size() + o.domain.size() + 64);
  out.append(name).append("=").append(value);
  if (!o.path.empty()) out.append("; Path=").append(o.path);
  if (!o.domain.empty()) out.append("; Domain=").append(o.domain);
  if (o.max_age) {
    const long long seconds = o.max_age->count();
    out.append("; Max-Age=").append(std::to_string(seconds > 0 ? seconds : 0));
  }
  if (o.secure) out.append("; Secure");
  if (o.http_only) out.append("; HttpOnly");
  if (!same_site.empty()) out.append("; SameSite=").append(same_site);
  return out;
}

}  // namespace lancer::http
