// lancer::http::trusted_proxies: the peers whose X-Forwarded-For is believed, and
// http::client_address, the client's address it gives.
//
//   auto proxies = std::make_shared<const http::trusted_proxies>(
//       std::vector<std::string>{"127.0.0.1", "10.0.0.0/8", "fd00::/8", "unix"});
//   http::access_log requests{"access.log", {.trusted = proxies}};  // logs client_address
//   ...
//   const std::string_view client = http::client_address(c, req, *proxies);
//
// Rules:
// - An entry is an IPv4 or IPv6 address with an optional prefix length (`10.0.0.0/8`,
//   `::1`, `fd00::/8`; no prefix: the one address), or `unix`: a peer on a Unix socket. Bits
//   past the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`). An IPv4-mapped IPv6 address
//   (`::ffff:10.1.2.3`, as a dual-stack socket names an IPv4 peer) matches the IPv4 entries,
//   and a mapped entry (`::ffff:10.0.0.0/104`) is the IPv4 one it maps.
// - client_address believes X-Forwarded-For only when the connection's peer is trusted. It
//   walks the list from the right (the nearest hop first; several fields are one list, in
//   order), skips the trusted addresses, and gives the first untrusted one; when all are
//   trusted, the leftmost. Anything else in the list stops the walk, and the last address
//   read before it is given (the peer itself if none): client-supplied garbage is never
//   reported as an address.
// - Strict forms: an X-Forwarded-For entry is a plain IPv4 address, a plain IPv6 address, or
//   a bracketed IPv6 address without a port (`[2001:db8::1]`, given without its brackets).
//   With a port (`192.0.2.1:5000`, `[2001:db8::1]:5000`), with an IPv6 zone (`fe80::1%eth0`),
//   `unknown`, an obfuscated identifier (`_hidden`) or an empty item, it is not an address.
// - Nothing here allocates once the list is built: the views returned point into the request
//   or the connection.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/core/connection.hpp"
#include "lancer/http/request.hpp"

namespace lancer::http {

class trusted_proxies {
 public:
  // Trusts nobody.
  trusted_proxies() = default;
  // Trusts each of `entries`. Throws std::invalid_argument, naming the entry, for one that is
  // not an address, an address/bits with bits out of range (0-32 for IPv4, 0-128 for IPv6),
  // or `unix`.
  explicit trusted_proxies(const std::vector<std::string>& entries);
  trusted_proxies(std::initializer_list<std::string_view> entries);

  // Adds one entry, as the constructors do (std::invalid_argument for a bad one).
  void add(std::string_view entry);

  // Whether `peer_ip` (an address without a port, as peer_ip() gives it, or "unix") is one of
  // the entries. False for anything that is not an address.
  bool trusts(std::string_view peer_ip) const noexcept;

  bool empty() const noexcept { return ranges_.empty() && !unix_; }

 private:
  struct range {
    std::array<std::uint8_t, 16> bytes{};  // the address (IPv4: the first 4 bytes)
    unsigned bits = 0;                     // the prefix length
    bool v4 = false;
  };
  std::vector<range> ranges_;
  bool unix_ = false;  // peers on a Unix socket
};

// The IP address in a peer address as connections give it ("192.0.2.1:5000" -> "192.0.2.1",
// "[2001:db8::1]:5000" -> "2001:db8::1"); "unix" and names without a port come back whole.
// What the access log shows as the remote address.
std::string_view peer_ip(std::string_view peer_address) noexcept;

// The client's address for `req` on `c`: the peer's IP, or, when the peer is trusted, what
// its X-Forwarded-For says (see the rules above). A view into the request or the connection,
// valid as long as the request's fields are.
std::string_view client_address(const connection& c, const request& req,
                                const trusted_proxies& t) noexcept;

}  // namespace lancer::http
