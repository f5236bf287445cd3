// lancer::http::request and the limits it is read under.
//
// A request is filled by wait_for_request and reused for the next one on the same
// connection: its field table keeps its capacity, so steady-state keep-alive parsing
// allocates nothing. Every string it returns is a view into the connection's inbound bytes,
// valid until the next co_await on the connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
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
  std::uint32_t header_bytes = 8192;  // request line + header block; beyond: 431
  std::size_t header_count = 100;     // most header fields; beyond: 431
  std::uint64_t body = 1 << 20;       // largest body; beyond: 413, sent before reading it
  clock::duration header_timeout = std::chrono::seconds(10);  // first byte to last header: 408
  clock::duration idle_timeout = std::chrono::seconds(60);    // keep-alive wait between requests
  clock::duration body_timeout = std::chrono::seconds(30);    // reading a body, and the handler
};

class request {
 public:
  request() = default;
  request(const request&) = delete;
  request& operator=(const request&) = delete;
  ~request();

  std::string_view method() const noexcept { return view(method_off_, method_len_); }
  std::string_view target() const noexcept { return view(target_off_, target_len_); }
  // 10 for HTTP/1.0, 11 for HTTP/1.1.
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

 private:
  friend class detail::request_parser;
  friend struct io;

  std::string_view view(std::uint32_t off, std::uint32_t len) const noexcept;
  void reset() noexcept;

  connection* conn_ = nullptr;  // whose buffer the offsets point into
  mutable http::headers headers_;
  std::uint32_t method_off_ = 0, method_len_ = 0;
  std::uint32_t target_off_ = 0, target_len_ = 0;
  unsigned version_ = 11;
  std::optional<std::uint64_t> content_length_;
  bool chunked_ = false;
  bool keep_alive_ = true;
  bool answered_ = false;
  bool continue_expected_ = false;  // Expect: 100-continue, not answered yet
  std::size_t header_size_ = 0;     // bytes of the request line and header block
  std::size_t body_in_buffer_ = 0;  // body bytes kept right behind the header (fixed bodies)
  std::uint64_t body_left_ = 0;     // fixed body bytes not handed to the handler yet
  bool body_started_ = false;       // the handler asked for (part of) the body
  bool body_done_ = false;          // the whole body has been read
  bool streaming_ = false;          // a chunked (or 1.0 close-delimited) response is open
  unsigned status_ = 0;             // the response's status
  std::uint64_t bytes_sent_ = 0;    // body bytes of the response
  detail::request_parser* parser_ = nullptr;  // owned: a chunked body is still being parsed
};

}  // namespace lancer::http
