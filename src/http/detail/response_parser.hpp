// A Boost.Beast basic_parser for an upstream's responses: the status line and fields as views
// into the bytes it is fed, and the body's bytes, decoded (Content-Length, chunked, or to
// the close), handed to a sink buffer. Beast does the grammar. Private to src/.
#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include "lancer/sched/detail/frame_pool.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace lancer::http::detail {

class response_parser final : public boost::beast::http::basic_parser<false> {
 public:
  struct field {
    std::string_view name, value;
  };

  // `head_request`: the response answers HEAD, so it has no body whatever it says.
  // The fields of one answer, in memory recycled from answer to answer (no malloc).
  using field_list = std::vector<field, lancer::detail::pool_allocator<field>>;

  explicit response_parser(bool head_request, std::uint32_t max_header) {
    fields_.reserve(16);
    header_limit(max_header);
    body_limit(boost::none);
    eager(false);
    skip(head_request);
  }

  unsigned status() const noexcept { return status_; }
  std::string_view reason() const noexcept { return reason_; }
  int version() const noexcept { return version_; }
  // The fields, as views into the bytes the header was fed from (valid while they are).
  const field_list& fields() const noexcept { return fields_; }
  // Decoded body bytes gathered since the caller last cleared it.
  std::string& body() noexcept { return body_; }

 private:
  using string_view = boost::beast::string_view;
  using error_code = boost::beast::error_code;

  void on_request_impl(boost::beast::http::verb, string_view, string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, string_view reason, int version, error_code&) override {
    status_ = static_cast<unsigned>(code);
    reason_ = std::string_view(reason.data(), reason.size());
    version_ = version;
  }
  void on_field_impl(boost::beast::http::field, string_view name, string_view value,
                     error_code&) override {
    fields_.push_back(
        {std::string_view(name.data(), name.size()), std::string_view(value.data(), value.size())});
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(string_view b, error_code&) override {
    body_.append(b.data(), b.size());
    return b.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view b, error_code&) override {
    body_.append(b.data(), b.size());
    return b.size();
  }
  void on_finish_impl(error_code&) override {}

  unsigned status_ = 0;
  std::string_view reason_;
  int version_ = 11;
  field_list fields_;
  std::string body_;
};

}  // namespace lancer::http::detail
