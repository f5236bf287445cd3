// An intrusive binary min-heap of deadlines, ordered by (deadline, arrival).
//
// A node lives wherever its owner keeps it (a timer in a coroutine frame, inside an awaiter; a
// connection's deadline in its descriptor), so scheduling allocates nothing once the heap's
// vector has grown. A node knows its own position, so removing one that did not fire is
// O(log n) with no search. Equal deadlines fire in the order they were added.
//
// `heap_node` is the part the heap needs (24 bytes); owners derive from it and keep what a
// deadline means beside it: `timer_node` adds the signal the scheduler pushes when it fires.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "lancer/sched/clock.hpp"
#include "lancer/sched/signal.hpp"

namespace lancer::detail {

struct heap_node {
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();

  clock::time_point deadline{};  // the heap's key
  std::uint32_t order = 0;       // tie-breaker, set by the heap (compared modulo 2^32)
  std::uint32_t index = npos;    // position in the heap; npos when not scheduled

  bool scheduled() const noexcept { return index != npos; }
};

// A scheduler timer: `fire` is pushed once `deadline` has passed.
struct timer_node : heap_node {
  signal fire{};
};

// The heap itself, over heap_node. Use timer_heap_of<Node> for a heap of one node type.
class heap_base {
 public:
  bool empty() const noexcept { return nodes_.empty(); }
  std::size_t size() const noexcept { return nodes_.size(); }

  // Schedules `node`, which must not be scheduled already.
  void push(heap_node& node);
  // Unschedules `node` if it is scheduled; a no-op otherwise.
  void remove(heap_node& node) noexcept;
  // Unschedules every node.
  void clear() noexcept;

 protected:
  heap_node& top_node() const noexcept { return *nodes_.front(); }
  heap_node& pop_node() noexcept;

 private:
  static bool before(const heap_node* a, const heap_node* b) noexcept {
    // Arrival numbers wrap; equal deadlines filed 2^31 arrivals apart are never both waiting.
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && static_cast<std::int32_t>(a->order - b->order) < 0);
  }
  void place(std::size_t i, heap_node* n) noexcept {
    nodes_[i] = n;
    n->index = static_cast<std::uint32_t>(i);
  }
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;

  std::vector<heap_node*> nodes_;  // heap order
  std::uint32_t next_order_ = 0;   // arrival counter
};

template <class Node>
class timer_heap_of : public heap_base {
 public:
  // The earliest node. Precondition: !empty().
  Node& top() const noexcept { return static_cast<Node&>(top_node()); }
  // Unschedules and returns the earliest node. Precondition: !empty().
  Node& pop() noexcept { return static_cast<Node&>(pop_node()); }
  void push(Node& node) { heap_base::push(node); }
  void remove(Node& node) noexcept { heap_base::remove(node); }
};

using timer_heap = timer_heap_of<timer_node>;

}  // namespace lancer::detail
