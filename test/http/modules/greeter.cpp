// A test module (http/module_tests.cpp), built as version GREETER_VERSION (1 or 2): answers
// GET /greet with its version, POST /slow with its version and the body once it has come
// whole, and adds X-Greeter to every answer.
#include <string>

#include "lancer/http/module.hpp"

#ifndef GREETER_VERSION
#error "GREETER_VERSION must be defined"
#endif

#define GREETER_STRING_(x) #x
#define GREETER_STRING(x) GREETER_STRING_(x)

namespace {
constexpr const char* k_version = "v" GREETER_STRING(GREETER_VERSION);
}  // namespace

LANCER_MODULE(reg) {
  reg.routes().get("/greet", [](lancer::http::context& x) -> lancer::task<> {
    co_await x.respond(200, "text/plain", std::string("greeter ") + k_version + "\n");
  });
  reg.routes().post("/slow", [](lancer::http::context& x) -> lancer::task<> {
    const auto body = co_await x.body();  // waits for the whole body
    if (!body) co_return;
    co_await x.respond(200, "text/plain", std::string(k_version) + " got " + std::string(*body));
  });
  reg.app().use(
      [](lancer::http::context& x, const lancer::http::route_handler& next) -> lancer::task<> {
        x.fields().add("X-Greeter", k_version);
        co_await next(x);
      });
}
