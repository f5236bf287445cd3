#include "lancer/http/headers.hpp"

#include "lancer/http/cookies.hpp"

#include <stdexcept>
#include <string>

namespace lancer::http {

namespace {
constexpr char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}
}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::size_t headers::find(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < refs_.size(); ++i) {
    if (iequals((*this)[i].name, name)) return i;
  }
  return npos;
}

std::string_view headers::get(std::string_view name) const noexcept {
  const std::size_t i = find(name);
  return i == npos ? std::string_view{} : (*this)[i].value;
}

std::size_t headers::count(std::string_view name) const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < refs_.size(); ++i)
    n += iequals((*this)[i].name, name);
  return n;
}

bool headers::has_token(std::string_view name, std::string_view token) const noexcept {
  for (std::size_t i = 0; i < refs_.size(); ++i) {
    if (!iequals((*this)[i].name, name)) continue;
    const bool absent = for_each_list_item((*this)[i].value, [&](std::string_view item) {
      return !iequals(item, token);  // stop at the token
    });
    if (!absent) return true;
  }
  return false;
}

namespace {
bool token_char(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
}  // namespace

bool valid_field_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (const char c : name)
    if (!token_char(c)) return false;
  return true;
}

bool valid_field_value(std::string_view value) noexcept {
  for (const char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  if (!value.empty() && (value.front() == ' ' || value.front() == '\t')) return false;
  return value.empty() || (value.back() != ' ' && value.back() != '\t');
}

fields& fields::add(std::string_view name, std::string_view value) {
  if (!valid_field_name(name))
    throw std::invalid_argument("lancer::http::fields: '" + std::string(name.substr(0, 60)) +
                                "' is not a field name");
  if (!valid_field_value(value))
    throw std::invalid_argument("lancer::http::fields: the value of " + std::string(name) +
                                " holds CR, LF, NUL or surrounding whitespace");
  text_.append(name).append(": ").append(value).append("\r\n");
  return *this;
}

fields& fields::set_cookie(std::string_view name, std::string_view value, const cookie_options& o) {
  return add("Set-Cookie", set_cookie_value(name, value, o));
}

fields& fields::set_cookie(std::string_view name, std::string_view value) {
  return set_cookie(name, value, cookie_options{});
}

std::string_view fields::written_by_response() const noexcept {
  std::string_view rest = text_;
  while (!rest.empty()) {
    const std::size_t end = rest.find("\r\n");
    const std::string_view name = rest.substr(0, rest.find(':'));
    for (const std::string_view own :
         {"Content-Length", "Transfer-Encoding", "Connection", "Content-Type", "Date", "Server"})
      if (iequals(name, own)) return own;
    rest.remove_prefix(end + 2);
  }
  return {};
}

std::string_view fields::get(std::string_view name) const noexcept {
  std::string_view rest = text_;
  while (!rest.empty()) {
    const std::size_t end = rest.find("\r\n");
    const std::string_view line = rest.substr(0, end);
    const std::size_t colon = line.find(':');
    if (iequals(line.substr(0, colon), name)) return line.substr(colon + 2);
    rest.remove_prefix(end + 2);
  }
  return {};
}

}  // namespace lancer::http
