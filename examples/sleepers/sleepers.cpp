// sleepers: three threads on one lancer scheduler, each sleeping and waking in turn.
//
//   build/release/examples/sleepers/sleepers [--virtual]
//
// With --virtual the scheduler runs on a manual clock: the same program finishes at once,
// and every wake-up happens at exactly the time asked for. That is how lancer's tests run.
#include <chrono>
#include <cstdio>
#include <cstring>

#include "lancer/sched.hpp"

using namespace std::chrono_literals;

namespace {

// A thread: a coroutine returning lancer::task<>. It sleeps on the scheduler's clock.
lancer::task<> sleeper(const char* name, std::chrono::milliseconds period, int times) {
  lancer::scheduler& s = *lancer::scheduler::current();
  const auto start = s.now();
  for (int i = 1; i <= times; ++i) {
    co_await lancer::sleep_for(period);  // suspends; the scheduler resumes it on time
    const auto at = std::chrono::duration_cast<std::chrono::milliseconds>(s.now() - start);
    std::printf("%-6s woke %d/%d at %4lld ms\n", name, i, times,
                static_cast<long long>(at.count()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool virtual_time = argc > 1 && std::strcmp(argv[1], "--virtual") == 0;
  if (argc > 2 || (argc == 2 && !virtual_time)) {
    std::fprintf(stderr, "usage: %s [--virtual]\n", argv[0]);
    return 2;
  }

  // Step 1: a scheduler, on the steady clock or on a manual (virtual) one.
  lancer::scheduler s{virtual_time ? lancer::clock::manual() : lancer::clock::steady()};

  // Step 2: spawn threads. Nothing runs yet: a spawned thread starts in the next turn.
  s.spawn(sleeper("fast", 100ms, 4));
  s.spawn(sleeper("medium", 150ms, 3));
  s.spawn(sleeper("slow", 250ms, 2));

  // Step 3: run until no thread, signal or timer is left.
  s.run();
  std::printf("%llu turns, %llu threads finished\n",
              static_cast<unsigned long long>(s.stats().turns),
              static_cast<unsigned long long>(s.stats().finished));
  return 0;
}
