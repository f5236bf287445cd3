#include "lancer/http/accept.hpp"

#include <algorithm>

#include "lancer/http/headers.hpp"

namespace lancer::http {

namespace {

std::string_view unquote(std::string_view v) noexcept {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

// Takes the text up to the next `sep` outside a quoted string off the front of `rest`.
std::string_view next_item(std::string_view& rest, char sep) noexcept {
  bool quoted = false;
  std::size_t i = 0;
  for (; i < rest.size(); ++i) {
    const char c = rest[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // a quoted-pair: the next byte is literal
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      break;
    }
  }
  const std::string_view item = rest.substr(0, i);
  rest.remove_prefix(i < rest.size() ? i + 1 : rest.size());
  return item;
}

// A token, or a quoted-string that ends where `v` ends.
bool is_param_value(std::string_view v) noexcept {
  if (v.empty() || v.front() != '"') return valid_field_name(v);
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i] == '\\') {
      ++i;
    } else if (v[i] == '"') {
      return i + 1 == v.size();
    }
  }
  return false;  // unterminated
}

// A parameter `name=value`, trimmed; false if the item is not one.
bool split_param(std::string_view item, std::string_view& name, std::string_view& value) noexcept {
  const std::size_t eq = item.find('=');
  if (eq == std::string_view::npos) return false;
  name = trim_ows(item.substr(0, eq));
  value = trim_ows(item.substr(eq + 1));
  return valid_field_name(name) && is_param_value(value);
}

// RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in
// thousandths; -1 if malformed.
int parse_q(std::string_view v) noexcept {
  if (v.empty() || v.size() > 5 || (v[0] != '0' && v[0] != '1')) return -1;
  if (v.size() > 1 && v[1] != '.') return -1;
  int q = (v[0] - '0') * 1000;
  int scale = 100;
  for (std::size_t i = 2; i < v.size(); ++i, scale /= 10) {
    if (v[i] < '0' || v[i] > '9') return -1;
    q += (v[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

// A media type or range: `type/subtype` and the text of its parameters (before any q).
struct media {
  std::string_view type, subtype;
  std::string_view params;  // `;a=1;b="2"`-like text, parsed again when matched
  std::size_t param_count = 0;
  int q = 1000;  // thousandths
};

// Parses `text` (a media range of Accept, or an offered type). Parameters after `q` are
// accept-ext: ignored. False if malformed.
bool parse_media(std::string_view text, media& m) noexcept {
  std::string_view rest = text;
  const std::string_view head = trim_ows(next_item(rest, ';'));
  const std::size_t slash = head.find('/');
  if (slash == std::string_view::npos) return false;
  m.type = head.substr(0, slash);
  m.subtype = head.substr(slash + 1);
  if (!valid_field_name(m.type) || !valid_field_name(m.subtype)) return false;
  if (m.type == "*" && m.subtype != "*") return false;
  m.params = rest;
  m.param_count = 0;
  m.q = 1000;
  while (!rest.empty()) {
    const std::string_view before = rest;
    const std::string_view item = trim_ows(next_item(rest, ';'));
    if (item.empty()) continue;
    std::string_view name, value;
    if (!split_param(item, name, value)) return false;
    if (iequals(name, "q")) {
      m.q = parse_q(value);
      if (m.q < 0) return false;
      m.params = m.params.substr(0, m.params.size() - before.size());
      break;
    }
    ++m.param_count;
  }
  return true;
}

// Whether every parameter of `range` is among `offered`'s, with an equal value.
bool params_match(const media& range, const media& offered) noexcept {
  std::string_view want = range.params;
  while (!want.empty()) {
    const std::string_view item = trim_ows(next_item(want, ';'));
    std::string_view name, value;
    if (!split_param(item, name, value)) continue;  // empty: parse_media refused the others
    bool found = false;
    std::string_view have = offered.params;
    while (!found && !have.empty()) {
      std::string_view n, v;
      found = split_param(trim_ows(next_item(have, ';')), n, v) && iequals(n, name) &&
              iequals(unquote(v), unquote(value));
    }
    if (!found) return false;
  }
  return true;
}

// How specifically `range` matches `offered`: 0 if not at all, higher for more specific.
std::size_t specificity(const media& range, const media& offered) noexcept {
  std::size_t level = 0;
  if (range.type == "*") {
    level = 1;
  } else if (!iequals(range.type, offered.type)) {
    return 0;
  } else if (range.subtype == "*") {
    level = 2;
  } else if (iequals(range.subtype, offered.subtype)) {
    level = 3;
  } else {
    return 0;
  }
  if (!params_match(range, offered)) return 0;
  // A header holds far fewer than 2^20 parameters per range.
  return (level << 20) + std::min<std::size_t>(range.param_count, (1u << 20) - 1);
}

// The Accept value(s) to read: every Accept field of `h`, or else `value`.
struct accept_list {
  const headers* h = nullptr;
  std::string_view value;
};

// Calls f(range) for each well-formed media range.
template <class F>
void for_each_range(const accept_list& a, F&& f) {
  const auto in_value = [&](std::string_view v) {
    while (!v.empty()) {
      const std::string_view item = trim_ows(next_item(v, ','));
      media m;
      if (!item.empty() && parse_media(item, m)) f(m);
    }
  };
  if (a.h == nullptr) {
    in_value(a.value);
    return;
  }
  for (const headers::field field : *a.h) {
    if (iequals(field.name, "Accept")) in_value(field.value);
  }
}

bool any_range(const accept_list& a) noexcept {
  bool any = false;
  for_each_range(a, [&](const media&) { any = true; });
  return any;
}

// The weight `a` gives `offered`, in thousandths (0: not acceptable).
int weight(const accept_list& a, const media& offered) noexcept {
  std::size_t best = 0;
  int q = 0;
  for_each_range(a, [&](const media& range) {
    const std::size_t s = specificity(range, offered);
    if (s > best) {
      best = s;
      q = range.q;
    }
  });
  return q;
}

std::optional<std::size_t> choose(const accept_list& a,
                                  std::span<const std::string_view> offered) noexcept {
  if (offered.empty()) return std::nullopt;
  if (!any_range(a)) return 0;
  std::optional<std::size_t> best;
  int best_q = 0;
  for (std::size_t i = 0; i < offered.size(); ++i) {
    media m;
    if (!parse_media(offered[i], m)) continue;
    const int q = weight(a, m);
    if (q > best_q) {
      best_q = q;
      best = i;
    }
  }
  return best;
}

}  // namespace

std::optional<std::size_t> negotiate(std::string_view accept_value,
                                     std::span<const std::string_view> offered) noexcept {
  return choose({nullptr, accept_value}, offered);
}

std::optional<std::size_t> negotiate(const headers& h,
                                     std::span<const std::string_view> offered) noexcept {
  return choose({&h, {}}, offered);
}

bool accepts(const headers& h, std::string_view type) noexcept {
  return choose({&h, {}}, std::span<const std::string_view>(&type, 1)).has_value();
}

}  // namespace lancer::http
