// Everything an HTTP app is written with, in one include: the router and its context, the
// request helpers (url, form, cookies, accept), JSON bodies, the test client and run().
// The context overloads below answer through the context, so its extra fields go out too.
//
//   app.post("/items", [](lancer::http::context& x) -> lancer::task<> {
//     auto item = co_await lancer::http::read_json(x);
//     if (!item) co_return;  // answered: 415, 400 or 413
//     x.fields().add("Location", "/items/1");
//     co_await lancer::http::respond_json(x, 201, *item);
//   });
#pragma once

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "lancer/http/accept.hpp"
#include "lancer/http/cookies.hpp"
#include "lancer/http/form.hpp"
#include "lancer/http/json.hpp"
#include "lancer/http/router.hpp"
#include "lancer/http/run.hpp"
#include "lancer/http/test_client.hpp"
#include "lancer/http/url.hpp"

namespace lancer::http {

// read_json(c, req, lim) for the context's request, under the router's limits.
inline task<std::optional<boost::json::value>> read_json(context& x) {
  return read_json(x.conn(), x.req(), x.read_limits());
}

// Answers with `v` as application/json, and the context's extra fields.
inline task<> respond_json(context& x, unsigned status, const boost::json::value& v) {
  const std::string text = boost::json::serialize(v);
  return x.respond(status, "application/json", text);  // written before it returns
}

// read_form(c, req, lim) for the context's request, under the router's limits.
inline task<std::optional<params>> read_form(context& x) {
  return read_form(x.conn(), x.req(), x.read_limits());
}

// The request's cookie called `name`.
inline std::optional<std::string_view> cookie(const context& x, std::string_view name) {
  return cookie(x.req().headers(), name);
}

}  // namespace lancer::http
