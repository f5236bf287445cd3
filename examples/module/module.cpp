// examples/module: a handler module, a shared object that lancer-serve loads at run time and
// loads again when the file changes (include/lancer/http/module.hpp has the contract).
//
// meson builds it as examples/libmodule.so in the build directory. To serve it:
//
//   # lancer-serve.toml
//   [[module]]
//   path = "build/dev/examples/libmodule.so"
//
//   lancer-serve --config lancer-serve.toml --listen tcp/$4:8080
//   curl -i http://127.0.0.1:8080/module/hello     # "hello from module version 1", X-Module
//
// Change `k_version` below and rebuild (ninja -C build/dev examples/libmodule.so): within a
// second lancer-serve loads the new file, and new requests get the new answer, while requests
// already running finish on the old code. A version that fails to load keeps the old one.
//
// A module is built against lancer's headers only (meson: a shared_module with
// lancer_module_dep); lancer's functions come from the program that loads it.
#include <fmt/format.h>

#include <string_view>

#include "lancer/http/module.hpp"

namespace {

constexpr std::string_view k_version = "1";

// GET /module/hello[?name=...]: a greeting that says which version of the module answered.
lancer::task<> hello(lancer::http::context& x) {
  const std::string_view name = x.query_params().get("name").value_or("world");
  const std::string body = fmt::format("hello {}, from module version {}\n", name, k_version);
  co_await x.respond(200, "text/plain; charset=utf-8", body);
}

// Middleware: every answer, the program's routes' too, says which module version saw it.
lancer::task<> tag(lancer::http::context& x, const lancer::http::route_handler& next) {
  x.fields().add("X-Module", fmt::format("example/{}", k_version));
  co_await next(x);
}

}  // namespace

// The entry point: registration only (the routes on the host the configuration mounts the
// module on, the middleware on the whole router). It may run more than once: once per worker
// thread's router, and once when the module is loaded, to check it.
LANCER_MODULE(reg) {
  reg.routes().get("/module/hello", hello);
  reg.app().use(tag);
}
