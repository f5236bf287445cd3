#include "lancer/http/headers.hpp"

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

}  // namespace lancer::http
