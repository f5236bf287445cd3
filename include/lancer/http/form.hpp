// Form bodies: a request's application/x-www-form-urlencoded body as lancer::http::params.
//
//   const auto form = co_await lancer::http::read_form(c, req);
//   if (!form) co_return;                                    // answered already: 415/400/413
//   const std::string_view user = form->get("user").value_or("");
#pragma once

#include <optional>

#include "lancer/core/connection.hpp"
#include "lancer/http/request.hpp"
#include "lancer/http/url.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

// Reads the body of `req` (read_body, under `lim`) and parses it into `into` (see params:
// at most params::default_max_pairs pairs). Returns true, or false after answering the request
// (req.answered() is true):
// - 415 Unsupported Media Type, before reading the body, unless the Content-Type is
//   `application/x-www-form-urlencoded` (any case, any parameters);
// - 400 with a short text on a bad %-escape, a NUL, or too many pairs;
// - what read_body answers when the body cannot be read (see read_json).
// `into` keeps its capacity: a handler that reuses one parses forms without allocating.
task<bool> read_form(connection& c, request& req, params& into, const limits& lim = {});

// The same, into a new params; nullopt after an answer.
task<std::optional<params>> read_form(connection& c, request& req, const limits& lim = {});

}  // namespace lancer::http
