// lancer::http::request and the limits it is read under.
//
// A request is filled by wait_for_request and reused for the next one on the same
// connection: its field table keeps its capacity, so steady-state keep-alive parsing
// allocates nothing. Every string it returns is a view into the connection's inbound bytes,
// valid until the next co_await on the connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "lancer/http/headers.hpp"
#include "lancer/sched/clock.hpp"

namespace lancer {
class connection;
}

namespace lancer::http {

namespace detail {
class request_parser;
}

// Limits and timeouts for reading requests. Each has a documented default; each can be set.
struct limits {
  std::size_t target = 8192;          // longest request target; beyond: 414
  std::uint32_t header_bytes = 8192;  // the header block (the field lines and the empty line
                                      // that ends them; not the request line); beyond: 431
  std::size_t header_count = 100;     // most header fields; beyond: 431
  std::uint64_t body = 1 << 20;       // largest body; beyond: 413, sent before reading it
  clock::duration header_timeout = std::chrono::seconds(10);  // first byte to last header: 408
  clock::duration idle_timeout = std::chrono::seconds(60);    // keep-alive wait between requests
  // When the server drains, how long an idle keep-alive connection stays open for a request
  // already on its way; such a request is answered, with `Connection: close`.
  clock::duration drain_grace = std::chrono::seconds(1);
  // Reading a body: it must be whole within `body_timeout` plus one second for every
  // `body_min_rate` bytes received (408 otherwise), so a client trickling a byte now and then
  // cannot hold a connection. 0 turns the rate off: then the timeout restarts at every read.
  // The same timeout bounds the handler once the header is read.
  clock::duration body_timeout = std::chrono::seconds(30);
  std::uint64_t body_min_rate = 1024;  // bytes per second
};
// Whether `authority` is a valid Host value (RFC 9110 7.2, RFC 3986 3.2.2): a reg-name, an
// IPv4 address or a bracketed IPv6 literal, then an optional ":port". Userinfo ("a@b"),
// spaces, slashes, control characters, bytes above 0x7f and IPvFuture literals are not.
// "" is valid (RFC 9110 7.2).
bool valid_host(std::string_view authority) noexcept;

class request {
 public:
  request() = default;
  request(const request&) = delete;
  request& operator=(const request&) = delete;
  ~request();

  std::string_view method() const noexcept { return view(method_off_, method_len_); }
  // The target in origin form (path and query). A request sent in absolute form
  // (`GET http://example.com/a?b HTTP/1.1`, RFC 9112 3.2.2) gets its path and query here
  // ("/a?b"), and its authority in host().
  std::string_view target() const noexcept {
    return target_copy_.empty() ? view(target_off_, target_len_) : target_copy_;
  }
  // The host the request is for: the authority of an absolute-form target, or else the Host
  // field ("" for an HTTP/1.0 request without one). Always a valid host[:port].
  std::string_view host() const noexcept;
  // 10 for HTTP/1.0, 11 for HTTP/1.1. A request sent as HTTP/1.2 to 1.9 is read and answered
  // as HTTP/1.1 (RFC 9110 2.5), and says 11 here.
  unsigned version() const noexcept { return version_; }
  // The header fields. Their views are valid until the next co_await on the connection.
  const http::headers& headers() const noexcept;
  // Whether the connection stays open after this request (RFC 9112, section 9.3).
  bool keep_alive() const noexcept { return keep_alive_; }
  std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }
  bool chunked() const noexcept { return chunked_; }
  bool has_body() const noexcept { return chunked_ || content_length_.value_or(0) > 0; }
  bool is_head() const noexcept { return method() == "HEAD"; }
  // True once a response was started for it (respond() sets it).
  bool answered() const noexcept { return answered_; }
  // The body, once wait_for_request or read_body has read it whole; "" before that.
  std::string_view body() const noexcept;
  // The status it was answered with (0 before), and the body bytes sent (for access logs).
  unsigned response_status() const noexcept { return status_; }
  std::uint64_t bytes_sent() const noexcept { return bytes_sent_; }
  // True once an upgrade switched the connection to another protocol (upgrade.hpp).
  bool switched() const noexcept { return switched_; }
  // When reading the request began: the scheduler's time (see scheduler::now) when its first
  // bytes were looked at. The start of an access log's request time.
  clock::time_point started_at() const noexcept { return started_at_; }
  // The bytes this request took from the connection so far: its request line and header (and
  // the empty lines before them), and the body read (chunk framing included); a request that
  // was refused before its header was whole counts all that was buffered. A body the handler
  // left unread is not counted (it is skipped after the access hook). 0 before reading began.
  std::uint64_t request_bytes() const noexcept;
  // The bytes written on the connection for its answer: status line, header, body and chunk
  // framing, a `100 Continue` included (stream::bytes_written since the request began).
  std::uint64_t response_bytes() const noexcept;

 private:
  friend class detail::request_parser;
  friend struct io;
  friend void switched_protocols(connection& c, request& req);

  std::string_view view(std::uint32_t off, std::uint32_t len) const noexcept;
  void reset() noexcept;
  // Reading the request begins on `c`, now: sets conn_, started_at_ and the byte marks.
  void start(connection& c) noexcept;

  connection* conn_ = nullptr;  // whose buffer the offsets point into
  mutable http::headers headers_;
  std::uint32_t method_off_ = 0, method_len_ = 0;
  std::uint32_t target_off_ = 0, target_len_ = 0;
  std::uint32_t authority_off_ = 0, authority_len_ = 0;  // of an absolute-form target
  bool absolute_form_ = false;
  std::string target_copy_;  // "/" or "/?query" for an absolute-form target without a path
  unsigned version_ = 11;
  std::optional<std::uint64_t> content_length_;
  bool chunked_ = false;
  bool keep_alive_ = true;
  bool answered_ = false;
  bool continue_expected_ = false;   // Expect: 100-continue, not answered yet
  std::uint32_t line_size_ = 0;      // bytes of the request line, CRLF included (0: not read)
  std::uint32_t scanned_ = 0;        // where to look on for the header's end
  std::uint8_t empty_lines_ = 0;     // empty lines skipped before the request line
  std::size_t header_size_ = 0;      // bytes of the request line and header block
  std::size_t body_in_buffer_ = 0;   // body bytes kept right behind the header (fixed bodies)
  std::uint64_t body_left_ = 0;      // fixed body bytes not handed to the handler yet
  std::uint64_t body_received_ = 0;  // raw body bytes received so far (for the rate)
  clock::time_point started_at_{};   // when reading the request began
  std::uint32_t read_mark_ = 0;      // the connection's bytes consumed before it began (mod 2^32)
  std::uint32_t write_mark_ = 0;     // the connection's bytes written before it began (mod 2^32)
  clock::time_point body_started_at_{};       // when the body's reading began
  bool body_started_ = false;                 // the handler asked for (part of) the body
  bool body_done_ = false;                    // the whole body has been read
  bool streaming_ = false;                    // a chunked (or 1.0 close-delimited) response is open
  bool streaming_fixed_ = false;              // ... with a Content-Length instead
  unsigned status_ = 0;                       // the response's status
  std::uint64_t bytes_sent_ = 0;              // body bytes of the response
  detail::request_parser* parser_ = nullptr;  // owned: a chunked body is still being parsed
  bool switched_ = false;                     // switched_protocols() was called
  // The server's access hook, called by switched_protocols() (the request is gone after it).
  const std::function<void(const connection&, const request&)>* on_switch_ = nullptr;
};

}  // namespace lancer::http
