// Runs a scheduler on the test's thread while a client runs on another OS thread.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

#include "lancer/sched/scheduler.hpp"

namespace lancer_test {

// Runs `sched` until `client` (on another OS thread) returns; a watchdog stops it after 30 s
// so a hang fails the test instead of the suite. Returns whether the client finished.
template <class F>
bool run_with_client(lancer::scheduler& sched, F client) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    client();
    done = true;
    sched.stop();
  });
  std::thread watchdog([&] {
    for (int i = 0; i < 300 && !done; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!done) sched.stop();
  });
  sched.run_forever();
  t.join();
  watchdog.join();
  return done;
}

}  // namespace lancer_test
