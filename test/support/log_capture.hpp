// Captures lancer's log lines for the lifetime of the object, so a test can check them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lancer/log.hpp"

namespace lancer_test {

struct log_capture {
  std::vector<std::string> lines;
  log_capture() {
    lancer::set_log_sink([this](lancer::log_level, std::string_view l) { lines.emplace_back(l); });
  }
  ~log_capture() { lancer::set_log_sink({}); }
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  // True if some line contains `what`.
  bool contains(std::string_view what) const {
    for (const auto& l : lines) {
      if (l.find(what) != std::string::npos) return true;
    }
    return false;
  }
};

}  // namespace lancer_test
