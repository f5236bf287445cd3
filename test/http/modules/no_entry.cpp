// A test module (http/module_tests.cpp) without an entry point: a shared object, not a module.
extern "C" [[gnu::visibility("default")]] int lancer_not_a_module() {
  return 42;
}
