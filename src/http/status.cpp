#include "lancer/http/status.hpp"

// Workaround: Boost 1.81's beast/http/status.hpp uses std::ostream without including it.
#include <ostream>

#include <boost/beast/http/status.hpp>

#include "lancer/http/headers.hpp"

namespace lancer::http {

std::string_view code2status(unsigned code) noexcept {
  if (code < 100 || code > 599) return {};
  const auto reason =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(code));
  if (reason == "<unknown-status>") return {};
  return {reason.data(), reason.size()};
}

unsigned status2code(std::string_view reason) noexcept {
  if (reason.empty()) return 0;
  for (unsigned code = 100; code < 600; ++code) {
    if (iequals(code2status(code), reason)) return code;
  }
  return 0;
}

std::string_view default_methods() noexcept {
  return "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH";
}

}  // namespace lancer::http
