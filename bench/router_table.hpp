// The two servers bench/router_bench and bench/router compare: a direct handler, and a
// 50-route table with hosts that routes the same request to a handler giving the same answer.
#pragma once

#include <string>

#include "lancer/http/router.hpp"

namespace lancer_bench {

namespace http = lancer::http;
using lancer::task;

inline const std::string k_request =
    "GET /api/v1/items/42 HTTP/1.1\r\nHost: api.example.com\r\n\r\n";

inline task<> direct(lancer::connection& c, http::request& req, lancer::frame&, lancer::pubframe&) {
  co_await http::respond(c, req, 200, "text/plain", "42");
}

inline task<> answer_id(http::context& x) {
  co_await x.respond(200, "text/plain", x.param("id"));
}

inline http::router table() {
  http::router r;
  const char* hosts[] = {"www.example.com, example.com", "*.api.example.com, api.example.com",
                         "~.static.example.com", "+.users.example.com", "admin.example.com"};
  const char* paths[] = {"/",
                         "/about",
                         "/api/v1/items",
                         "/api/v1/items/{id}",
                         "/api/v1/items/{id}/parts/{part}",
                         "/api/v1/users/{user}",
                         "/api/v2/items/{id}",
                         "/files/{path...}",
                         "/health"};
  for (const char* h : hosts) {
    http::site& s = r.host(h);
    for (const char* p : paths)
      s.get(p, answer_id);
  }
  for (const char* p : {"/", "/login", "/logout", "/search", "/assets/{path...}"})
    r.get(p, answer_id);
  return r;
}

}  // namespace lancer_bench
