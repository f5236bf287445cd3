// Listening addresses: the connector/addr:port form, shorthands, and errors that point.
#include "lancer/io/address.hpp"

#include <doctest/doctest.h>

using lancer::address;
using lancer::parse_address;

TEST_CASE("tcp addresses parse, with and without shorthands") {
  CHECK(parse_address("tcp/127.0.0.1:8080").host == "127.0.0.1");
  CHECK(parse_address("tcp/127.0.0.1:8080").port == 8080);
  CHECK(parse_address("tcp/[::1]:80").host == "::1");
  CHECK(parse_address("tcp/$4:1").host == "127.0.0.1");
  CHECK(parse_address("tcp/$6:1").host == "::1");
  CHECK(parse_address("tcp/$n:1").host == "localhost");
  CHECK(parse_address("tcp/*4:1").host == "0.0.0.0");
  CHECK(parse_address("tcp/*6:1").host == "::");
  CHECK(parse_address("tcp/[::1]:8080").to_string() == "tcp/[::1]:8080");
  CHECK(parse_address("tcp/$4:0").port == 0);  // any free port
}

TEST_CASE("unix addresses keep their path") {
  const address a = parse_address("unix//run/lancer.sock");
  CHECK(a.connector == address::kind::unix_socket);
  CHECK(a.path == "/run/lancer.sock");
  CHECK(a.to_string() == "unix//run/lancer.sock");
}

TEST_CASE("a malformed address is refused with a pointer at the bad part") {
  struct bad {
    const char* text;
    std::size_t column;
    const char* says;
  };
  for (const bad& b :
       {bad{"127.0.0.1:8080", 0, "connector/addr"},
        bad{"udp/1.2.3.4:5", 0, "unknown connector 'udp'"},
        bad{"tcp/1.2.3.4", 11, "missing ':port'"}, bad{"tcp/1.2.3.4:99999", 12, "port must be"},
        bad{"tcp/1.2.3.4:80x", 12, "port must be"}, bad{"tcp/1.2.3:80", 4, "not an IPv4"},
        bad{"tcp/300.1.1.1:80", 4, "not an IPv4"}, bad{"tcp/::1:80", 4, "needs brackets"},
        bad{"tcp/[::1:80", 4, "missing ']'"}, bad{"tcp/[::1]80", 9, "expected ':port'"},
        bad{"tcp/:80", 4, "missing host"}, bad{"unix/", 5, "missing socket path"}}) {
    CAPTURE(std::string(b.text));
    try {
      parse_address(b.text);
      FAIL("accepted");
    } catch (const lancer::address_error& e) {
      CHECK(e.column() == b.column);
      CHECK(std::string(e.what()).find(b.says) != std::string::npos);
      CHECK(e.pointer() == std::string(b.text) + "\n" + std::string(b.column, ' ') + "^");
    }
  }
}
