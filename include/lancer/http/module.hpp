// lancer::http handler modules: routes and hooks in a shared object, loaded (and loaded again
// when it changes) while the program runs.
//
// In the module (built as a shared object against lancer's headers, not its library):
//
//   #include "lancer/http/module.hpp"
//   LANCER_MODULE(reg) {
//     reg.routes().get("/hello", [](lancer::http::context& x) -> lancer::task<> {
//       co_await x.respond(200, "text/plain", "hello from a module\n");
//     });
//     reg.app().use(add_a_header);  // before(), use(), on_loaded(), error_page()
//   }
//
// In the program that loads it:
//
//   std::shared_ptr<const http::loaded_module> m = http::load_module("mods/libhello.so");
//   http::router app;                        // the program's own routes, then the module's
//   http::module_registry reg{app, app.any()};
//   m->register_into(reg);
//   // keep `m` while anything made from `app` lives (its handler, requests in flight)
//   ...
//   if (m->changed_on_disk()) { try { m2 = http::load_module(m->path()); } catch ... }
//
// Loading. load_module copies the file's bytes into memory of its own (a memfd) and loads that
// copy, so loading the same path again after the file changed gives the new code, while the
// old copy stays loaded for whoever still holds it; the copy is unloaded (dlclose) when the last
// shared_ptr to it goes. Symbols are resolved at once (RTLD_NOW) and kept to the module
// (RTLD_LOCAL): two versions of a module live side by side. The module's own undefined
// symbols (lancer's functions, fmt's) resolve against the program: a program that loads
// modules links lancer whole and exports its symbols (meson: link_whole and export_dynamic).
//
// The entry point. LANCER_MODULE(reg) { ... } defines `lancer_module_entry`, an extern "C"
// object holding module_abi as the module was built and the registration function. A module
// built for another module_abi is refused. The function catches nothing: the loader turns its
// exception into a module_error.
//
// What a module may do, and may not. Everything the module's code made must be gone before the
// copy is unloaded, and the loader cannot see most of it, so:
//   - its registration only registers (routes, hooks, middleware, error pages) into the router
//     it is given; it may run several times (once per router built with it: a worker thread
//     each, maybe at the same time on several OS threads), and once more inside load_module;
//   - nothing it registers may be kept beyond that router (the router, the handler made from
//     it and the requests in flight on it hold the handlers; whoever holds those holds the
//     module too), and the last shared_ptr must not be dropped by the module's own code;
//   - no values of its own types in a frame or pubframe (on_loaded's included), nor a
//     scheduler::local<T> with T of its own: those outlive the router, and their destructors
//     and type keys are the module's code and data;
//   - statics of the module are its own, destroyed at unload; shared by the module's every
//     router, so by several OS threads; a thread_local with a destructor keeps the copy loaded
//     until its thread ends;
//   - an OS thread it starts ends before the module is unloaded (before the last request
//     on it ends), and nothing of it is left registered elsewhere (signal handlers, atexit).
//
// Replacing a module's file: write the new one beside it and rename it over the old one. A
// file caught while it is being written (truncated, half-copied) is refused by load_module
// (module_error), never loaded: the loader checks that the ELF image is whole before loading
// it, and that the file did not change while it was read. A caller polling the file tries
// again once its file_state changes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "lancer/http/router.hpp"

namespace lancer::http {

// The module interface's version: bumped whenever module_registry, module_entry or what a
// module reaches through them (router, site, context, task, the handler types) changes shape.
inline constexpr std::uint32_t module_abi = 1;

// What a module's entry point is given: where its routes go, and the router for its hooks.
class module_registry {
 public:
  // `routes` is a host of `app` (app.any(), or app.host(names)): the module's routes go there.
  module_registry(router& app, site& routes) noexcept : app_(&app), routes_(&routes) {}

  // The host the module is mounted on.
  site& routes() noexcept { return *routes_; }
  // The whole router: before(), use(), on_loaded(), error_page(), other hosts.
  router& app() noexcept { return *app_; }

 private:
  router* app_;
  site* routes_;
};

// The entry point's layout, which every module_abi keeps: `abi` first.
struct module_entry {
  std::uint32_t abi;                          // module_abi when the module was built
  void (*register_routes)(module_registry&);  // the body of LANCER_MODULE
};

// A module that cannot be loaded or registered. what() names the file and the reason.
class module_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file's identity and version, as stat(2) gives them: a change of any of them is a change
// of the file (a rename over it changes the inode; a write in place, the size or mtime). A
// write in place that keeps the size within one tick of the file system's clock goes unseen:
// replace a module by renaming a new file over it.
struct file_state {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;

  friend bool operator==(const file_state&, const file_state&) = default;
};

// The file's state now (following symlinks), or nullopt if it cannot be stat'ed (missing).
std::optional<file_state> file_state_of(const std::filesystem::path& file) noexcept;

// A module loaded from a file: its private copy of the code, unloaded with the last reference.
class loaded_module {
 public:
  ~loaded_module();
  loaded_module(const loaded_module&) = delete;
  loaded_module& operator=(const loaded_module&) = delete;

  // The path it was loaded from, as given to load_module.
  const std::filesystem::path& path() const noexcept { return path_; }
  // The file as it was when its bytes were read.
  const file_state& state() const noexcept { return state_; }
  // Whether the file at path() is not the one loaded any more (changed, replaced or gone).
  bool changed_on_disk() const noexcept { return file_state_of(path_) != state_; }

  // Runs the module's entry point with `reg`. An exception from it becomes a module_error
  // naming the module and the exception's what(); the router may then hold part of the
  // module's registrations: throw it away. The router's handlers, and requests on them, need
  // this module loaded: keep the shared_ptr as long as they live.
  void register_into(module_registry& reg) const;

 private:
  friend std::shared_ptr<const loaded_module> load_module(const std::filesystem::path&);
  loaded_module(std::filesystem::path path, file_state state, int fd, void* handle,
                const module_entry* entry) noexcept;

  std::filesystem::path path_;
  file_state state_;           // of the file when read
  int fd_;                     // the memfd holding the copy (its name is unique while open)
  void* handle_;               // dlopen's
  const module_entry* entry_;  // in the copy
};

// Loads the module at `file`: copies it, checks the ELF image is whole, dlopens the copy,
// finds the entry point and checks its module_abi, and runs its registration once into a
// router of its own (then thrown away), so that a module which throws at registration is
// refused here. Throws module_error naming the file and the reason (cannot be read, not a
// whole ELF image, changed while read, dlerror()'s text, no entry point, another module_abi,
// the registration's exception). Several threads may load at once.
std::shared_ptr<const loaded_module> load_module(const std::filesystem::path& file);

}  // namespace lancer::http

// Defines the module's entry point; the braces that follow are its registration, with `reg`
// (a module_registry&). At namespace scope, once per module.
#define LANCER_MODULE(reg)                                                         \
  static void lancer_module_register_(::lancer::http::module_registry& reg);       \
  extern "C" [[gnu::visibility("default"),                                         \
               gnu::used]] const ::lancer::http::module_entry lancer_module_entry{ \
      ::lancer::http::module_abi, &lancer_module_register_};                       \
  static void lancer_module_register_(::lancer::http::module_registry& reg)
