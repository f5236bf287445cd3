// A Boost.Beast basic_parser that records a request as offsets into the connection's buffer.
// Beast does the HTTP grammar; this adds what Beast leaves to its user: limits on the target
// and on the number of fields, Host rules, transfer-coding rules, and strict field values.
#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include <string>

#include "lancer/http/error.hpp"
#include "lancer/http/request.hpp"
#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer::http::detail {

class request_parser final : public boost::beast::http::basic_parser<true> {
 public:
  // `line_size`: the request line's length, CRLF included; the header limit counts after it.
  request_parser(request& req, const limits& lim, std::size_t line_size);

  // One parser per request: recycle its memory like coroutine frames (no malloc per request).
  static void* operator new(std::size_t n) { return lancer::detail::frame_pool::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept {
    lancer::detail::frame_pool::deallocate(p, n);
  }

  // Feeds `bytes` (which start at the request's first byte plus `offset`) to the parser.
  // Returns the bytes consumed; sets `ec` (need_more when more input is wanted). The next
  // call must start where this one's consumed bytes end: the parser does not see them again.
  std::size_t feed(const char* request_start, std::size_t offset, std::string_view bytes,
                   boost::beast::error_code& ec);

  // The decoded body of a chunked request, as far as parsed.
  std::string& chunked_body() noexcept { return body_; }

 private:
  using verb = boost::beast::http::verb;
  using field = boost::beast::http::field;
  using string_view = boost::beast::string_view;
  using error_code = boost::beast::error_code;

  std::uint32_t offset_of(string_view s) const noexcept {
    return static_cast<std::uint32_t>(s.data() - base_);
  }
  void fail(error_code& ec, error e);
  bool within(string_view s) const noexcept {
    return s.data() >= base_ && s.data() + s.size() <= end_;
  }
  void target_form(string_view method, string_view target, error_code& ec);

  void on_request_impl(verb method, string_view method_str, string_view target, int version,
                       error_code& ec) override;
  void on_response_impl(int, string_view, int, error_code&) override {}
  void on_field_impl(field name, string_view name_string, string_view value,
                     error_code& ec) override;
  void on_header_impl(error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(string_view body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override;
  void on_finish_impl(error_code&) override {}

  request& req_;
  const limits limits_;         // a copy: the caller's limits may be a temporary
  const char* base_ = nullptr;  // the request's first byte during this feed
  const char* end_ = nullptr;   // one past the last byte offered in this feed
  std::string body_;            // decoded chunked body
  unsigned hosts_ = 0;
  unsigned transfer_encodings_ = 0;
};

}  // namespace lancer::http::detail
