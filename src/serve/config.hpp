// lancer-serve's configuration: its command-line flags and its TOML file (--config FILE).
//
// Every flag is also a top-level key of the same name, without the dashes: `threads = 2`,
// `access-log = "/var/log/lancer/access.log"`, `listen = ["tcp/*4:80", "unix/run/l.sock"]`
// (a flag that may be repeated takes an array), `autoindex = true` (a flag without a value
// takes a boolean), and a flag that takes KEY=VALUE takes a table: `proxy = { "/api/" =
// "tcp/10.0.0.2:8080" }`. Flags override the file: a repeatable flag given on the command
// line replaces the file's whole list. Beyond the flags, the file has [limits], [[host]]
// (with [[host.route]]) and [[module]] (see the README's "Configuration" section). An error
// names the file, the line and the column, and what was expected; an unknown key is one.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "lancer/http/access_log.hpp"
#include "lancer/http/files.hpp"
#include "lancer/http/request.hpp"
#include "lancer/log.hpp"
#include "lancer/ws/socket.hpp"

namespace lancer_serve {

namespace http = lancer::http;

// Where a setting came from, for its error: "FILE:LINE:COLUMN" or "--flag".
struct origin {
  std::string file;  // "" for the command line
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string flag;  // the flag, for the command line

  std::string str() const;
};

class config_error : public std::runtime_error {
 public:
  explicit config_error(const std::string& what, bool command_line = false)
      : std::runtime_error(what), command_line_(command_line) {}
  // Whether the error is the command line's (lancer-serve then exits 2 with its usage).
  bool command_line() const noexcept { return command_line_; }

 private:
  bool command_line_;
};

// A route of a host: requests whose path starts with `prefix` go to a static root, a proxy's
// upstream or a CGI directory.
struct route_config {
  enum class kind { files, proxy, cgi };
  kind what = kind::files;
  std::string prefix = "/";
  std::string target;          // the root, the upstream's address, or the CGI directory
  http::static_options files;  // for a root
  // A proxy's wait for its upstream's answer, a CGI script's whole run (seconds; < 0: the
  // default), and a proxy's connect.
  double timeout = -1;
  double connect_timeout = -1;
  origin where;
};

struct host_config {
  std::string names;  // "" for the any host
  bool no_fallback = false;
  std::vector<route_config> routes;
  origin where;
};

struct module_config {
  std::string path;
  std::string host;  // "" for the any host
  origin where;
};

struct config {
  // --- the flags (and top-level keys) ---
  std::vector<std::string> listen;
  std::vector<std::pair<std::string, std::string>> forward;  // LISTEN, UPSTREAM
  std::vector<std::pair<std::string, std::string>> cgi;      // PREFIX, DIR
  std::vector<std::pair<std::string, std::string>> proxy;    // PREFIX, UPSTREAM
  std::string root;
  http::static_options files;  // --root's
  std::string pid_file;
  std::string access_log = "-";
  http::log_format access_log_format = http::log_format::combined;
  lancer::log_level level = lancer::log_level::info;
  int drain_seconds = 10;
  double drain_delay_seconds = 0;
  bool systemd = false;
  bool reuse_port = false;
  int threads = 1;
  lancer::ws::options ws;  // /ws
  std::string health;      // the health endpoint's path ("" for none)
  std::string metrics;     // the metrics endpoint's path ("" for none)
  std::vector<std::string> trusted_proxies;
  bool no_reload = false;

  // --- the file's own ---
  http::limits limits;
  std::vector<std::pair<unsigned, std::string>> error_pages;  // status, file
  std::vector<host_config> hosts;
  std::vector<module_config> modules;

  // Where each part came from, for errors found when it is used (an address, a directory).
  std::vector<std::pair<std::string, origin>> origins;  // key, where
  origin where_of(const std::string& key) const;
};

// What the command line says beyond the settings.
struct command_line {
  std::string config_file;                                 // --config
  bool test_only = false;                                  // -t
  std::vector<std::pair<std::string, std::string>> flags;  // flag (without dashes), value
};

// Parses argv. --help prints the usage and exits 0; a malformed command line prints the
// problem and the usage and exits 2.
command_line parse_command_line(int argc, char** argv);

// The configuration: the file's (if any), then the command line's flags over it. Throws
// config_error naming the file, line and column (or the flag) and what was expected.
config load(const command_line& cl);

// The usage text.
const char* usage();

}  // namespace lancer_serve
