// Upgrades (RFC 9110 7.8): a request that asks to switch protocols goes to the upgrade
// registered for its protocol, before the request handler sees it.
//
//   http::upgrades up;
//   up.add("websocket", [](connection& c, http::request& req, frame&, pubframe&) -> task<> {
//     auto ws = co_await ws::accept(c, req);  // 101, or an HTTP error answered
//     if (!ws) co_return;
//     while (auto m = co_await ws->read()) co_await ws->send(*m);
//   });
//   server srv{sched, http::serve(routes, {}, {}, std::move(up))};
//
// The rules serve() follows:
// - A request asks for an upgrade when it is HTTP/1.1 (an HTTP/1.0 request's Upgrade is
//   ignored, as RFC 9110 7.8 says), its Connection field has the `upgrade` option, and its
//   Upgrade field lists protocols. The first protocol listed that has an upgrade here wins;
//   the comparison is case-insensitive, on the name before any "/version" unless the
//   registered token has a version itself.
// - An unknown protocol is ignored: the request goes to the request handler and is answered
//   over HTTP/1.1, as if it had no Upgrade field. RFC 9110 7.8 lets a server ignore an
//   upgrade it does not want, and 426 means the opposite (this resource needs an upgrade the
//   client did not ask for), so 426 is what a WebSocket-only resource answers to a plain
//   request (ws::accept does), not what an unknown token gets. `h2c` is one such unknown
//   token: HTTP/2 over cleartext is not served, and add() refuses it.
// - The upgrade answers the request like any handler (then the connection goes on with HTTP,
//   keep-alive as usual), or writes 101 Switching Protocols and calls switched_protocols():
//   the connection then leaves the HTTP loop for good: no more requests, request timeouts or
//   pipelining, and it closes when the upgrade returns. Bytes the client sent right after
//   the request stay buffered for the new protocol.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lancer/core/connection.hpp"
#include "lancer/core/frame.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

class request;

using upgrade_handler = std::function<task<>(connection&, request&, frame&, pubframe&)>;

class upgrades {
 public:
  // Registers `h` for the protocol `token` (`websocket`, `foo/2`). Throws
  // std::invalid_argument for a token that is not an RFC 9110 token (an optional
  // "/version" included), for `h2c`, and for a protocol registered twice.
  upgrades& add(std::string_view token, upgrade_handler h);
  // The upgrade `req` asks for and this registry has, or nullptr.
  const upgrade_handler* find(const request& req) const noexcept;
  bool empty() const noexcept { return entries_.empty(); }

 private:
  std::vector<std::pair<std::string, upgrade_handler>> entries_;
};

// Whether `req` asks to switch to `protocol` (HTTP/1.1, `Connection: upgrade`, and
// `protocol` among the Upgrade field's protocols, compared as find() does).
bool asks_upgrade(const request& req, std::string_view protocol) noexcept;

// Called by an upgrade once it has written `101 Switching Protocols` for `req` itself: the
// request is logged (the server's access hook sees status 101), its bytes leave the inbound
// buffer (what the client sent after it stays, for the new protocol; the request's views are
// empty from then on), and the HTTP timeouts are cleared. When the upgrade returns, the
// connection closes. Throws std::logic_error if the request's body was not read.
void switched_protocols(connection& c, request& req);

}  // namespace lancer::http
