// Serves one of bench/router_table.hpp's two servers over TCP, for bench/router:
//
//   build/release/bench/router_serve direct|routed ADDRESS
#include <cstring>

#include "lancer/http/run.hpp"
#include "lancer/log.hpp"
#include "router_table.hpp"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  lancer::set_log_level(lancer::log_level::warn);
  lancer::http::run_options o;
  o.listen = {argv[2]};
  if (std::strcmp(argv[1], "direct") == 0)
    return lancer::http::run(lancer::http::serve(lancer_bench::direct), o);
  lancer::http::router r = lancer_bench::table();
  return lancer::http::run(r.handler(), o);
}
