#include "upgrade.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "lancer/log.hpp"
#include "lancer/source/systemd.hpp"
#include "lancer/source/tcp.hpp"
#include "lancer/source/unix.hpp"

extern char** environ;

namespace lancer_serve {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr const char* k_listeners = "LANCER_LISTENERS";
constexpr const char* k_from = "LANCER_UPGRADE_FROM";
constexpr const char* k_ready = "LANCER_UPGRADE_READY";

// A whole non-negative number, or -1.
long whole(std::string_view text) {
  if (text.empty() || text.size() > 9) return -1;
  long n = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

std::string take_env(const char* name) {
  const char* v = std::getenv(name);
  std::string value = v != nullptr ? v : "";
  ::unsetenv(name);
  return value;
}

bool listening(int fd) {
  int yes = 0;
  socklen_t len = sizeof yes;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &yes, &len) == 0 && yes != 0;
}

// posix_spawn's helpers, freed however spawn_upgrade() leaves.
struct spawn_setup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  spawn_setup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~spawn_setup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  spawn_setup(const spawn_setup&) = delete;
  spawn_setup& operator=(const spawn_setup&) = delete;
};

}  // namespace

int listening_fd(const lancer::source& src) {
  if (const auto* t = dynamic_cast<const lancer::tcp_source*>(&src)) return t->native_handle();
  if (const auto* u = dynamic_cast<const lancer::unix_source*>(&src)) return u->native_handle();
  if (const auto* f = dynamic_cast<const lancer::fd_source*>(&src)) return f->native_handle();
  return -1;
}

std::uint16_t local_port(const lancer::source& src) {
  sockaddr_storage at{};
  socklen_t len = sizeof at;
  const int fd = listening_fd(src);
  if (fd < 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len) != 0) return 0;
  if (at.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(at).sin_port);
  if (at.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(at).sin6_port);
  return 0;
}

void keep_path(lancer::source& src) {
  if (auto* u = dynamic_cast<lancer::unix_source*>(&src)) u->keep_path();
}

inheritance inherited_listeners() {
  inheritance got;
  const std::string list = take_env(k_listeners);
  const std::string from = take_env(k_from);
  const std::string ready = take_env(k_ready);
  got.from = static_cast<pid_t>(std::max(whole(from), 0L));
  const long ready_fd = whole(ready);
  if (ready_fd >= 0 && ::fcntl(static_cast<int>(ready_fd), F_SETFD, FD_CLOEXEC) == 0) {
    got.ready_fd = static_cast<int>(ready_fd);
  }
  std::string_view rest = list;
  while (!rest.empty()) {
    const std::size_t end = rest.find(';');
    const std::string_view entry = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    const std::size_t colon = entry.find(':');
    const long fd = colon == std::string_view::npos ? -1 : whole(entry.substr(0, colon));
    if (fd < 0 || ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC) != 0) {
      lancer::log(lancer::log_level::error, "upgrade", "{}: '{}' names no open descriptor",
                  k_listeners, entry);
      continue;
    }
    if (!listening(static_cast<int>(fd))) {
      lancer::log(lancer::log_level::error, "upgrade", "{}: fd {} is not a listening socket",
                  k_listeners, fd);
      ::close(static_cast<int>(fd));
      continue;
    }
    got.listeners.push_back({static_cast<int>(fd), std::string(entry.substr(colon + 1))});
  }
  return got;
}

pid_t spawn_upgrade(const std::string& exe, const std::vector<std::string>& argv,
                    const std::vector<listener>& listeners, int& ready_read) {
  // Everything the child needs is built before posix_spawn: nothing runs in between.
  std::string handed;
  for (const listener& l : listeners) {
    if (l.address.find(';') != std::string::npos) {
      throw std::invalid_argument("cannot hand over " + l.address + ": it holds a ';'");
    }
    if (!handed.empty()) handed += ';';
    handed += std::to_string(l.fd) + ':' + l.address;
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::system_category(), "upgrade: cannot make a pipe");
  }
  std::vector<std::string> env_own = {
      std::string(k_listeners) + '=' + handed,
      std::string(k_from) + '=' + std::to_string(::getpid()),
      std::string(k_ready) + '=' + std::to_string(pipe_fds[1]),
  };
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view var = *e;
    const std::string_view name = var.substr(0, var.find('='));
    if (name != k_listeners && name != k_from && name != k_ready) env.push_back(*e);
  }
  for (std::string& e : env_own)
    env.push_back(e.data());
  env.push_back(nullptr);
  std::vector<std::string> args_own = argv;
  std::vector<char*> args;
  for (std::string& a : args_own)
    args.push_back(a.data());
  args.push_back(nullptr);

  spawn_setup s;
  // A dup2 of a descriptor onto itself clears its close-on-exec flag, in the child only.
  for (const listener& l : listeners)
    posix_spawn_file_actions_adddup2(&s.actions, l.fd, l.fd);
  posix_spawn_file_actions_adddup2(&s.actions, pipe_fds[1], pipe_fds[1]);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setsigdefault(&s.attr, &all);
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int err = ::posix_spawn(&pid, exe.c_str(), &s.actions, &s.attr, args.data(), env.data());
  ::close(pipe_fds[1]);
  if (err != 0) {
    ::close(pipe_fds[0]);
    throw std::system_error(err, std::system_category(), exe + ": cannot start it");
  }
  ready_read = pipe_fds[0];
  return pid;
}

std::string executable_path(const char* argv0) {
  const std::string name = argv0 != nullptr ? argv0 : "";
  if (name.find('/') != std::string::npos) return fs::absolute(name).lexically_normal().string();
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "";
  while (!name.empty()) {
    const std::size_t end = dirs.find(':');
    const std::string dir(dirs.substr(0, end));
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return fs::absolute(candidate).lexically_normal().string();
    }
    if (end == std::string_view::npos) break;
    dirs.remove_prefix(end + 1);
  }
  return name;  // spawn_upgrade will say it cannot start it
}

// An upgrade under way: the new process, and the pipe on which it says it is ready. Owned by
// the handlers waiting on it (the upgrader holds a weak_ptr), so that it goes with its
// io_context even if that goes first.
struct upgrader::pending : std::enable_shared_from_this<pending> {
  pending(asio::io_context& io, int fd, pid_t p) : ready(io, fd), reap_timer(io), pid(p) {}

  void wait_ready(upgrader& owner, std::function<void()> on_ready) {
    ready.async_read_some(asio::buffer(&byte, 1),
                          [self = shared_from_this(), &owner, on_ready = std::move(on_ready)](
                              const boost::system::error_code& ec, std::size_t n) {
                            if (ec != asio::error::operation_aborted)
                              self->read(owner, n, on_ready);
                          });
  }

  // One byte: the new process serves. EOF (or an error) without it: it ended first.
  void read(upgrader& owner, std::size_t n, const std::function<void()>& on_ready) {
    boost::system::error_code ignored;
    ready.close(ignored);
    if (n == 1) {
      owner.handed_over_ = true;
      lancer::log(lancer::log_level::info, "upgrade", "pid {} serves now: draining", pid);
      on_ready();
      return;
    }
    lancer::log(lancer::log_level::error, "upgrade",
                "the new process (pid {}) ended before it was ready; serving on", pid);
    reap();
  }

  // The child closed its end: it is exiting. Reaps it without blocking the reactor.
  void reap() {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == 0) {
      reap_timer.expires_after(std::chrono::milliseconds(20));
      reap_timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->reap();
      });
      return;
    }
    if (r == pid && WIFEXITED(status)) {
      lancer::log(lancer::log_level::error, "upgrade", "pid {} exited with status {}", pid,
                  WEXITSTATUS(status));
    } else if (r == pid && WIFSIGNALED(status)) {
      lancer::log(lancer::log_level::error, "upgrade", "pid {} was killed by signal {}", pid,
                  WTERMSIG(status));
    }
  }

  asio::posix::stream_descriptor ready;
  asio::steady_timer reap_timer;
  pid_t pid;
  char byte = 0;
};

upgrader::upgrader() : inherited_(inherited_listeners()) {
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  for (std::string arg; std::getline(cmdline, arg, '\0');)
    argv_.push_back(arg);
  exe_ = executable_path(argv_.empty() ? nullptr : argv_[0].c_str());
  if (inherited_.from != 0) {
    lancer::log(lancer::log_level::info, "upgrade", "taking over from pid {}: {} listener(s)",
                inherited_.from, inherited_.listeners.size());
  }
}

upgrader::~upgrader() {
  for (listener& l : inherited_.listeners)
    if (l.fd >= 0) ::close(l.fd);
  if (inherited_.ready_fd >= 0) ::close(inherited_.ready_fd);
}

std::unique_ptr<lancer::source> upgrader::take(const std::string& name) {
  for (listener& l : inherited_.listeners) {
    if (l.fd < 0 || l.address != name) continue;
    const lancer::address where = lancer::parse_address(name);
    if (where.connector == lancer::address::kind::unix_socket) {
      inherited_paths_.push_back(where.path);
    }
    return std::make_unique<lancer::fd_source>(std::exchange(l.fd, -1));
  }
  return nullptr;
}

void upgrader::started() {
  for (listener& l : inherited_.listeners) {
    if (l.fd < 0) continue;
    lancer::log(lancer::log_level::info, "upgrade",
                "closing the socket handed over for {} (fd {}): nothing here listens on it",
                l.address, l.fd);
    ::close(std::exchange(l.fd, -1));
  }
  if (inherited_.ready_fd >= 0) {
    const char ready = 'R';
    if (::write(inherited_.ready_fd, &ready, 1) != 1) {
      lancer::log(lancer::log_level::warn, "upgrade", "could not tell pid {} that this one serves",
                  inherited_.from);
    }
    ::close(std::exchange(inherited_.ready_fd, -1));
  }
}

void upgrader::upgrade(asio::io_context& io, const std::vector<listener>& listeners,
                       std::function<void()> on_ready) {
  if (stopped_ || handed_over_) {
    lancer::log(lancer::log_level::warn, "upgrade", "SIGUSR2 ignored: this process is draining");
    return;
  }
  if (const auto p = pending_.lock()) {
    lancer::log(lancer::log_level::warn, "upgrade", "SIGUSR2 ignored: pid {} is starting already",
                p->pid);
    return;
  }
  pid_t pid = -1;
  int ready_read = -1;
  try {
    pid = spawn_upgrade(exe_, argv_, listeners, ready_read);
  } catch (const std::exception& e) {
    lancer::log(lancer::log_level::error, "upgrade", "SIGUSR2: {}; serving on", e.what());
    return;
  }
  lancer::log(lancer::log_level::info, "upgrade",
              "SIGUSR2: started {} as pid {} with {} listener(s)", exe_, pid, listeners.size());
  auto p = std::make_shared<pending>(io, ready_read, pid);
  pending_ = p;
  p->wait_ready(*this, std::move(on_ready));
}

void upgrader::stop() {
  stopped_ = true;
  if (const auto p = pending_.lock()) {
    if (!handed_over_ && p->ready.is_open()) {
      lancer::log(lancer::log_level::info, "upgrade", "stopping pid {}, which was not ready yet",
                  p->pid);
      ::kill(p->pid, SIGTERM);
    }
  }
}

void upgrader::remove_inherited_paths() {
  for (const std::string& path : inherited_paths_)
    ::unlink(path.c_str());
  inherited_paths_.clear();
}

}  // namespace lancer_serve
