#include "lancer/http/proxies.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

#include "lancer/http/headers.hpp"

namespace lancer::http {

namespace {

// An address read from text: 4 bytes (IPv4) or 16 (IPv6).
struct ip {
  std::array<std::uint8_t, 16> bytes{};
  bool v4 = false;
};

// Reads a plain IPv4 or IPv6 address (no brackets, port or zone). inet_pton wants a
// NUL-terminated string: the text is copied to the stack, never to the heap.
bool parse_ip(std::string_view text, ip& out) noexcept {
  char buf[64];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (text.find(':') == std::string_view::npos) {
    out.v4 = true;
    return ::inet_pton(AF_INET, buf, out.bytes.data()) == 1;
  }
  out.v4 = false;
  return ::inet_pton(AF_INET6, buf, out.bytes.data()) == 1;
}

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 one.
void unmap(ip& a) noexcept {
  static constexpr std::uint8_t k_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a.v4 || std::memcmp(a.bytes.data(), k_prefix, sizeof k_prefix) != 0) return;
  std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
  std::memset(a.bytes.data() + 4, 0, 12);
  a.v4 = true;
}

// Whether the first `bits` bits of `a` and `b` are equal.
bool same_prefix(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) noexcept {
  const unsigned whole = bits / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

// An X-Forwarded-For item as an address (see the header's strict forms), or "" if it is not.
std::string_view forwarded_ip(std::string_view item) noexcept {
  if (item.size() > 2 && item.front() == '[' && item.back() == ']') {
    item = item.substr(1, item.size() - 2);
    if (item.find(':') == std::string_view::npos) return {};  // brackets are for IPv6 only
  }
  ip a;
  return parse_ip(item, a) ? item : std::string_view{};
}

}  // namespace

trusted_proxies::trusted_proxies(const std::vector<std::string>& entries) {
  for (const std::string& e : entries)
    add(e);
}

trusted_proxies::trusted_proxies(std::initializer_list<std::string_view> entries) {
  for (const std::string_view e : entries)
    add(e);
}

void trusted_proxies::add(std::string_view entry) {
  const auto bad = [&](const char* why) {
    return std::invalid_argument("lancer::http::trusted_proxies: \"" + std::string(entry) +
                                 "\": " + why);
  };
  if (entry == "unix") {
    unix_ = true;
    return;
  }
  const std::size_t slash = entry.find('/');
  ip a;
  if (!parse_ip(entry.substr(0, slash), a)) throw bad("not an IP address (or \"unix\")");
  const unsigned max = a.v4 ? 32 : 128;
  unsigned bits = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = entry.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) throw bad("a prefix length must be a number");
    bits = 0;
    for (const char ch : digits) {
      if (ch < '0' || ch > '9') throw bad("a prefix length must be a number");
      bits = bits * 10 + static_cast<unsigned>(ch - '0');
    }
    if (bits > max) throw bad(a.v4 ? "a prefix length past 32" : "a prefix length past 128");
  }
  if (!a.v4 && bits >= 96) {
    unmap(a);
    if (a.v4) bits -= 96;  // ::ffff:10.0.0.0/104 is 10.0.0.0/8
  }
  ranges_.push_back(range{a.bytes, bits, a.v4});
}

bool trusted_proxies::trusts(std::string_view peer) const noexcept {
  if (peer == "unix") return unix_;
  ip a;
  if (!parse_ip(peer, a)) return false;
  unmap(a);
  for (const range& r : ranges_) {
    if (r.v4 == a.v4 && same_prefix(r.bytes.data(), a.bytes.data(), r.bits)) return true;
  }
  return false;
}

std::string_view peer_ip(std::string_view peer) noexcept {
  if (peer == "unix") return peer;
  const std::size_t colon = peer.rfind(':');
  if (colon == std::string_view::npos) return peer;
  peer = peer.substr(0, colon);
  if (peer.size() > 2 && peer.front() == '[') peer = peer.substr(1, peer.size() - 2);
  return peer;
}

std::string_view client_address(const connection& c, const request& req,
                                const trusted_proxies& t) noexcept {
  std::string_view client = peer_ip(c.peer_address());
  if (!t.trusts(client)) return client;
  // The fields in reverse order, each list from its right end: the nearest hop first.
  const http::headers& h = req.headers();
  for (std::size_t i = h.size(); i-- > 0;) {
    const headers::field f = h[i];
    if (!iequals(f.name, "X-Forwarded-For")) continue;
    std::string_view list = f.value;
    for (;;) {
      const std::size_t comma = list.rfind(',');
      const std::string_view item =
          trim_ows(comma == std::string_view::npos ? list : list.substr(comma + 1));
      const std::string_view addr = forwarded_ip(item);
      if (addr.empty()) return client;  // not an address: the walk stops here
      client = addr;
      if (!t.trusts(addr)) return client;
      if (comma == std::string_view::npos) break;
      list = list.substr(0, comma);
    }
  }
  return client;
}

}  // namespace lancer::http
