// A router route that speaks WebSocket.
//
//   app.get("/rooms/{room}", ws::route([](http::context& x, ws::socket& s) -> lancer::task<> {
//     while (auto m = co_await s.read()) co_await s.send(*m);  // x.param("room") stays valid
//   }));
//
// A request for the route that is not a WebSocket handshake gets 426 (ws::accept), and so do
// other methods routed to it. The handler runs once the handshake is done; the connection
// closes when it returns.
#pragma once

#include <functional>
#include <memory>
#include <utility>

#include "lancer/http/router.hpp"
#include "lancer/sched/task.hpp"
#include "lancer/ws/socket.hpp"

namespace lancer::ws {

using route_handler = std::function<task<>(http::context&, socket&)>;

namespace detail {
struct route_state {
  route_handler h;
  options o;
};
// A coroutine of its own (not a capturing lambda's): the state is a parameter, kept in the
// coroutine's frame for as long as the socket runs.
inline task<> run_route(std::shared_ptr<const route_state> st, http::context& x) {
  std::unique_ptr<socket> s = co_await accept(x.conn(), x.req(), st->o);
  if (!s) co_return;
  co_await st->h(x, *s);
}
}  // namespace detail

inline http::route_handler route(route_handler h, options o = {}) {
  auto st =
      std::make_shared<const detail::route_state>(detail::route_state{std::move(h), std::move(o)});
  return [st](http::context& x) { return detail::run_route(st, x); };
}

}  // namespace lancer::ws
