#include "lancer/http/headers.hpp"

namespace lancer::http {

namespace {
constexpr char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}
constexpr bool is_ows(char c) noexcept {
  return c == ' ' || c == '\t';
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
    std::string_view list = (*this)[i].value;
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && is_ows(item.front()))
        item.remove_prefix(1);
      while (!item.empty() && is_ows(item.back()))
        item.remove_suffix(1);
      if (iequals(item, token)) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return false;
}

}  // namespace lancer::http
