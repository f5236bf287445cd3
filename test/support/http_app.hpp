// The HTTP app the tests share, and a driver that feeds a server its input in pieces.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace lancer_test {

// GET /plaintext answers "Hello, World!"; /echo answers any method with the request body;
// /fields answers with the fields it was sent, one "name=value" per line (so a field read
// wrong shows); anything else is 404.
inline lancer::task<> http_app(lancer::connection& c, lancer::http::request& req, lancer::frame&,
                               lancer::pubframe&) {
  namespace http = lancer::http;
  const std::string_view path = req.target().substr(0, req.target().find('?'));
  if (path == "/plaintext") {
    co_await http::respond(c, req, 200, "text/plain", "Hello, World!");
  } else if (path == "/echo") {
    const auto body = co_await http::read_body(c, req);
    if (body) co_await http::respond(c, req, 200, "application/octet-stream", *body);
  } else if (path == "/fields") {
    std::string out;
    for (const http::headers::field f : req.headers()) {
      out.append(f.name).append("=").append(f.value).append("\n");
    }
    co_await http::respond(c, req, 200, "text/plain", out);
  } else {
    co_await http::respond(c, req, 404, "text/plain", "Not Found\n");
  }
}

// What a server sends, made comparable across runs: each Date value becomes "-" (it follows
// the wall clock) and interim "100 Continue" responses are dropped (one is sent only when
// the body has not arrived yet, which depends on how the input was split).
inline std::string comparable(std::string out) {
  for (std::size_t at = out.find("\r\nDate: "); at != std::string::npos;
       at = out.find("\r\nDate: ", at + 1)) {
    const std::size_t value = at + 8;
    const std::size_t end = out.find("\r\n", value);
    if (end == std::string::npos) break;
    out.replace(value, end - value, "-");
  }
  static constexpr std::string_view k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
  for (std::size_t at = out.find(k_continue); at != std::string::npos; at = out.find(k_continue))
    out.erase(at, k_continue.size());
  return out;
}

// The status code of the response at the start of `reply` (0 if it is not one).
inline unsigned status_of(const std::string& reply) {
  if (reply.rfind("HTTP/1.1 ", 0) != 0 || reply.size() < 12) return 0;
  return static_cast<unsigned>(std::stoi(reply.substr(9, 3)));
}

// Everything after the first response's header.
inline std::string body_of(const std::string& reply) {
  const std::size_t at = reply.find("\r\n\r\n");
  return at == std::string::npos ? "" : reply.substr(at + 4);
}

// A fresh server `h` on the fake source, with a manual clock, gets `input` cut at the byte
// offsets in `cuts` (ascending; each piece after the server has done all it can with the
// previous one), then a half-close; returns all it sent back, made
// comparable. `settle`, if given, runs before the last read, with the scheduler and server
// (to move time past every timeout and check that no connection is left, say).
inline std::string run_server_split(
    const lancer::server::handler& h, std::string_view input, std::span<const std::size_t> cuts,
    const std::function<void(lancer::scheduler&, lancer::server&)>& settle = {}) {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, h};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  lancer::fake_client client = fake.connect();
  std::string out;
  std::size_t from = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t to = i < cuts.size() ? std::min(cuts[i], input.size()) : input.size();
    if (to > from) client.write(input.substr(from, to - from));
    from = std::max(from, to);
    sched.run_until_idle();
    out += client.read();
  }
  client.shutdown_write();
  sched.run_until_idle();
  out += client.read();
  if (settle) settle(sched, srv);
  return comparable(out + client.read());
}

// run_server_split for a request handler, served by http::serve under `lim`.
inline std::string run_app_split(const lancer::http::request_handler& h, std::string_view input,
                                 std::span<const std::size_t> cuts,
                                 const lancer::http::limits& lim = {}) {
  return run_server_split(lancer::http::serve(h, lim), input, cuts);
}

inline std::string run_split(std::string_view input, std::span<const std::size_t> cuts,
                             const lancer::http::limits& lim = {}) {
  return run_app_split(http_app, input, cuts, lim);
}

}  // namespace lancer_test
