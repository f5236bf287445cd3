// httputil: the toolkit HTTP handlers are built from.
//
//   lancer::task<> hello(lancer::connection& c, lancer::frame&, lancer::pubframe&) {
//     lancer::http::request req;                             // reused for every request
//     while (co_await lancer::http::wait_for_request(c, req)) {
//       co_await lancer::http::respond_on(c, req, 200, "text/plain", "Hello, World!");
//     }
//   }
//
// - Parsing is Boost.Beast's; httputil adds the limits and checks (lancer::http::limits).
//   A bad request is answered with the right status and `Connection: close`, then the
//   connection is closed and wait_for_request returns false.
// - Keep-alive follows RFC 9112: HTTP/1.1 stays open unless `Connection: close`; HTTP/1.0
//   closes unless `Connection: keep-alive`.
// - Pipelining: requests already buffered are answered in order without waiting, and their
//   responses are only appended; they leave together, in one write, when the handler next
//   waits for input.
// - Timeouts: `idle_timeout` while waiting for a request's first byte (then the connection is
//   closed quietly), `header_timeout` from that byte to the end of the header (then 408),
//   `body_timeout` for reading the body and handling the request.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "lancer/core/connection.hpp"
#include "lancer/core/server.hpp"
#include "lancer/http/error.hpp"
#include "lancer/http/headers.hpp"
#include "lancer/http/request.hpp"
#include "lancer/http/status.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

struct response {
  unsigned status = 200;
  std::string_view content_type = "text/plain";
  std::string_view body;
  std::span<const headers::field> fields{};  // extra header fields, written as given
  bool close = false;                        // close the connection after this response
};

// Waits for the next request on `c` and parses its header into `req` (the previous request's
// bytes, and its unread body if any, are dropped first). Returns true with a request to
// answer; false when the connection is done: the peer closed, the server is draining, a
// timeout passed, or the request was bad (it was answered with the status the error calls for
// and `Connection: close`).
task<bool> wait_for_request(connection& c, request& req, const limits& lim = {});

// Reads the whole body of `req`: Content-Length bytes, or the decoded chunks of a chunked
// body (extensions ignored, trailers read and dropped). Sends `100 Continue` first if the
// client asked for it. Returns the body (a view valid until the next wait_for_request), or
// nullopt if the body was bad or incomplete: then it was answered and the connection closes.
task<std::optional<std::string_view>> read_body(connection& c, request& req,
                                                const limits& lim = {});
// The same, for a Content-Length body only (a chunked request gets nullopt after a 411).
task<std::optional<std::string_view>> read_fixed_body(connection& c, request& req,
                                                      const limits& lim = {});
// The same, for a chunked body only (other requests get nullopt after a 400).
task<std::optional<std::string_view>> read_chunked_body(connection& c, request& req,
                                                        const limits& lim = {});

// Writes `r` as the answer to `req`: status line, Date (cached once a second), Server,
// Content-Type, Content-Length, Connection when needed, the extra fields, and the body (none
// for HEAD, 1xx, 204 and 304). If the connection is not to stay open, flushes and closes it.
task<> respond(connection& c, request& req, const response& r);

// respond() with a status, a content type and a body.
task<> respond_on(connection& c, request& req, unsigned status, std::string_view content_type,
                  std::string_view body);

// A handler of one request at a time. It answers with respond()/respond_on().
using request_handler = std::function<task<>(connection&, request&, frame&, pubframe&)>;

// Makes a connection handler from a request handler: it reads requests with `lim`, calls `h`
// for each, and keeps the connection alive as RFC 9112 says. If `h` throws before it
// responded, the client gets 500 and the connection closes (the error is logged with the
// connection's id); if `h` returns without responding, the client gets 500 as well.
server::handler serve(request_handler h, limits lim = {});

}  // namespace lancer::http
