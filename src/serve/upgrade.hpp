// lancer-serve's binary upgrade: SIGUSR2 starts the binary at the path lancer-serve was started
// with, giving it this process's listening sockets; once the new process serves, this one
// drains and exits. The sockets never close, so no connection is refused: what the kernel
// queued meanwhile waits in the shared socket for whichever process accepts it.
//
//   old process                              new process (same path, same arguments)
//   SIGUSR2 -> spawn_upgrade ------------->  inherited_listeners(): LANCER_LISTENERS
//                                            its sources adopt the fds (lancer::fd_source)
//   reads the pipe: "ready"  <------------   notify_ready(): LANCER_UPGRADE_READY
//   keep_path() on Unix sources, drain, exit
//
// The handover travels in the environment:
//   LANCER_LISTENERS="fd:address;fd:address"  each HTTP listener's descriptor with its
//                     address as configured (--listen's text, "tcp/$4:0" before port 0 was
//                     resolved), in the old process's order: worker 0's, then worker 1's, ...
//   LANCER_UPGRADE_FROM=pid                   the old process
//   LANCER_UPGRADE_READY=fd                   the write end of a pipe; the new process writes
//                     one byte to it once its listeners and workers run, and closes it. The
//                     old process reads EOF without that byte if the new one ended first: it
//                     then reaps the child (no zombie) and serves on as if nothing happened.
//
// With --threads N, each worker has its own SO_REUSEPORT socket per TCP address: all of them
// are handed over, and the new process's worker i takes the i-th socket of each address. A
// new process with more threads opens sockets of its own for the extra workers (they join the
// port's SO_REUSEPORT group); one with fewer closes the surplus sockets with a log line, and
// a connection the kernel had queued on one of those is reset when the old process lets go
// of it too: upgrade with the same --threads for no refusal at all.
//
// What is not handed over: --forward's listeners (the new process opens its own, which fails
// without --reuse-port: the upgrade is then logged as failed and the old process serves on),
// and socket activation's (lancer-serve refuses SIGUSR2 there: systemd holds those sockets,
// and restarting the unit keeps them).
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lancer/core/source.hpp"
#include "lancer/io/address.hpp"

namespace lancer_serve {

// A listening socket and the address it was configured as ("tcp/$4:8080", as given).
struct listener {
  int fd = -1;
  std::string address;
};

// What a previous process handed over. Empty (from == 0) for a process started otherwise.
struct inheritance {
  pid_t from = 0;     // LANCER_UPGRADE_FROM
  int ready_fd = -1;  // LANCER_UPGRADE_READY
  std::vector<listener> listeners;
};

// Reads the handover from the environment and unsets its variables (so that no later child
// takes them). Each descriptor gets FD_CLOEXEC and is checked with SO_ACCEPTCONN: one that is
// not a listening socket is closed and left out, with an error log line.
inheritance inherited_listeners();

// Starts the program at `exe` (an absolute path, not /proc/self/exe, which names the file this
// process was loaded from even after it was replaced) with `argv` (argv[0] included) and this
// process's environment plus the handover variables. Only the descriptors of `listeners` and
// the pipe's write end stay open in the child (close-on-exec is cleared in the child alone,
// by posix_spawn's file actions); signal handlers are reset to their defaults there. Returns
// the child's pid and sets `ready_read` to the pipe's read end (close-on-exec). Throws
// std::system_error if the program cannot be started, and std::invalid_argument for an
// address that cannot travel in LANCER_LISTENERS (one holding ';').
pid_t spawn_upgrade(const std::string& exe, const std::vector<std::string>& argv,
                    const std::vector<listener>& listeners, int& ready_read);

// The path this program was started as, made absolute against the working directory (a
// symlink is not resolved: a deploy that repoints /usr/local/bin/lancer-serve is followed);
// a bare name is looked up in PATH. Call it at startup, before anything changes directory.
std::string executable_path(const char* argv0);

// The listening descriptor of a source lancer-serve makes (tcp_source, unix_source,
// fd_source), -1 for another kind or one that is not started.
int listening_fd(const lancer::source& src);
// The local port of a TCP listening source (tcp_source or fd_source), 0 for another.
std::uint16_t local_port(const lancer::source& src);
// A unix_source leaves its socket file in place from now on (unix_source::keep_path); other
// sources are left as they are.
void keep_path(lancer::source& src);

// lancer-serve's side of the upgrade: the listeners it inherited, and the new process it
// starts. Every member runs on worker 0's thread (the one that sees the signals); it must be
// destroyed before that thread's io_context.
class upgrader {
 public:
  // Reads the handover (inherited_listeners()) and how this process was started (its
  // arguments from /proc/self/cmdline, argv[0] through executable_path()).
  upgrader();
  ~upgrader();
  upgrader(const upgrader&) = delete;
  upgrader& operator=(const upgrader&) = delete;

  // The source to serve the address configured as `name` with: an fd_source over the next
  // socket handed over for it (in the old process's order), or null if there is none left
  // (make a listener as usual).
  std::unique_ptr<lancer::source> take(const std::string& name);
  // Once every listener and worker runs: closes what was handed over but not taken (a log
  // line each) and tells the old process that this one serves now.
  void started();

  // SIGUSR2: starts the new binary, handing it `listeners` (each with the address it was
  // configured as, worker 0's first). `on_ready` is called on `io`'s thread once the new
  // process serves: keep Unix socket files (keep_path) and drain there. Refused with a log
  // line while an upgrade is under way, or after stop().
  void upgrade(boost::asio::io_context& io, const std::vector<listener>& listeners,
               std::function<void()> on_ready);
  // SIGTERM/SIGINT: no upgrade from now on; a new process not yet ready is sent SIGTERM.
  void stop();
  // True once a new process serves in this one's place.
  bool handed_over() const noexcept { return handed_over_; }
  // At the exit of a process that did not hand over: removes the socket files of the Unix
  // listeners it inherited (an fd_source leaves them, where a unix_source removes its own).
  void remove_inherited_paths();

 private:
  struct pending;
  std::string exe_;
  std::vector<std::string> argv_;
  inheritance inherited_;
  std::vector<std::string> inherited_paths_;  // the Unix listeners taken from the handover
  std::weak_ptr<pending> pending_;            // owned by the handlers that wait on it
  bool stopped_ = false;
  bool handed_over_ = false;
};

}  // namespace lancer_serve
