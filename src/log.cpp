#include "lancer/log.hpp"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace lancer {
namespace {

std::atomic<log_level> g_level{log_level::info};
log_sink g_sink;  // empty: stderr

constexpr std::array<std::string_view, 5> k_names{"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

}  // namespace

std::string_view to_string(log_level level) noexcept {
  return k_names[static_cast<std::size_t>(level)];
}

bool parse_log_level(std::string_view text, log_level& out) noexcept {
  constexpr std::array<std::string_view, 5> lower{"debug", "info", "warn", "error", "off"};
  for (std::size_t i = 0; i < lower.size(); ++i) {
    if (text == lower[i]) {
      out = static_cast<log_level>(i);
      return true;
    }
  }
  return false;
}

void set_log_level(log_level level) noexcept {
  g_level.store(level, std::memory_order_relaxed);
}
log_level get_log_level() noexcept {
  return g_level.load(std::memory_order_relaxed);
}
void set_log_sink(log_sink sink) {
  g_sink = std::move(sink);
}

namespace detail {

void log_write(log_level level, std::string_view who, fmt::string_view format,
               fmt::format_args args) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t secs = system_clock::to_time_t(now);
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  localtime_r(&secs, &tm);

  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "[{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} {} {}] ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 millis, to_string(level), who);
  fmt::vformat_to(std::back_inserter(line), format, args);
  const std::string_view text(line.data(), line.size());
  if (g_sink) {
    g_sink(level, text);
  } else {
    // One fwrite per line keeps lines whole when several OS threads log at once.
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

}  // namespace detail
}  // namespace lancer
