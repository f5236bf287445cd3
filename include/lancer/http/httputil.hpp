// httputil: the toolkit HTTP handlers are built from.
//
//   lancer::task<> hello(lancer::connection& c, lancer::frame&, lancer::pubframe&) {
//     lancer::http::request req;                             // reused for every request
//     while (co_await lancer::http::wait_for_request(c, req)) {
//       co_await lancer::http::respond(c, req, 200, "text/plain", "Hello, World!");
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
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "lancer/core/connection.hpp"
#include "lancer/core/server.hpp"
#include "lancer/http/error.hpp"
#include "lancer/http/headers.hpp"
#include "lancer/http/request.hpp"
#include "lancer/http/status.hpp"
#include "lancer/http/upgrade.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

// A whole response. The body is a view: it must stay valid until respond() is done; the
// extra fields are owned (headers.hpp: http::fields checks and copies each one).
struct response {
  unsigned status = 200;
  std::string_view content_type = "text/plain";
  std::string_view body;
  http::fields fields;  // extra header fields: Location, Set-Cookie, Cache-Control, ...
  bool close = false;   // close the connection after this response
};

// Waits for the next request on `c` and parses its header into `req` (the previous request's
// bytes, and its unread body if any, are dropped first). The body is left for read_body or
// read_body_some, so `100 Continue` goes out only if the handler asks for it. Returns true
// with a request to answer; false when the connection is done: the peer closed, the server
// is draining, a timeout passed, or the request was bad (it was answered with the status the
// error calls for and `Connection: close`).
task<bool> wait_for_headers(connection& c, request& req, const limits& lim = {});

// wait_for_headers, then the whole body (req.body()), up to `lim.body`.
task<bool> wait_for_request(connection& c, request& req, const limits& lim = {});

// Reads the whole body of `req`: Content-Length bytes (left in place: no copy), or the decoded
// chunks of a chunked body (extensions ignored, trailers read and dropped). Sends
// `100 Continue` first if the client asked for it. Returns the body (valid until the next
// wait_for_headers), or nullopt if the body was bad, stalled past `lim.body_timeout` (408) or
// incomplete: it was answered and the connection closes.
task<std::optional<std::string_view>> read_body(connection& c, request& req,
                                                const limits& lim = {});
// The same, for a Content-Length body only (a chunked request gets nullopt after a 400).
task<std::optional<std::string_view>> read_fixed_body(connection& c, request& req,
                                                      const limits& lim = {});
// The same, for a chunked body only (other requests get nullopt after a 400).
task<std::optional<std::string_view>> read_chunked_body(connection& c, request& req,
                                                        const limits& lim = {});
// Streams the body: the next piece (at most `max` bytes of a Content-Length body; whatever
// chunks arrived of a chunked one), or "" once it is all read. A piece is valid until the
// next call. Memory stays bounded whatever the body's size. nullopt as for read_body.
task<std::optional<std::string_view>> read_body_some(connection& c, request& req,
                                                     std::size_t max = 64 * 1024,
                                                     const limits& lim = {});

// Writes `r` as the answer to `req`: status line, Date (cached once a second, from the
// scheduler's clock: see clock::wall_now), Server, Content-Type, Content-Length, Connection
// when needed, the extra fields, and the body (none for HEAD, 1xx, 204 and 304). If the
// connection is not to stay open, flushes and closes it.
task<> respond(connection& c, request& req, const response& r);
// The same with a status, a content type, a body and (optionally) extra fields, which need
// not outlive the call's start: they are written before its first suspension.
task<> respond(connection& c, request& req, unsigned status, std::string_view content_type,
               std::string_view body, const http::fields& extra = {});
// A redirect: `status` (301, 302, 303, 307 or 308; std::invalid_argument otherwise) with
// `Location: location` and a short text body. Throws std::invalid_argument, as
// http::fields::add does, for a location that would split the header.
task<> redirect(connection& c, request& req, unsigned status, std::string_view location);

// Streams a response: start_chunked writes the head (Transfer-Encoding: chunked on HTTP/1.1;
// on HTTP/1.0 the body runs to the close), send_chunk sends a piece through the connection's
// backpressure (it waits while the peer is slow), end_chunked finishes the body (and closes
// the connection if it is not to stay open). HEAD gets the head only.
void start_chunked(connection& c, request& req, unsigned status, std::string_view content_type,
                   std::span<const headers::field> fields = {});
void start_chunked(connection& c, request& req, unsigned status, std::string_view content_type,
                   const http::fields& fields);
// As start_chunked, for a body whose length is known: `Content-Length: length`, and the
// pieces send_chunk sends are the body's bytes as they are (end_chunked adds nothing).
void start_response(connection& c, request& req, unsigned status, std::string_view content_type,
                    std::uint64_t length, std::span<const headers::field> fields = {});
void start_response(connection& c, request& req, unsigned status, std::string_view content_type,
                    std::uint64_t length, const http::fields& fields);
task<> send_chunk(connection& c, request& req, std::string_view piece);
task<> end_chunked(connection& c, request& req);
// Appends a piece of the body started with start_response or start_chunked, without sending
// it yet: it leaves with the next flush, together with the responses pipelined behind it. For
// pieces already in memory and small; send_chunk for the rest.
void write_body(connection& c, request& req, std::string_view piece);
// Sends `length` bytes of the open file `fd`, `offset` bytes in, as the next piece of the body
// started with start_response or start_chunked: zero copy where the connection is a plain
// socket (stream::send_file). Throws lancer::file_error, after aborting the connection, if the
// file ends early (it shrank while being sent).
task<> send_file(connection& c, request& req, int fd, std::uint64_t offset, std::uint64_t length);

// A handler of one request at a time. It answers with respond().
using request_handler = std::function<task<>(connection&, request&, frame&, pubframe&)>;

// Called after each request is answered (an access log, metrics), a request refused before
// its handler included (a bad request, 408, 413, 431: its method and target may be empty).
using access_hook = std::function<void(const connection&, const request&)>;

// Makes a connection handler from a request handler: it reads requests with `lim`, calls `h`
// for each, and keeps the connection alive as RFC 9112 says. If `h` throws before it
// responded, the client gets 500 and the connection closes (the error is logged with the
// connection's id); if `h` returns without responding, the client gets 500 as well.
// `log_to`, if set, is called after each request.
// A request that asks for an upgrade `up` has goes to that upgrade instead (upgrade.hpp).
server::handler serve(request_handler h, limits lim = {}, access_hook log_to = {},
                      upgrades up = {});

// What serve() runs, as one value that can be replaced while connections are open: a
// service_slot holds the current one. Each request is served by the service current when its
// header was read, which it holds until it is answered: a service replaced meanwhile (a
// reload) lives on until its last request is done. Between requests a connection keeps no
// hold on any service.
struct service {
  request_handler handler;
  limits lim;
  access_hook log_to;
  upgrades up;
};

// The service of one scheduler thread's servers. Not thread-safe: set() and the requests run
// on that thread (a reload from another thread posts the new service to it).
class service_slot {
 public:
  explicit service_slot(std::shared_ptr<const service> s) : current_(std::move(s)) {}
  void set(std::shared_ptr<const service> s) noexcept { current_ = std::move(s); }
  const std::shared_ptr<const service>& current() const noexcept { return current_; }

 private:
  std::shared_ptr<const service> current_;
};

// serve() for the services of `slot`, which must outlive the server's connections: a new
// request is read under the current service's limits and answered by its handler.
server::handler serve(std::shared_ptr<service_slot> slot);

// One line in nginx's combined format for an answered request:
// `127.0.0.1 - - [22/Nov/2026:01:40:00 +0000] "GET / HTTP/1.1" 200 13 "-" "curl/7.88.1"`.
// Quotes, backslashes, control characters and bytes from 0x7f up sent by the client are
// escaped as \xHH. The time follows the scheduler's clock (a manual clock's wall time in
// tests). http::access_log (access_log.hpp) writes these lines, batched.
std::string access_line(const connection& c, const request& req);
// The same line appended to `out`, which a caller can reuse: no allocation once it has grown.
void append_access_line(std::string& out, const connection& c, const request& req);

}  // namespace lancer::http
