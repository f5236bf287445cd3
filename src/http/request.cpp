#include "lancer/http/request.hpp"

#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstdint>

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

std::string_view request::host() const noexcept {
  if (absolute_form_) return view(authority_off_, authority_len_);
  return headers().get("Host");
}

namespace {

bool host_char(unsigned char c) noexcept {
  // unreserved / sub-delims / "%" of pct-encoded (RFC 3986 3.2.2 reg-name)
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case '%':
      return true;
    default:
      return false;
  }
}

bool hex_digit(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

bool valid_host(std::string_view a) noexcept {
  std::string_view host = a;
  std::string_view port;
  if (!a.empty() && a.front() == '[') {
    // IPv6 literal: hex digits, ':' and '.' (an embedded IPv4 address), then ']'.
    const std::size_t close = a.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (const char c : a.substr(1, close - 1)) {
      if (!hex_digit(c) && c != ':' && c != '.') return false;
    }
    host = a.substr(0, close + 1);
    const std::string_view after = a.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return false;
      port = after.substr(1);
    }
  } else if (const std::size_t colon = a.rfind(':'); colon != std::string_view::npos) {
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
  }
  if (host.empty()) return a.empty();
  if (host.front() != '[') {
    for (std::size_t i = 0; i < host.size(); ++i) {
      const auto c = static_cast<unsigned char>(host[i]);
      if (!host_char(c)) return false;
      if (c == '%' && (i + 2 >= host.size() || !hex_digit(host[i + 1]) || !hex_digit(host[i + 2])))
        return false;
    }
  }
  if (port.size() > 5) return false;
  for (const char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

const http::headers& request::headers() const noexcept {
  // The buffer may have moved (grown) since parsing: the offsets stay right.
  headers_.rebase(conn_ != nullptr ? conn_->buffered().data() : nullptr);
  return headers_;
}

void request::start(connection& c) noexcept {
  conn_ = &c;
  started_at_ = c.now();
  read_mark_ = c.bytes_received() - static_cast<std::uint32_t>(c.buffered().size());
  write_mark_ = c.bytes_written();
}

namespace {

// The count whose low 32 bits are `low` (a difference of the stream's counts, modulo 2^32)
// and that lies within 2 GiB of `near` (the body's own 64-bit count): exact while the head and
// framing stay under 2 GiB, whatever the body's size.
std::uint64_t widen(std::uint32_t low, std::uint64_t near) noexcept {
  constexpr std::uint64_t half = std::uint64_t{1} << 31;
  const std::uint64_t base = near > half ? near - half : 0;
  return base + static_cast<std::uint32_t>(low - static_cast<std::uint32_t>(base));
}

}  // namespace

std::uint64_t request::request_bytes() const noexcept {
  if (conn_ == nullptr) return 0;
  const std::string_view in = conn_->buffered();
  // What is still buffered of it: its header and the body kept behind it, or, when its
  // header never became whole (it was refused), all of it.
  const std::uint32_t held = static_cast<std::uint32_t>(
      header_size_ != 0 ? std::min<std::uint64_t>(header_size_ + body_in_buffer_, in.size())
                        : in.size());
  const std::uint32_t consumed = conn_->bytes_received() - static_cast<std::uint32_t>(in.size());
  return widen(static_cast<std::uint32_t>(consumed + held - read_mark_), body_received_);
}

std::uint64_t request::response_bytes() const noexcept {
  if (conn_ == nullptr) return 0;
  return widen(static_cast<std::uint32_t>(conn_->bytes_written() - write_mark_), bytes_sent_);
}

void request::reset() noexcept {
  headers_.clear();
  method_off_ = method_len_ = target_off_ = target_len_ = 0;
  authority_off_ = authority_len_ = 0;
  absolute_form_ = false;
  target_copy_.clear();
  line_size_ = scanned_ = 0;
  empty_lines_ = 0;
  version_ = 11;
  content_length_.reset();
  chunked_ = answered_ = continue_expected_ = streaming_ = streaming_fixed_ = false;
  status_ = 0;
  bytes_sent_ = 0;
  keep_alive_ = true;
  header_size_ = body_in_buffer_ = 0;
  body_left_ = body_received_ = 0;
  started_at_ = body_started_at_ = {};
  read_mark_ = write_mark_ = 0;
  body_started_ = body_done_ = switched_ = false;
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
      case error::bad_request_line:
        return "bad request line";
      case error::bad_host:
        return "bad Host";
      case error::bad_target:
        return "bad request target";
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

request_parser::request_parser(request& req, const limits& lim, std::size_t line_size)
    : req_(req), limits_(lim) {
  // Room for the request line and the header block: parse() checks `header_bytes` exactly
  // before the parser sees the header, so this only has to be large enough.
  header_limit(static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::uint64_t{line_size} + lim.header_bytes + 4, UINT32_MAX)));
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
  const std::size_t n = put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (!ec && is_header_done() && req_.header_size_ == 0) {
    req_.header_size_ = offset + n;
    if (req_.header_size_ - req_.line_size_ > limits_.header_bytes) {
      ec = beast::http::error::header_limit;
    }
  }
  return n;
}

void request_parser::on_request_impl(verb, string_view method_str, string_view target, int version,
                                     error_code& ec) {
  if (target.size() > limits_.target) return fail(ec, error::target_too_long);
  req_.method_off_ = offset_of(method_str);
  req_.method_len_ = static_cast<std::uint32_t>(method_str.size());
  req_.target_off_ = offset_of(target);
  req_.target_len_ = static_cast<std::uint32_t>(target.size());
  req_.version_ = static_cast<unsigned>(version);  // Beast passes 10 or 11 only
  target_form(method_str, target, ec);
}

// RFC 9112 3.2: origin form ("/path?q") for most methods, absolute form ("http://h/p") for
// any, authority form ("h:443") for CONNECT and asterisk form ("*") for OPTIONS only.
void request_parser::target_form(string_view method_sv, string_view target_sv, error_code& ec) {
  const std::string_view method(method_sv.data(), method_sv.size());
  const std::string_view target(target_sv.data(), target_sv.size());
  if (method == "CONNECT") {
    if (!valid_host(target) || target.find(':') == std::string_view::npos) {
      return fail(ec, error::bad_target);
    }
    return;
  }
  if (target.front() == '/') return;
  if (target == "*") {
    if (method != "OPTIONS") return fail(ec, error::bad_target);
    return;
  }
  std::size_t scheme = 0;
  if (target.size() >= 7 && iequals(target.substr(0, 7), "http://")) {
    scheme = 7;
  } else if (target.size() >= 8 && iequals(target.substr(0, 8), "https://")) {
    scheme = 8;
  } else {
    return fail(ec, error::bad_target);
  }
  const std::string_view rest = target.substr(scheme);
  const std::size_t path = std::min(rest.find('/'), rest.find('?'));
  const std::string_view authority = rest.substr(0, path);
  if (authority.empty() || !valid_host(authority)) return fail(ec, error::bad_host);
  req_.absolute_form_ = true;
  req_.authority_off_ = offset_of(string_view(authority.data(), authority.size()));
  req_.authority_len_ = static_cast<std::uint32_t>(authority.size());
  if (path == std::string_view::npos || rest[path] == '?') {
    // No path: the origin form is "/" and the query, if any (RFC 9112 3.2.1).
    req_.target_copy_.assign(1, '/');
    if (path != std::string_view::npos)
      req_.target_copy_.append(rest.data() + path, rest.size() - path);
  } else {
    req_.target_off_ = offset_of(string_view(rest.data() + path, rest.size() - path));
    req_.target_len_ = static_cast<std::uint32_t>(rest.size() - path);
  }
}

void request_parser::on_field_impl(field name, string_view name_string, string_view value,
                                   error_code& ec) {
  if (req_.headers_.size() >= limits_.header_count) return fail(ec, error::too_many_fields);
  // Beast unfolds an obs-fold value into a buffer of its own: a value that does not lie in
  // the request's bytes was folded. RFC 9112 (5.2) lets a server reject it; we do.
  if (!within(value) || !within(name_string)) return fail(ec, error::bad_field_value);
  const std::string_view v(value.data(), value.size());
  if (!clean_value(v)) return fail(ec, error::bad_field_value);
  if (name == field::host) {
    ++hosts_;
    if (!valid_host(v)) return fail(ec, error::bad_host);
  }
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
