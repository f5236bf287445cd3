#include "lancer/sched/detail/timer_heap.hpp"

#include <stdexcept>

namespace lancer::detail {

void heap_base::push(heap_node& node) {
  if (nodes_.size() >= heap_node::npos) throw std::length_error("lancer: too many timers");
  node.order = next_order_++;
  nodes_.push_back(&node);
  node.index = static_cast<std::uint32_t>(nodes_.size() - 1);
  sift_up(node.index);
}

void heap_base::remove(heap_node& node) noexcept {
  if (!node.scheduled()) return;
  const std::size_t i = node.index;
  node.index = heap_node::npos;
  heap_node* last = nodes_.back();
  nodes_.pop_back();
  if (last == &node) return;
  place(i, last);
  sift_up(i);
  sift_down(last->index);
}

heap_node& heap_base::pop_node() noexcept {
  heap_node& first = *nodes_.front();
  remove(first);
  return first;
}

void heap_base::clear() noexcept {
  for (heap_node* n : nodes_)
    n->index = heap_node::npos;
  nodes_.clear();
}

void heap_base::sift_up(std::size_t i) noexcept {
  heap_node* n = nodes_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!before(n, nodes_[parent])) break;
    place(i, nodes_[parent]);
    i = parent;
  }
  place(i, n);
}

void heap_base::sift_down(std::size_t i) noexcept {
  heap_node* n = nodes_[i];
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
