// An HTTP reverse proxy: a request handler that sends each request on to an upstream server
// and its answer back.
//
//   http::request_handler api = http::proxy(lancer::parse_address("tcp/10.0.0.2:8080", true));
//
// - Bodies stream both ways (Content-Length or chunked), in bounded memory.
// - Hop-by-hop fields (Connection and the fields it names, Keep-Alive, Proxy-Connection, TE,
//   Trailer, Transfer-Encoding, Upgrade) are dropped both ways, and so is Expect (the proxy
//   asks the client for the body itself); X-Forwarded-For (appended to), X-Forwarded-Proto,
//   X-Forwarded-Host, Forwarded (RFC 7239) and Via are added. Host is the client's.
// - Each OS thread keeps a pool of idle keep-alive connections per upstream; a pooled
//   connection that the upstream has closed meanwhile is noticed before it is used.
// - Failures: an upstream that refuses or resets gets the client a 502, one that does not
//   answer in time a 504, each logged (WARN) with the upstream's name. An upstream that fails
//   in the middle of its answer cuts the client's connection. A request is sent a second time
//   (on a fresh connection, when a pooled one turned out dead before any answer) only if its
//   method is idempotent and it has no body: never twice otherwise.
#pragma once

#include <chrono>
#include <string>

#include "lancer/http/httputil.hpp"
#include "lancer/io/address.hpp"
#include "lancer/io/connect.hpp"

namespace lancer::http {

struct proxy_options {
  clock::duration connect_timeout = std::chrono::seconds(5);    // reaching the upstream: 504
  clock::duration response_timeout = std::chrono::seconds(60);  // its answer's header: 504
  clock::duration idle_timeout = std::chrono::seconds(60);      // no byte of its body: cut
  clock::duration keepalive = std::chrono::seconds(30);  // how long a pooled connection waits
  std::size_t pool = 128;                // idle connections kept per upstream and OS thread
  std::uint32_t max_header = 16 * 1024;  // the upstream's response header; more: 502
  std::string strip_prefix;              // taken off the path before it goes on ("/api")
  limits request_limits;                 // reading the client's body
  network* net = nullptr;                // where upstreams are reached; null: real_network()
};

request_handler proxy(address upstream, proxy_options options = {});

}  // namespace lancer::http
