// What lancer-serve serves, made from its configuration: the hosts and their routes, the
// built-in routes, the modules, the health and metrics endpoints, as one http::service per
// worker thread. A reload makes new services and puts them in each worker's service_slot;
// requests in flight finish on the old ones.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/metrics.hpp"
#include "lancer/http/module.hpp"

namespace lancer_serve {

// The process's state that the services use and that no reload replaces.
struct runtime {
  std::atomic<bool> draining{false};  // the health endpoint says 503 once set
  http::metrics metrics;
  http::access_hook log_request;  // the access log's and the metrics' hooks, or empty
};

// The handler modules in use, by path: the version loaded last that registered, and the state
// of the file the last attempt read (so a broken file is tried again only once it changes).
class module_set {
 public:
  // Makes sure every module `c` names is loaded: loads a module not loaded yet, and loads again
  // one whose file changed (unless `reload_changed` is false). A module that fails to load or
  // to register keeps its previous version, with a log line naming the file and the reason;
  // with no previous version, `strict` makes that a config_error, else the module is left out.
  // Modules `c` no longer names are forgotten (the services still using them keep them).
  // Returns whether a module was loaded (anew or again).
  bool update(const config& c, bool reload_changed, bool strict);

  // Whether a module's file changed since it was loaded (or since the last attempt failed).
  bool any_changed() const;

  std::shared_ptr<const http::loaded_module> get(const std::string& path) const;

 private:
  struct entry {
    std::shared_ptr<const http::loaded_module> current;
    std::optional<http::file_state> tried;  // the file as the last attempt read it
  };
  std::map<std::string, entry> modules_;
};

// Builds one worker's service from `c`. Throws config_error (naming the part of the file) for
// what the configuration names but cannot be: a root or CGI directory that is not one, an
// error page that cannot be read, a bad host name, a route given twice.
std::shared_ptr<const http::service> make_service(const config& c, const module_set& modules,
                                                  runtime& rt);

}  // namespace lancer_serve
