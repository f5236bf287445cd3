// A test module (http/module_tests.cpp) whose registration throws: every time when built with
// THROW_FROM=1, from its second time on (load_module's own is the first) with THROW_FROM=2.
#include <stdexcept>

#include "lancer/http/module.hpp"

namespace {
int registrations = 0;  // a static of the module: starts again with each copy loaded
}  // namespace

LANCER_MODULE(reg) {
  reg.routes().get("/half", [](lancer::http::context& x) { return x.error(500); });
  if (++registrations >= THROW_FROM) throw std::runtime_error("refusing to register, as told");
}
