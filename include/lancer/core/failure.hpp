// Whose doing a failure is: the peer's, or the server's own. One policy for every layer: the
// core logs a handler that ended by throwing with it, and httputil a request handler that
// threw. Operators page someone for ERROR lines, so only the server's own faults are ERROR;
// a client that resets, vanishes or runs into a deadline is INFO or DEBUG.
#pragma once

#include <exception>
#include <string>
#include <system_error>

#include "lancer/io/error.hpp"
#include "lancer/log.hpp"

namespace lancer {

struct failure {
  log_level level = log_level::error;  // how loud: ERROR only for the server's own faults
  bool peer = false;                   // the peer's doing (or a deadline), not the server's
  std::string what;                    // the exception's message, for the log line
  std::error_code code;                // a connection_error's code; empty otherwise
};

// Classifies a handler's exception: a connection_error is the peer's (INFO), `timed_out` and
// `cancelled` are deadlines and stops (DEBUG), anything else is the server's own (ERROR).
failure classify_failure(const std::exception_ptr& e) noexcept;

}  // namespace lancer
