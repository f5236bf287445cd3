#include "lancer/sched/detail/timer_heap.hpp"

namespace lancer::detail {

void timer_heap::push(timer_node& node) {
  node.order = next_order_++;
  nodes_.push_back(&node);
  node.index = nodes_.size() - 1;
  sift_up(node.index);
}

void timer_heap::remove(timer_node& node) noexcept {
  if (!node.scheduled()) return;
  const std::size_t i = node.index;
  node.index = timer_node::npos;
  timer_node* last = nodes_.back();
  nodes_.pop_back();
  if (last == &node) return;
  place(i, last);
  sift_up(i);
  sift_down(last->index);
}

timer_node& timer_heap::pop() noexcept {
  timer_node& first = *nodes_.front();
  remove(first);
  return first;
}

void timer_heap::clear() noexcept {
  for (timer_node* n : nodes_)
    n->index = timer_node::npos;
  nodes_.clear();
}

void timer_heap::sift_up(std::size_t i) noexcept {
  timer_node* n = nodes_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!before(n, nodes_[parent])) break;
    place(i, nodes_[parent]);
    i = parent;
  }
  place(i, n);
}

void timer_heap::sift_down(std::size_t i) noexcept {
  timer_node* n = nodes_[i];
  const std::size_t count = nodes_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= count) break;
    if (child + 1 < count && before(nodes_[child + 1], nodes_[child])) ++child;
    if (!before(nodes_[child], n)) break;
    place(i, nodes_[child]);
    i = child;
  }
  place(i, n);
}

}  // namespace lancer::detail
