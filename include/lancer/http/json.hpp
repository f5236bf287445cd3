// JSON bodies with Boost.JSON: read a request's, answer with one. Thin helpers, not a JSON
// library: the values are boost::json::value.
//
//   lancer::task<> create(lancer::connection& c, lancer::http::request& req, ...) {
//     const auto doc = co_await lancer::http::read_json(c, req);
//     if (!doc) co_return;                                   // answered already: 415/400/413
//     boost::json::object out;
//     out["name"] = doc->at("name");
//     co_await lancer::http::respond_json(c, req, 201, out);
//   }
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <boost/json/value.hpp>

#include "lancer/core/connection.hpp"
#include "lancer/http/request.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

// How deeply read_json lets arrays and objects nest; deeper documents are refused (400), so a
// small body of brackets cannot make the parser's work or stack grow without bound.
inline constexpr std::size_t json_max_depth = 64;

// Whether a Content-Type value names JSON: `application/json` or any `type/subtype+json`
// (`application/problem+json`), in any case, with any parameters (`; charset=utf-8`).
bool is_json_type(std::string_view content_type) noexcept;

// Reads the body of `req` (read_body, under `lim`) and parses it as one JSON text (RFC 8259:
// UTF-8, no comments, no trailing commas, nesting at most json_max_depth). Returns the value,
// or nullopt after answering the request (req.answered() is true):
// - 415 Unsupported Media Type, before reading the body, unless is_json_type(Content-Type);
// - 400 for an empty body or bad JSON, with a short text naming the error and its byte offset;
// - what read_body answers when the body cannot be read (413 for a chunked body above
//   `lim.body`, 408, 400); a Content-Length above the limit was answered 413 before the
//   handler ran.
// The value owns its memory (it outlives the request's buffer), typically a few times the
// body's size at most.
task<std::optional<boost::json::value>> read_json(connection& c, request& req,
                                                  const limits& lim = {});

// Answers `req` with `status` and `v` serialized (boost::json::serialize) as the body, with
// Content-Type `application/json`.
task<> respond_json(connection& c, request& req, unsigned status, const boost::json::value& v);

}  // namespace lancer::http
