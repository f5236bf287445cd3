#include "lancer/io/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include "io/detail/fd_transport.hpp"
#include "io/detail/poll_set.hpp"
#include "io/detail/sigpipe.hpp"
#include "lancer/io/asio.hpp"

namespace lancer {

namespace asio = boost::asio;

namespace {

// A pipe, both ends close-on-exec. Throws std::system_error.
void make_pipe(int fds[2], const std::string& what) {
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::system_category(), what + ": cannot make a pipe");
  }
}

void set_nonblocking(int fd) noexcept {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Closes the descriptors it holds unless released: a failed spawn leaks nothing.
struct fd_guard {
  int fds[6] = {-1, -1, -1, -1, -1, -1};
  ~fd_guard() {
    for (const int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

// posix_spawn's helpers, freed however spawn() leaves.
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
};

int status_of(const siginfo_t& info) noexcept {
  return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}

}  // namespace

child_process child_process::spawn(std::vector<std::string> argv, const child_options& options) {
  if (argv.empty()) throw std::invalid_argument("lancer::child_process::spawn: no program");
  detail::ignore_sigpipe();  // a write to a stdin pipe the child closed fails with EPIPE
  scheduler* sched = scheduler::current();
  if (sched == nullptr) throw std::logic_error("lancer::child_process::spawn: no scheduler here");
  const std::string& program = argv[0];

  fd_guard g;  // [0,1]: stdin, [2,3]: stdout, [4,5]: stderr; [read end, write end] each
  make_pipe(&g.fds[0], program);
  make_pipe(&g.fds[2], program);
  make_pipe(&g.fds[4], program);

  spawn_setup s;
  posix_spawn_file_actions_adddup2(&s.actions, g.fds[0], 0);
  posix_spawn_file_actions_adddup2(&s.actions, g.fds[3], 1);
  posix_spawn_file_actions_adddup2(&s.actions, g.fds[5], 2);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&s.actions, options.cwd.c_str());
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setsigdefault(&s.attr, &all);
  // Its own process group, so that a kill reaches what it started too (a shell's commands).
  posix_spawnattr_setpgroup(&s.attr, 0);
  posix_spawnattr_setflags(&s.attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> args;
  for (std::string& a : argv)
    args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_copy = options.env;
  std::vector<char*> env;
  for (std::string& e : env_copy)
    env.push_back(e.data());
  env.push_back(nullptr);

  child_process p;
  const int err =
      ::posix_spawn(&p.pid_, program.c_str(), &s.actions, &s.attr, args.data(), env.data());
  if (err != 0) {
    throw std::system_error(err, std::system_category(), program + ": cannot start it");
  }
  p.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, p.pid_, 0));
  // The child's ends are its own now; the parent keeps the other three, non-blocking.
  for (const int i : {0, 3, 5}) {
    ::close(g.fds[i]);
    g.fds[i] = -1;
  }
  auto& set = asio::use_service<detail::poll_set>(sched->reactor());
  const auto pipe_stream = [&](int i, const char* which) {
    const int fd = std::exchange(g.fds[i], -1);
    set_nonblocking(fd);
    const std::string name = program + " (" + which + ")";
    return make_stream(
        std::make_unique<detail::fd_transport>(fd, set, detail::fd_transport::kind::pipe, name),
        name, options.streams);
  };
  p.in_ = pipe_stream(1, "stdin");
  p.out_ = pipe_stream(2, "stdout");
  p.err_ = pipe_stream(4, "stderr");
  return p;
}

child_process::child_process(child_process&& o) noexcept
    : in_(std::move(o.in_)),
      out_(std::move(o.out_)),
      err_(std::move(o.err_)),
      pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::exchange(o.pidfd_, -1)),
      status_(std::exchange(o.status_, -1)) {}

child_process& child_process::operator=(child_process&& o) noexcept {
  if (this != &o) {
    reap_now();
    in_ = std::move(o.in_);
    out_ = std::move(o.out_);
    err_ = std::move(o.err_);
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::exchange(o.pidfd_, -1);
    status_ = std::exchange(o.status_, -1);
  }
  return *this;
}

child_process::~child_process() {
  reap_now();
}

void child_process::kill(int sig) noexcept {
  if (pid_ > 0 && status_ < 0) {
    ::kill(-pid_, sig);  // its process group: what it started goes too
    if (pidfd_ >= 0) {
      ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0);
    } else {
      ::kill(pid_, sig);
    }
  }
}

// A child still running is killed; then it is reaped (a process killed with SIGKILL is gone
// at once, so the wait is short), so no zombie is ever left.
void child_process::reap_now() noexcept {
  if (pid_ > 0 && status_ < 0) {
    kill(SIGKILL);
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED) != 0 && errno == EINTR) {
    }
    status_ = status_of(info);
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

task<int> child_process::wait() {
  if (status_ >= 0) co_return status_;
  if (pidfd_ < 0) {
    throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                            "lancer::child_process::wait: no pidfd");
  }
  scheduler& sched = *scheduler::current();
  for (;;) {
    siginfo_t info{};
    info.si_pid = 0;
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG) == 0 &&
        info.si_pid != 0) {
      status_ = status_of(info);
      co_return status_;
    }
    // The pidfd turns readable when the child exits: await that through the bridge. The
    // descriptor is lent to Asio and taken back, never closed by it.
    asio::posix::stream_descriptor watch(sched.reactor(), pidfd_);
    struct give_back {
      asio::posix::stream_descriptor& d;
      ~give_back() { d.release(); }
    } back{watch};
    co_await watch.async_wait(asio::posix::stream_descriptor::wait_read, lancer::use_signal);
  }
}

}  // namespace lancer
