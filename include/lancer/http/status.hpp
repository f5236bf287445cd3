// HTTP status codes and their reason phrases (RFC 9110, section 15).
#pragma once

#include <string_view>

namespace lancer::http {

// The reason phrase for `code` ("Not Found" for 404), or "" for a code with none.
std::string_view code2status(unsigned code) noexcept;

// The code for a reason phrase, compared case-insensitively ("not found" -> 404), or 0.
unsigned status2code(std::string_view reason) noexcept;

// The methods lancer's own handlers accept by default: GET, HEAD, POST, PUT, DELETE, OPTIONS,
// PATCH, as an `Allow` header value.
std::string_view default_methods() noexcept;

}  // namespace lancer::http
