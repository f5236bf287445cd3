// One line per event: `[2026-11-21 23:40:00.670 INFO conn/42] closed after 3 requests`.
//
// Logging sits below every layer so that the scheduler, the core and httputil all write the
// same format. Lines go to stderr by default; `set_log_sink` redirects them (tests capture them,
// lancer-serve writes to a file). Formatting happens only when the level is enabled.
#pragma once

#include <fmt/core.h>

#include <functional>
#include <string_view>

namespace lancer {

enum class log_level : unsigned char { debug, info, warn, error, off };

// Returns "DEBUG", "INFO", "WARN", "ERROR" or "OFF".
std::string_view to_string(log_level level) noexcept;

// Parses "debug", "info", "warn", "error" or "off"; returns false and leaves `out` alone otherwise.
bool parse_log_level(std::string_view text, log_level& out) noexcept;

// Lines below this level are dropped before they are formatted. Default: info.
void set_log_level(log_level level) noexcept;
log_level get_log_level() noexcept;

// Receives each finished line, without its trailing newline. An empty function restores the
// default sink (stderr). Not thread-safe against concurrent logging: set it at start-up.
using log_sink = std::function<void(log_level, std::string_view line)>;
void set_log_sink(log_sink sink);

namespace detail {
void log_write(log_level level, std::string_view who, fmt::string_view format,
               fmt::format_args args);
}  // namespace detail

// Writes one line if `level` is enabled. `who` names the subject: "server", "conn/42", "sched".
template <class... Args>
void log(log_level level, std::string_view who, fmt::format_string<Args...> format,
         Args&&... args) {
  if (level < get_log_level()) return;
  detail::log_write(level, who, format, fmt::make_format_args(args...));
}

}  // namespace lancer
