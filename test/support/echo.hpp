// The handler several suites test with: answers every byte with the same byte, until EOF.
#pragma once

#include "lancer/core/connection.hpp"
#include "lancer/core/frame.hpp"
#include "lancer/sched/task.hpp"

namespace lancer_test {

inline lancer::task<> echo(lancer::connection& c, lancer::frame&, lancer::pubframe&) {
  for (;;) {
    const std::size_t n = co_await c.read();
    if (!c.buffered().empty()) {
      co_await c.send(c.buffered());  // waits only above the high-water mark
      c.consume(c.buffered().size());
    }
    if (n == 0 && c.at_eof()) break;
  }
}

}  // namespace lancer_test
