// lancer::child_process: a program started with its stdin, stdout and stderr on pipes, each a
// stream, and its exit awaited without blocking the scheduler.
//
//   lancer::child_process p = lancer::child_process::spawn({"/bin/sh", "-c", "tr a-z A-Z"});
//   p.in().write("hello\n");
//   co_await p.in().flush();
//   p.in().close();                        // the child reads EOF
//   ... co_await p.out().read() ...        // "HELLO\n"
//   const int status = co_await p.wait();  // the exit code, or 128 + the signal
//
// The child is started with posix_spawn (nothing runs in the parent's address space after
// the fork), in a process group of its own, with no signal blocked and every signal at its
// default. Its exit is awaited on a pidfd through the Asio bridge. Destroying a child_process
// that is still running kills it and its group (SIGKILL) and reaps it: a thread that is
// cancelled or times out leaves no process behind, and never a zombie. The first spawn sets
// SIGPIPE to be ignored in this process: a write to a pipe whose reader is gone is an error
// of that stream, not the end of the program.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "lancer/io/stream.hpp"
#include "lancer/sched/task.hpp"

namespace lancer {

struct child_options {
  std::vector<std::string> env;  // its environment, "NAME=value" each (nothing else)
  std::string cwd;               // its working directory; "": the parent's
  stream_options streams;        // for its three pipes
};

class child_process {
 public:
  // Starts `argv[0]` (a path; not looked up in PATH) with `argv`. Throws std::system_error
  // naming the program if it cannot be started (no such file, not executable, no memory).
  // Must be called on a running scheduler's thread.
  static child_process spawn(std::vector<std::string> argv, const child_options& options = {});

  child_process(child_process&&) noexcept;
  child_process& operator=(child_process&&) noexcept;
  // Kills the child if it is still running (SIGKILL), and reaps it.
  ~child_process();

  stream& in() noexcept { return *in_; }    // the child's stdin: write, then close()
  stream& out() noexcept { return *out_; }  // its stdout
  stream& err() noexcept { return *err_; }  // its stderr
  pid_t pid() const noexcept { return pid_; }

  // Waits until the child exits and returns its status: the exit code, or 128 + the signal
  // that ended it. Awaiting it again returns the same status.
  task<int> wait();
  // Sends `sig` to the child, if it has not been reaped yet.
  void kill(int sig) noexcept;
  // True once wait() has seen the exit.
  bool exited() const noexcept { return status_ >= 0; }

 private:
  child_process() = default;
  void reap_now() noexcept;

  std::unique_ptr<stream> in_, out_, err_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int status_ = -1;  // set once reaped
};

}  // namespace lancer
