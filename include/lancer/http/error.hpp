// Errors httputil finds in requests, beyond those Beast's parser reports, and the HTTP status
// each one is answered with.
#pragma once

#include <boost/system/error_code.hpp>

namespace lancer::http {

enum class error {
  target_too_long = 1,     // 414
  too_many_fields,         // 431
  version_not_supported,   // 505
  coding_not_implemented,  // 501: a transfer coding other than chunked
  missing_host,            // 400
  duplicate_host,          // 400
  bad_field_value,         // 400: control character or obs-fold in a value
  bad_transfer_encoding,   // 400: chunked not last, twice, or on HTTP/1.0
  length_and_encoding,     // 400: Content-Length together with Transfer-Encoding
  incomplete,              // 400: the peer stopped sending in the middle of a request
  bad_request_line,        // 400: a request line without an HTTP version, or too many empty
                           //      lines before it
  bad_host,                // 400: a Host (or absolute-form authority) that is not a valid host
  bad_target,              // 400: a target in none of the forms its method allows
};

// Boost.System, like Beast's own errors, so the parser reports both the same way.
const boost::system::error_category& error_category() noexcept;
inline boost::system::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// The status that answers a request which failed to parse with `ec` (Beast's errors and ours).
unsigned status_for(const boost::system::error_code& ec) noexcept;

}  // namespace lancer::http

template <>
struct boost::system::is_error_code_enum<lancer::http::error> : std::true_type {};
