#include "lancer/http/request.hpp"

#include <boost/beast/http/error.hpp>

#include "lancer/core/connection.hpp"
#include "lancer/http/detail/request_parser.hpp"
#include "lancer/http/error.hpp"

namespace lancer::http {

namespace beast = boost::beast;

// --- request --------------------------------------------------------------------------------

request::~request() {
  delete parser_;
}

std::string_view request::view(std::uint32_t off, std::uint32_t len) const noexcept {
  if (conn_ == nullptr) return {};
  return {conn_->buffered().data() + off, len};
}

std::string_view request::body() const noexcept {
  if (!body_done_) return {};
  if (chunked_) return parser_ != nullptr ? std::string_view(parser_->chunked_body()) : "";
  return view(static_cast<std::uint32_t>(header_size_),
              static_cast<std::uint32_t>(body_in_buffer_));
}

const http::headers& request::headers() const noexcept {
  // The buffer may have moved (grown) since parsing: the offsets stay right.
  headers_.rebase(conn_ != nullptr ? conn_->buffered().data() : nullptr);
  return headers_;
}

void request::reset() noexcept {
  headers_.clear();
  method_off_ = method_len_ = target_off_ = target_len_ = 0;
  version_ = 11;
  content_length_.reset();
  chunked_ = answered_ = continue_expected_ = streaming_ = false;
  status_ = 0;
  bytes_sent_ = 0;
  keep_alive_ = true;
  header_size_ = body_in_buffer_ = 0;
  body_left_ = 0;
  body_started_ = body_done_ = false;
  delete parser_;
  parser_ = nullptr;
}

// --- errors ---------------------------------------------------------------------------------

namespace {

// boost::system::error_category has a protected non-virtual destructor by design (categories
// are never deleted through a base pointer); -Wnon-virtual-dtor cannot tell.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "lancer.http"; }
  std::string message(int ev) const override {
    switch (static_cast<error>(ev)) {
      case error::target_too_long:
        return "request target too long";
      case error::too_many_fields:
        return "too many header fields";
      case error::version_not_supported:
        return "HTTP version not supported";
      case error::coding_not_implemented:
        return "transfer coding not implemented";
      case error::missing_host:
        return "missing Host header";
      case error::duplicate_host:
        return "more than one Host header";
      case error::bad_field_value:
        return "control character or obs-fold in a field value";
      case error::bad_transfer_encoding:
        return "bad Transfer-Encoding";
      case error::length_and_encoding:
        return "Content-Length with Transfer-Encoding";
      case error::incomplete:
        return "incomplete request";
    }
    return "unknown lancer.http error";
  }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

unsigned status_for(const boost::system::error_code& ec) noexcept {
  if (ec.category() == error_category()) {
    switch (static_cast<error>(ec.value())) {
      case error::target_too_long:
        return 414;
      case error::too_many_fields:
        return 431;
      case error::version_not_supported:
        return 505;
      case error::coding_not_implemented:
        return 501;
      default:
        return 400;
    }
  }
  if (ec == beast::http::error::header_limit) return 431;
  if (ec == beast::http::error::body_limit) return 413;
  return 400;
}

// --- the parser -----------------------------------------------------------------------------

namespace detail {

namespace {

// Field values may hold visible characters, spaces, tabs and obs-text; nothing else.
bool clean_value(std::string_view v) noexcept {
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

// A request line whose version is well formed ("HTTP/d.d") but not 1.x: 505, not 400.
bool request_parser::unsupported_version(std::string_view bytes) noexcept {
  const std::size_t eol = bytes.find("\r\n");
  if (eol == std::string_view::npos || eol < 8) return false;
  const std::string_view v = bytes.substr(eol - 8, 8);
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  return v.substr(0, 5) == "HTTP/" && digit(v[5]) && v[6] == '.' && digit(v[7]) && v[5] != '1';
}

request_parser::request_parser(request& req, const limits& lim) : req_(req), limits_(lim) {
  // The request line counts against the target limit, not the header limit.
  header_limit(static_cast<std::uint32_t>(lim.header_bytes + lim.target + 64));
  body_limit(lim.body);
  eager(false);
}

void request_parser::fail(error_code& ec, error e) {
  ec = make_error_code(e);
}

std::size_t request_parser::feed(const char* request_start, std::size_t offset,
                                 std::string_view bytes, error_code& ec) {
  base_ = request_start;
  end_ = bytes.data() + bytes.size();
  if (offset == 0 && unsupported_version(bytes)) {
    fail(ec, error::version_not_supported);
    return 0;
  }
  std::size_t n = put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == beast::http::error::header_limit) {
    // Beast counts the request line too: tell a long target (414) from a long header (431).
    const std::string_view all(request_start, offset + bytes.size());
    const std::size_t eol = all.find('\n');
    if (eol == std::string_view::npos || eol > limits_.target + 32)
      fail(ec, error::target_too_long);
  }
  if (!ec && is_header_done() && req_.header_size_ == 0) {
    req_.header_size_ = offset + n;
    const std::size_t line = std::string_view(request_start, req_.header_size_).find('\n') + 1;
    if (req_.header_size_ - line > limits_.header_bytes) {
      ec = beast::http::error::header_limit;
    }
  }
  return n;
}

void request_parser::on_request_impl(verb, string_view method_str, string_view target, int version,
                                     error_code& ec) {
  if (target.size() > limits_.target) return fail(ec, error::target_too_long);
  if (version != 10 && version != 11) {
    // HTTP/1.2 and later 1.x are answered as 1.1 would be (RFC 9110, 2.5); 0.9 and 2+ are not.
    if (version / 10 != 1) return fail(ec, error::version_not_supported);
    version = 11;
  }
  req_.method_off_ = offset_of(method_str);
  req_.method_len_ = static_cast<std::uint32_t>(method_str.size());
  req_.target_off_ = offset_of(target);
  req_.target_len_ = static_cast<std::uint32_t>(target.size());
  req_.version_ = static_cast<unsigned>(version);
}

void request_parser::on_field_impl(field name, string_view name_string, string_view value,
                                   error_code& ec) {
  if (req_.headers_.size() >= limits_.header_count) return fail(ec, error::too_many_fields);
  // Beast unfolds an obs-fold value into a buffer of its own: a value that does not lie in
  // the request's bytes was folded. RFC 9112 (5.2) lets a server reject it; we do.
  if (!within(value) || !within(name_string)) return fail(ec, error::bad_field_value);
  const std::string_view v(value.data(), value.size());
  if (!clean_value(v)) return fail(ec, error::bad_field_value);
  if (name == field::host) ++hosts_;
  if (name == field::transfer_encoding) {
    ++transfer_encodings_;
    // Only chunked is implemented; it must come last, once (RFC 9112, 6.1).
    bool chunked_seen = false;
    error problem{};
    for_each_list_item(v, [&](std::string_view item) {
      if (chunked_seen) {
        problem = error::bad_transfer_encoding;  // chunked not last
      } else if (iequals(item, "chunked")) {
        chunked_seen = true;
      } else if (!item.empty()) {
        problem = error::coding_not_implemented;
      }
      return problem == error{};
    });
    if (problem != error{}) return fail(ec, problem);
    if (transfer_encodings_ > 1) return fail(ec, error::bad_transfer_encoding);  // twice
  }
  if (name == field::expect && iequals(v, "100-continue")) req_.continue_expected_ = true;
  req_.headers_.add(offset_of(name_string), static_cast<std::uint32_t>(name_string.size()),
                    offset_of(value), static_cast<std::uint32_t>(value.size()));
}

void request_parser::on_header_impl(error_code& ec) {
  if (req_.version_ == 11 && hosts_ == 0) return fail(ec, error::missing_host);
  if (hosts_ > 1) return fail(ec, error::duplicate_host);
  if (transfer_encodings_ > 0) {
    if (req_.version_ == 10) return fail(ec, error::bad_transfer_encoding);
    if (content_length()) return fail(ec, error::length_and_encoding);
  }
  req_.content_length_ =
      content_length() ? std::optional<std::uint64_t>(*content_length()) : std::nullopt;
  req_.chunked_ = chunked();
  req_.body_left_ = req_.chunked_ ? 0 : req_.content_length_.value_or(0);
  req_.keep_alive_ = keep_alive();
}

std::size_t request_parser::on_body_impl(string_view body, error_code&) {
  body_.append(body.data(), body.size());
  return body.size();
}

std::size_t request_parser::on_chunk_body_impl(std::uint64_t, string_view body, error_code&) {
  body_.append(body.data(), body.size());
  return body.size();
}

}  // namespace detail
}  // namespace lancer::http
