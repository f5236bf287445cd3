// Content negotiation on Accept (RFC 9110 12.5.1): which of the media types a handler can
// produce the client prefers.
//
//   static constexpr std::string_view k_offered[] = {"application/json", "text/html"};
//   const auto best = lancer::http::negotiate(req.headers(), k_offered);
//   if (!best) { /* 406 */ }
//   else if (*best == 0) { /* JSON */ } else { /* HTML */ }
//
// The rules:
// - Each media range (`type/subtype`, `type/*`, `*/*`, with parameters) carries a weight
//   `q=` (0 to 1, three decimals at most; 1 when absent). An offered type gets the weight of
//   the most specific range that matches it: a type/subtype beats type/*, which beats */*,
//   and a range with parameters (`text/html;level=1`, which matches only an offered type with
//   those parameters) beats the same range with fewer. Among equally specific ranges the
//   first counts. An offered type that no range matches is not acceptable, nor is one whose
//   weight is 0.
// - The best offered type has the highest weight; a tie goes to the one offered first (the
//   server's preference).
// - A malformed range (no '/', an empty or `*`/subtype part, a bad token, a parameter that
//   is not `name=token` or `name="quoted string"`) or one with a malformed q (`q=2`,
//   `q=0.1234`, `q=abc`) is ignored, as if absent: never read as q=1. An Accept that is
//   absent, empty or holds no well-formed range at all accepts anything: the first offered
//   type wins.
// - Type, subtype and parameter names compare case-insensitively; parameter values too (after
//   unwrapping a quoted string).
// - Several Accept fields count as one list. The work is linear in the fields' size times the
//   number of offered types, and allocates nothing.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

#include "lancer/http/headers.hpp"

namespace lancer::http {

// The index in `offered` (media types such as "application/json" or "text/html;level=1") of
// the type the Accept value `accept_value` prefers, or nullopt if none is acceptable (406).
std::optional<std::size_t> negotiate(std::string_view accept_value,
                                     std::span<const std::string_view> offered) noexcept;
// The same over every Accept field of `h` (none: the first offered type).
std::optional<std::size_t> negotiate(const headers& h,
                                     std::span<const std::string_view> offered) noexcept;

// Whether the Accept fields of `h` accept the media type `type` (weight above 0). True if
// there is no Accept field.
bool accepts(const headers& h, std::string_view type) noexcept;

}  // namespace lancer::http
