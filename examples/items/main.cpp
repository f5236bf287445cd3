// Serves the items app: build/release/examples/items/items [ADDRESS...] (default
// tcp/127.0.0.1:8080).
#include "items.hpp"

int main(int argc, char** argv) {
  lancer::http::run_options o;
  if (argc > 1) o.listen.assign(argv + 1, argv + argc);
  return lancer::http::run(items::handler(), o);
}
