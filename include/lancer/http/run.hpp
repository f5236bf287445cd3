// lancer::http::run: serves an app on real addresses until SIGINT or SIGTERM, then drains.
//
//   int main() {
//     lancer::http::router app;
//     app.get("/", [](lancer::http::context& x) { return x.respond(200, "text/plain", "hi\n"); });
//     return lancer::http::run(app.handler(), {.listen = {"tcp/127.0.0.1:8080"}});
//   }
//
// One scheduler on the calling thread. On SIGINT or SIGTERM the server stops taking
// connections, lets the requests in flight finish (up to `drain`; then what is left is cut
// off), calls `on_drained`, and run returns 0; a second SIGINT or SIGTERM stops at once. It
// returns 1, with the reason logged, if an address is malformed or cannot be listened on, or
// there is nothing to listen on.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/sched/clock.hpp"

namespace lancer::http {

struct run_options {
  // Where to listen: "tcp/HOST:PORT" or "unix/PATH" (io/address.hpp), or "systemd" for the
  // sockets systemd passed (socket activation).
  std::vector<std::string> listen = {"tcp/127.0.0.1:8080"};
  clock::duration drain = std::chrono::seconds(10);  // how long requests in flight may take
  std::function<void()> on_drained;                  // called once the drain is done
  std::function<void()> on_ready;                    // called once every address is listened on
  server_options server;
};

int run(server::handler h, run_options o = {});

}  // namespace lancer::http
