#include "lancer/http/url.hpp"

namespace lancer::http {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace

target_parts split_target(std::string_view target) noexcept {
  target = target.substr(0, target.find('#'));
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

bool percent_decode(std::string_view in, std::string& out, bool plus_as_space) {
  const std::size_t start = out.size();
  std::size_t run = 0;  // the start of the bytes copied as they are
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c != '%' && c != '\0' && !(plus_as_space && c == '+')) continue;
    out.append(in.substr(run, i - run));
    if (c == '+') {
      out += ' ';
      run = i + 1;
      continue;
    }
    const int hi = c == '%' && i + 2 < in.size() ? hex_value(in[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_value(in[i + 2]) : -1;
    if (lo < 0 || (hi == 0 && lo == 0)) {  // a bad escape, a raw NUL, or %00
      out.resize(start);
      return false;
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
    run = i + 1;
  }
  out.append(in.substr(run));
  return true;
}

void percent_encode(std::string_view in, std::string& out) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::size_t run = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (unreserved(in[i])) continue;
    out.append(in.substr(run, i - run));
    const auto b = static_cast<unsigned char>(in[i]);
    const char escape[3] = {'%', k_hex[b >> 4], k_hex[b & 15]};
    out.append(escape, 3);
    run = i + 1;
  }
  out.append(in.substr(run));
}

std::string percent_encode(std::string_view in) {
  std::string out;
  percent_encode(in, out);
  return out;
}

// --- params ---------------------------------------------------------------------------------

void params::clear() noexcept {
  bytes_.clear();
  index_.clear();
  error_ = {};
}

bool params::parse(std::string_view text, std::size_t max_pairs) {
  clear();
  // Decoding never lengthens: with this room, no append below reallocates.
  bytes_.reserve(text.size());
  while (!text.empty()) {
    const std::size_t amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    text.remove_prefix(amp == std::string_view::npos ? text.size() : amp + 1);
    if (pair.empty()) continue;
    if (index_.size() == max_pairs) {
      clear();
      error_ = "too many pairs";
      return false;
    }
    const std::size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    entry e{};
    e.name_off = bytes_.size();
    bool ok = percent_decode(name, bytes_, true);
    e.name_len = bytes_.size() - e.name_off;
    e.value_off = bytes_.size();
    ok = ok && percent_decode(value, bytes_, true);
    e.value_len = bytes_.size() - e.value_off;
    if (!ok) {
      clear();
      error_ = "bad percent-escape";
      return false;
    }
    index_.push_back(e);
  }
  return true;
}

std::size_t params::find(std::string_view name, std::size_t from) const noexcept {
  for (std::size_t i = from; i < index_.size(); ++i) {
    if ((*this)[i].name == name) return i;
  }
  return index_.size();
}

std::optional<std::string_view> params::get(std::string_view name) const noexcept {
  const std::size_t i = find(name, 0);
  if (i == index_.size()) return std::nullopt;
  return (*this)[i].value;
}

}  // namespace lancer::http
