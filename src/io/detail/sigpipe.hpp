// SIGPIPE, ignored once per process. Private to src/.
//
// A write to a pipe whose reader is gone, or a sendfile(2) to a socket whose peer left, must
// fail with EPIPE (a stream error), not kill the process: send() has MSG_NOSIGNAL, but write()
// on a pipe and sendfile() have no such flag. A disposition the program set itself (a handler,
// or SIG_IGN already) is left alone.
#pragma once

#include <csignal>

namespace lancer::detail {

inline void ignore_sigpipe() noexcept {
  static const bool done = [] {
    struct sigaction now {};
    if (::sigaction(SIGPIPE, nullptr, &now) == 0 && now.sa_handler == SIG_DFL &&
        (now.sa_flags & SA_SIGINFO) == 0) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
    return true;
  }();
  (void)done;
}

}  // namespace lancer::detail
