// http::trusted_proxies and http::client_address: entries and prefixes, the right-to-left walk
// through X-Forwarded-For, and the access log's remote address with trusted proxies.
#include "lancer/http/proxies.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/http/access_log.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace http = lancer::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using lancer::connection;
using lancer::frame;
using lancer::pubframe;
using lancer::task;

namespace {

// A server on the fake source whose handler answers with client_address under `proxies`,
// and whose hook keeps each request's log lines in both formats.
struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  http::trusted_proxies proxies;
  const http::trusted_proxies* hook_with = &proxies;  // what the lines are written with
  http::access_hook also;                             // called too, if set
  std::vector<std::string> combined, json_lines;
  lancer::server srv;
  lancer::fake_source fake;

  explicit bed(http::trusted_proxies p, http::access_hook extra = {})
      : proxies(std::move(p)),
        also(std::move(extra)),
        srv(sched, http::serve(
                       [this](connection& c, http::request& req, frame&, pubframe&) -> task<> {
                         const std::string client(http::client_address(c, req, proxies));
                         co_await http::respond(c, req, 200, "text/plain", client);
                       },
                       {},
                       [this](const connection& c, const http::request& req) {
                         std::string line;
                         http::append_log_line(line, http::log_format::combined, c, req, hook_with);
                         combined.push_back(line);
                         line.clear();
                         http::append_log_line(line, http::log_format::json, c, req, hook_with);
                         json_lines.push_back(line);
                         if (also) also(c, req);
                       })) {
    srv.attach_source(fake);
    srv.run();
  }

  // The client address of a request from `peer` with the extra header `fields` (each line
  // ending in CRLF).
  std::string client(const std::string& peer, const std::string& fields) {
    lancer::fake_client c = fake.connect(peer);
    const std::string reply = c.exchange("GET / HTTP/1.1\r\nHost: h\r\n" + fields + "\r\n");
    const std::size_t body = reply.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    return reply.substr(body + 4);
  }
};

}  // namespace

TEST_CASE("trusted_proxies: addresses, prefixes and unix") {
  const http::trusted_proxies t{"127.0.0.1", "10.0.0.0/8", "192.168.1.0/24", "::1", "fd00::/8"};
  CHECK(t.trusts("127.0.0.1"));
  CHECK_FALSE(t.trusts("127.0.0.2"));  // no prefix: the one address
  CHECK(t.trusts("10.0.0.1"));
  CHECK(t.trusts("10.255.255.255"));
  CHECK_FALSE(t.trusts("11.0.0.1"));
  CHECK(t.trusts("192.168.1.200"));
  CHECK_FALSE(t.trusts("192.168.2.1"));
  CHECK(t.trusts("::1"));
  CHECK(t.trusts("0:0:0:0:0:0:0:1"));  // another spelling of ::1
  CHECK_FALSE(t.trusts("::2"));
  CHECK(t.trusts("fd12:3456::1"));
  CHECK_FALSE(t.trusts("fe80::1"));
  CHECK_FALSE(t.trusts("unix"));  // not listed
  CHECK_FALSE(t.trusts(""));
  CHECK_FALSE(t.trusts("localhost"));
  CHECK_FALSE(t.trusts("10.0.0.1:80"));  // an address, not a peer address with its port
  CHECK_FALSE(t.trusts("[::1]"));
}

TEST_CASE("trusted_proxies: prefix lengths 0, 32 and 128, and bits past the prefix") {
  const http::trusted_proxies all4{"0.0.0.0/0"};
  CHECK(all4.trusts("1.2.3.4"));
  CHECK(all4.trusts("255.255.255.255"));
  CHECK_FALSE(all4.trusts("::1"));  // an IPv4 range: no IPv6 address is in it
  const http::trusted_proxies all6{"::/0"};
  CHECK(all6.trusts("2001:db8::1"));
  CHECK_FALSE(all6.trusts("1.2.3.4"));
  const http::trusted_proxies exact{"192.0.2.7/32", "2001:db8::7/128"};
  CHECK(exact.trusts("192.0.2.7"));
  CHECK_FALSE(exact.trusts("192.0.2.6"));
  CHECK(exact.trusts("2001:db8::7"));
  CHECK_FALSE(exact.trusts("2001:db8::6"));
  const http::trusted_proxies odd{"10.1.2.3/8", "172.16.0.0/12"};
  CHECK(odd.trusts("10.200.0.1"));  // 10.1.2.3/8 is 10.0.0.0/8
  CHECK(odd.trusts("172.31.255.255"));
  CHECK_FALSE(odd.trusts("172.32.0.0"));
}

TEST_CASE("trusted_proxies: IPv4-mapped IPv6 addresses are their IPv4 addresses") {
  const http::trusted_proxies t{"10.0.0.0/8"};
  CHECK(t.trusts("::ffff:10.1.2.3"));  // a dual-stack socket's name for an IPv4 peer
  CHECK(t.trusts("::ffff:a01:203"));
  CHECK_FALSE(t.trusts("::ffff:11.1.2.3"));
  const http::trusted_proxies mapped{"::ffff:192.0.2.0/120"};  // 192.0.2.0/24
  CHECK(mapped.trusts("192.0.2.99"));
  CHECK(mapped.trusts("::ffff:192.0.2.1"));
  CHECK_FALSE(mapped.trusts("192.0.3.1"));
}

TEST_CASE("trusted_proxies: a bad entry throws std::invalid_argument naming it") {
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/8x",
                          "10.0.0.0/0008", "10.0.0", "256.0.0.1", "localhost", "UNIX", "unix/8",
                          "[::1]", "::1%lo", "10.0.0.1:80", " 10.0.0.1", "1.2.3.4/8/8"}) {
    CAPTURE(bad);
    try {
      http::trusted_proxies t{bad};
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("\"" + std::string(bad) + "\"") != std::string::npos);
    }
  }
  http::trusted_proxies t;
  CHECK(t.empty());
  CHECK_FALSE(t.trusts("127.0.0.1"));
  t.add("unix");
  CHECK_FALSE(t.empty());
  CHECK(t.trusts("unix"));
  const std::vector<std::string> list{"10.0.0.0/8", "oops"};
  CHECK_THROWS_AS(http::trusted_proxies{list}, std::invalid_argument);
}

TEST_CASE("peer_ip: the address without its port or brackets") {
  CHECK(http::peer_ip("192.0.2.1:5000") == "192.0.2.1");
  CHECK(http::peer_ip("[2001:db8::1]:5000") == "2001:db8::1");
  CHECK(http::peer_ip("[::ffff:10.0.0.1]:80") == "::ffff:10.0.0.1");
  CHECK(http::peer_ip("unix") == "unix");
  CHECK(http::peer_ip("fake/3") == "fake/3");
}

TEST_CASE("client_address: an untrusted peer's X-Forwarded-For is ignored") {
  bed b{http::trusted_proxies{"10.0.0.0/8"}};
  CHECK(b.client("192.0.2.1:5000", "X-Forwarded-For: 203.0.113.7\r\n") == "192.0.2.1");
  CHECK(b.client("[2001:db8::1]:5000", "X-Forwarded-For: 203.0.113.7\r\n") == "2001:db8::1");
  CHECK(b.client("fake/9", "X-Forwarded-For: 203.0.113.7\r\n") == "fake/9");
  http::trusted_proxies none;
  bed n{none};
  CHECK(n.client("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.7\r\n") == "10.0.0.1");
}

TEST_CASE("client_address: a trusted peer's list is walked from the right") {
  bed b{http::trusted_proxies{"10.0.0.0/8", "::1", "unix"}};
  // No header: the peer.
  CHECK(b.client("10.0.0.1:5000", "") == "10.0.0.1");
  CHECK(b.client("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.7\r\n") == "203.0.113.7");
  // A chain of trusted proxies in front: the first untrusted address from the right.
  CHECK(b.client("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.7, 10.0.0.2, 10.0.0.3\r\n") ==
        "203.0.113.7");
  // A client that made up entries on the left is not believed past the first untrusted hop.
  CHECK(b.client("10.0.0.1:5000", "X-Forwarded-For: 10.9.9.9, 198.51.100.2, 10.0.0.3\r\n") ==
        "198.51.100.2");
  // Every entry trusted: the leftmost.
  CHECK(b.client("10.0.0.1:5000", "X-Forwarded-For: 10.0.0.9, 10.0.0.2\r\n") == "10.0.0.9");
  // Several fields are one list, in order; spaces and tabs around items do not matter.
  CHECK(b.client("10.0.0.1:5000",
                 "X-Forwarded-For: 203.0.113.7,198.51.100.1\r\nX-Forwarded-For:\t10.0.0.2 , "
                 "10.0.0.3\r\n") == "198.51.100.1");
  CHECK(b.client("10.0.0.1:5000", "x-forwarded-for: 203.0.113.8\r\n") == "203.0.113.8");
  // IPv6, a Unix socket peer, and a bracketed IPv6 entry (given without its brackets).
  CHECK(b.client("[::1]:4000", "X-Forwarded-For: 2001:db8::5\r\n") == "2001:db8::5");
  CHECK(b.client("unix", "X-Forwarded-For: 203.0.113.9\r\n") == "203.0.113.9");
  CHECK(b.client("unix", "X-Forwarded-For: [2001:db8::6]\r\n") == "2001:db8::6");
  // A peer on a dual-stack socket, named as an IPv4-mapped address.
  CHECK(b.client("[::ffff:10.0.0.1]:5000", "X-Forwarded-For: 203.0.113.7\r\n") == "203.0.113.7");
}

TEST_CASE("client_address: what is not an address stops the walk") {
  bed b{http::trusted_proxies{"10.0.0.0/8"}};
  const std::string peer = "10.0.0.1:5000";
  CHECK(b.client(peer, "X-Forwarded-For: unknown\r\n") == "10.0.0.1");
  CHECK(b.client(peer, "X-Forwarded-For: 203.0.113.7, garbage, 10.0.0.2\r\n") == "10.0.0.2");
  CHECK(b.client(peer, "X-Forwarded-For: 203.0.113.7, _hidden\r\n") == "10.0.0.1");
  CHECK(b.client(peer, "X-Forwarded-For: 203.0.113.7:5000\r\n") == "10.0.0.1");  // a port
  CHECK(b.client(peer, "X-Forwarded-For: [2001:db8::1]:80\r\n") == "10.0.0.1");
  CHECK(b.client(peer, "X-Forwarded-For: [203.0.113.7]\r\n") == "10.0.0.1");
  CHECK(b.client(peer, "X-Forwarded-For: fe80::1%eth0\r\n") == "10.0.0.1");
  CHECK(b.client(peer, "X-Forwarded-For: 203.0.113.7,,10.0.0.2\r\n") == "10.0.0.2");
  CHECK(b.client(peer, "X-Forwarded-For: 203.0.113.7,\r\n") == "10.0.0.1");
  CHECK(b.client(peer, "X-Forwarded-For: \"<script>\"\r\n") == "10.0.0.1");
  CHECK(b.client(peer, "X-Forwarded-For: 203.0.113.7 198.51.100.1\r\n") == "10.0.0.1");
}

TEST_CASE("client_address: the access log's remote address, in both formats") {
  bed b{http::trusted_proxies{"10.0.0.0/8"}};
  b.client("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.7, 10.0.0.2\r\n");
  b.client("192.0.2.1:5000", "X-Forwarded-For: 203.0.113.7\r\n");
  b.client("10.0.0.1:5000", "X-Forwarded-For: nonsense\"\r\n");
  REQUIRE(b.combined.size() == 3);
  REQUIRE(b.json_lines.size() == 3);
  CHECK(b.combined[0].starts_with("203.0.113.7 - - ["));
  CHECK(b.combined[1].starts_with("192.0.2.1 - - ["));
  CHECK(b.combined[2].starts_with("10.0.0.1 - - ["));
  CHECK(json::parse(b.json_lines[0]).as_object().at("remote_addr").as_string() == "203.0.113.7");
  CHECK(json::parse(b.json_lines[1]).as_object().at("remote_addr").as_string() == "192.0.2.1");
  CHECK(json::parse(b.json_lines[2]).as_object().at("remote_addr").as_string() == "10.0.0.1");
  // Without trusted proxies (null), the peer, whatever the header says.
  lancer::fake_client c = b.fake.connect("10.0.0.1:5000");
  c.exchange("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n");
  REQUIRE(b.combined.size() == 4);
  CHECK(b.combined[3].starts_with("203.0.113.7 - - ["));
  b.hook_with = nullptr;
  c.exchange("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n");
  REQUIRE(b.combined.size() == 5);
  CHECK(b.combined[4].starts_with("10.0.0.1 - - ["));
  CHECK(json::parse(b.json_lines[4]).as_object().at("remote_addr").as_string() == "10.0.0.1");
}

TEST_CASE("client_address: an access_log with trusted proxies writes the client's address") {
  for (const http::log_format f : {http::log_format::combined, http::log_format::json}) {
    const fs::path path =
        fs::temp_directory_path() / ("lancer-proxies-" + std::to_string(::getpid()) + "-" +
                                     std::to_string(static_cast<int>(f)));
    fs::remove(path);
    {
      auto proxies =
          std::make_shared<const http::trusted_proxies>(std::vector<std::string>{"10.0.0.0/8"});
      http::access_log log(path.string(), {.format = f, .trusted = proxies});
      bed b{http::trusted_proxies{}, log.hook()};
      b.client("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.7\r\n");
      b.client("192.0.2.1:5000", "X-Forwarded-For: 203.0.113.7\r\n");
    }
    std::ifstream in(path);
    std::string first, second;
    std::getline(in, first);
    std::getline(in, second);
    fs::remove(path);
    CAPTURE(first);
    if (f == http::log_format::combined) {
      CHECK(first.starts_with("203.0.113.7 - - ["));
      CHECK(second.starts_with("192.0.2.1 - - ["));
    } else {
      CHECK(json::parse(first).as_object().at("remote_addr").as_string() == "203.0.113.7");
      CHECK(json::parse(second).as_object().at("remote_addr").as_string() == "192.0.2.1");
    }
  }
}
