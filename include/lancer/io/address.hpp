// Addresses, written `connector/addr:port`:
//
//   tcp/127.0.0.1:8080   tcp/[::1]:8080   tcp/*4:80   unix//run/lancer.sock
//
// Shorthands for the host: `$4` = 127.0.0.1, `$6` = [::1], `$n` = localhost, `*4` = 0.0.0.0,
// `*6` = [::]. A malformed address is refused with a message that points at the bad part.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lancer {

struct address {
  enum class kind : std::uint8_t { tcp, unix_socket };
  kind connector = kind::tcp;
  std::string host;  // tcp: a literal IPv4/IPv6 address, "localhost" or (to connect) a DNS
                     // name, without brackets
  std::uint16_t port = 0;
  std::string path;  // unix: the socket file's path

  // "tcp/127.0.0.1:8080", "tcp/[::1]:8080", "unix//run/lancer.sock".
  std::string to_string() const;
};

// Thrown by parse_address. what() is one line naming the problem; `column` is the 0-based
// offset of the bad part in the text, and pointer() draws a caret under it.
class address_error : public std::invalid_argument {
 public:
  address_error(std::string text, std::size_t column, const std::string& problem);
  std::size_t column() const noexcept { return column_; }
  // Two lines: the text, then a caret under the bad part.
  std::string pointer() const;

 private:
  std::string text_;
  std::size_t column_;
};

// Parses `text`. Throws address_error. With `names`, a tcp host may also be a DNS name
// ("tcp/backend.internal:8080"), for addresses a program connects to; a listener's address
// takes literal addresses and shorthands only.
address parse_address(std::string_view text, bool names = false);

}  // namespace lancer
