// An intrusive binary min-heap of timers, ordered by (deadline, arrival).
//
// A timer_node lives wherever its owner keeps it (typically in a coroutine frame, inside an
// awaiter), so adding a timer allocates nothing once the heap's vector has grown. A node knows
// its own position, so removing a timer that did not fire is O(log n) with no search.
// Equal deadlines fire in the order they were added.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "lancer/sched/clock.hpp"
#include "lancer/sched/signal.hpp"

namespace lancer::detail {

struct timer_node {
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();

  clock::time_point deadline{};  // when `fire` is pushed
  signal fire{};                 // the signal pushed when the deadline passes
  std::uint64_t order = 0;       // tie-breaker, set by the heap
  std::size_t index = npos;      // position in the heap; npos when not scheduled

  bool scheduled() const noexcept { return index != npos; }
};

class timer_heap {
 public:
  bool empty() const noexcept { return nodes_.empty(); }
  std::size_t size() const noexcept { return nodes_.size(); }
  // The earliest timer. Precondition: !empty().
  timer_node& top() const noexcept { return *nodes_.front(); }

  // Schedules `node`, which must not be scheduled already.
  void push(timer_node& node);
  // Unschedules `node` if it is scheduled; a no-op otherwise.
  void remove(timer_node& node) noexcept;
  // Unschedules and returns the earliest timer. Precondition: !empty().
  timer_node& pop() noexcept;
  // Unschedules every timer.
  void clear() noexcept;

 private:
  static bool before(const timer_node* a, const timer_node* b) noexcept {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->order < b->order);
  }
  void place(std::size_t i, timer_node* n) noexcept {
    nodes_[i] = n;
    n->index = i;
  }
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;

  std::vector<timer_node*> nodes_;  // heap order
  std::uint64_t next_order_ = 0;    // arrival counter
};

}  // namespace lancer::detail
