// Replaces the global operator new/delete with versions that count calls, for tests and
// benchmarks that check "no allocation". Include it in exactly one file of a binary.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace lancer_test {
inline std::atomic<long> operator_new_calls{0};
}  // namespace lancer_test

void* operator new(std::size_t n) {
  lancer_test::operator_new_calls.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
