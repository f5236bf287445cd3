#include "lancer/io/address.hpp"

#include <charconv>

#include <fmt/format.h>

namespace lancer {

address_error::address_error(std::string text, std::size_t column, const std::string& problem)
    : std::invalid_argument(
          fmt::format("bad address '{}': {} (at column {})", text, problem, column + 1)),
      text_(std::move(text)),
      column_(column) {}

std::string address_error::pointer() const {
  return text_ + "\n" + std::string(column_, ' ') + "^";
}

std::string address::to_string() const {
  if (connector == kind::unix_socket) return "unix/" + path;
  if (host.find(':') != std::string::npos) return fmt::format("tcp/[{}]:{}", host, port);
  return fmt::format("tcp/{}:{}", host, port);
}

namespace {

bool valid_ipv4(std::string_view h) {
  int parts = 0;
  while (!h.empty()) {
    const std::size_t dot = h.find('.');
    const std::string_view part = h.substr(0, dot);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec != std::errc{} || end != part.data() + part.size() || part.empty() || value > 255 ||
        part.size() > 3) {
      return false;
    }
    ++parts;
    if (dot == std::string_view::npos) break;
    h.remove_prefix(dot + 1);
    if (h.empty()) return false;  // a trailing dot
  }
  return parts == 4;
}

bool valid_ipv6(std::string_view h) {
  if (h.empty() || h.size() > 45) return false;
  for (const char c : h) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex && c != ':' && c != '.') return false;
  }
  return h.find(':') != std::string_view::npos;
}

// A DNS name: dot-separated labels of letters, digits and '-' (not first or last), 1 to 63
// bytes each, 253 in all, and not all digits (that would be a malformed IPv4 address).
bool valid_dns_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 253) return false;
  bool all_digits = true;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    const char c = i < name.size() ? name[i] : '.';
    if (c == '.') {
      if (label == 0 || label > 63 || name[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !digit && c != '-') return false;
    if (c == '-' && label == 0) return false;
    if (!digit && c != '.') all_digits = false;
    ++label;
  }
  return !all_digits;
}

}  // namespace

address parse_address(std::string_view text, bool names) {
  const std::string all(text);
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    throw address_error(all, 0, "expected connector/addr, such as tcp/127.0.0.1:8080");
  }
  const std::string_view connector = text.substr(0, slash);
  const std::string_view rest = text.substr(slash + 1);
  address a;
  if (connector == "unix") {
    a.connector = address::kind::unix_socket;
    if (rest.empty()) throw address_error(all, slash + 1, "missing socket path");
    if (rest.size() > 107) throw address_error(all, slash + 1, "socket path longer than 107 bytes");
    if (rest.find('\0') != std::string_view::npos) {
      throw address_error(all, slash + 1 + rest.find('\0'), "NUL in socket path");
    }
    a.path = std::string(rest);
    return a;
  }
  if (connector != "tcp") {
    throw address_error(all, 0, "unknown connector '" + std::string(connector) + "' (tcp or unix)");
  }
  const std::size_t host_at = slash + 1;
  std::string_view host;
  std::size_t colon;  // offset of the port's colon within `text`
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) throw address_error(all, host_at, "missing ']'");
    host = rest.substr(1, close - 1);
    if (!valid_ipv6(host)) throw address_error(all, host_at + 1, "not an IPv6 address");
    colon = host_at + close + 1;
    if (colon >= text.size() || text[colon] != ':') {
      throw address_error(all, colon, "expected ':port' after ']'");
    }
  } else {
    const std::size_t c = rest.rfind(':');
    if (c == std::string_view::npos) throw address_error(all, text.size(), "missing ':port'");
    host = rest.substr(0, c);
    colon = host_at + c;
    if (host == "$4") {
      host = "127.0.0.1";
    } else if (host == "$6") {
      host = "::1";
    } else if (host == "$n") {
      host = "localhost";
    } else if (host == "*4") {
      host = "0.0.0.0";
    } else if (host == "*6") {
      host = "::";
    } else if (host.empty()) {
      throw address_error(all, host_at, "missing host (use *4 for every IPv4 address)");
    } else if (host.find(':') != std::string_view::npos) {
      throw address_error(all, host_at, "an IPv6 address needs brackets: [::1]:8080");
    } else if (host != "localhost" && !valid_ipv4(host) && !(names && valid_dns_name(host))) {
      throw address_error(all, host_at,
                          names ? "not an IPv4 address, [IPv6] address, host name or shorthand"
                                : "not an IPv4 address, [IPv6] address or shorthand");
    }
  }
  const std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    throw address_error(all, colon + 1, "port must be a number from 0 to 65535");
  }
  a.host = std::string(host);
  a.port = static_cast<std::uint16_t>(value);
  return a;
}

}  // namespace lancer
