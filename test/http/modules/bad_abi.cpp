// A test module (http/module_tests.cpp) that says it was built for another module_abi.
#include "lancer/http/module.hpp"

namespace {
void register_nothing(lancer::http::module_registry&) {}
}  // namespace

extern "C" [[gnu::visibility("default")]] const lancer::http::module_entry lancer_module_entry{
    lancer::http::module_abi + 1000, &register_nothing};
