// A test module (http/module_tests.cpp) that needs a symbol no program defines: dlopen refuses
// it (symbols are bound at load).
#include "lancer/http/module.hpp"

extern "C" void lancer_test_defined_nowhere();

LANCER_MODULE(reg) {
  (void)reg;
  lancer_test_defined_nowhere();
}
