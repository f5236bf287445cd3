// lancer::child_process with real programs (sh, cat, sleep) on a steady-clock scheduler.
#include "lancer/io/child_process.hpp"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <string>
#include <vector>

#include "lancer/sched/awaitables.hpp"

using namespace std::chrono_literals;
using lancer::child_process;
using lancer::stream;
using lancer::task;

namespace {

// Everything `s` sends until its EOF (taken out of its buffer as it comes: a stream holds
// at most max_buffered bytes unread).
task<std::string> read_all(stream& s) {
  std::string all;
  for (;;) {
    const std::size_t n = co_await s.read();
    all += s.buffered();
    s.consume(s.buffered().size());
    if (n == 0 && s.at_eof()) co_return all;
  }
}

}  // namespace

TEST_CASE("a child reads its stdin, writes its stdout, and its exit code is awaited") {
  lancer::scheduler sched;
  std::string out;
  int status = -1;
  sched.run_until_complete([&]() -> task<> {
    child_process p = child_process::spawn({"/bin/sh", "-c", "tr a-z A-Z; exit 3"});
    p.in().write("hello, child\n");
    co_await p.in().flush();
    p.in().close();
    out = co_await read_all(p.out());
    status = co_await p.wait();
    CHECK(p.exited());
    CHECK(co_await p.wait() == 3);  // again: the same status
  }());
  CHECK(out == "HELLO, CHILD\n");
  CHECK(status == 3);
}

TEST_CASE("a child's stderr is a stream of its own, and a signal's end is 128 + the signal") {
  lancer::scheduler sched;
  std::string err;
  int status = -1;
  sched.run_until_complete([&]() -> task<> {
    child_process p = child_process::spawn({"/bin/sh", "-c", "echo oops >&2; kill -TERM $$"});
    p.in().close();
    err = co_await read_all(p.err());
    status = co_await p.wait();
  }());
  CHECK(err == "oops\n");
  CHECK(status == 128 + SIGTERM);
}

TEST_CASE("4 MiB go through a child both ways at once, with the pipes' backpressure") {
  lancer::scheduler sched;
  constexpr std::size_t size = 4u << 20;
  std::string sent(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    sent[i] = static_cast<char>('a' + i % 23);
  std::string got;
  sched.run_until_complete([&]() -> task<> {
    child_process p = child_process::spawn({"/bin/cat"});
    // One thread feeds its stdin while this one reads its stdout: neither pipe overflows.
    sched.spawn([](child_process& c, const std::string& bytes) -> task<> {
      for (std::size_t at = 0; at < bytes.size(); at += 65536)
        co_await c.in().send(std::string_view(bytes).substr(at, 65536));
      co_await c.in().flush();
      c.in().close();
    }(p, sent));
    got = co_await read_all(p.out());
    CHECK(co_await p.wait() == 0);
  }());
  CHECK(got.size() == size);
  CHECK(got == sent);
}

TEST_CASE("a program that cannot start is refused with its name") {
  lancer::scheduler sched;
  std::string error;
  sched.run_until_complete([&]() -> task<> {
    try {
      child_process::spawn({"/no/such/program"});
    } catch (const std::system_error& e) {
      error = e.what();
    }
    co_return;
  }());
  CHECK(error.find("/no/such/program: cannot start it") == 0);
}

TEST_CASE("a thread cancelled while its child runs leaves no process and no zombie behind") {
  lancer::scheduler sched;
  pid_t pid = -1;
  sched.run_until_complete([&]() -> task<> {
    const lancer::thread_id t = sched.spawn([](pid_t& out) -> task<> {
      child_process p = child_process::spawn({"/bin/sleep", "100"});
      out = p.pid();
      co_await p.wait();  // cancelled here: the child_process goes with the frame
    }(pid));
    co_await lancer::sleep_for(50ms);
    sched.cancel(t);
    while (sched.alive(t))
      co_await lancer::wakeback_later();
  }());
  REQUIRE(pid > 0);
  CHECK(::kill(pid, 0) == -1);  // gone
  CHECK(errno == ESRCH);
  CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);  // and reaped: not our child any more
  CHECK(errno == ECHILD);
}

TEST_CASE("reads grow while they fill what they asked for: bulk input takes fewer reads") {
  // 60 KiB wait in the pipe (they fit: the child has exited before the first read). A read
  // asks for one 4 KiB block first, then twice as much each time the last one came back full.
  lancer::scheduler sched;
  std::vector<std::size_t> reads;
  std::size_t total = 0;
  sched.run_until_complete([&]() -> task<> {
    child_process p = child_process::spawn({"/bin/sh", "-c", "head -c 61440 /dev/zero"});
    CHECK(co_await p.wait() == 0);
    for (;;) {
      const std::size_t n = co_await p.out().read();
      if (n == 0 && p.out().at_eof()) break;
      reads.push_back(n);
      total += n;
      p.out().consume(n);
    }
  }());
  CHECK(total == 61440);
  CHECK(reads == std::vector<std::size_t>{4096, 8192, 16384, 32768});
}
