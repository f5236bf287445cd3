#include "lancer/sched/detail/frame_pool.hpp"

#include <array>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define LANCER_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define LANCER_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define LANCER_POISON(p, n) ((void)(p), (void)(n))
#define LANCER_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace lancer::detail {
namespace {

struct free_block {
  free_block* next;
};

struct free_list {
  free_block* head = nullptr;
  std::size_t bytes = 0;
};

// Trivially destructible, so reading it costs no TLS guard on the hot path.
thread_local constinit std::array<free_list, frame_pool::k_classes> t_lists{};
// Powers of two from 8 KiB to k_max_large.
constexpr std::size_t k_large_classes = 6;
static_assert(frame_pool::k_max_large == (std::size_t{8192} << (k_large_classes - 1)));
thread_local constinit std::array<free_list, k_large_classes> t_large{};
thread_local constinit frame_pool_stats t_stats{};

// Gives the cached blocks back when the OS thread exits. Touched only on the slow path.
struct pool_reaper {
  ~pool_reaper() { frame_pool::trim(); }
};
thread_local pool_reaper t_reaper;

// Class k holds blocks of 16(k + 1) - 8 bytes: malloc's chunk for such a block is 16(k + 1)
// bytes with its 8-byte header, so no byte of it is slack.
constexpr std::size_t class_of(std::size_t size) noexcept {
  return (size + 8 + frame_pool::k_granule - 1) / frame_pool::k_granule - 1;
}
constexpr std::size_t bytes_of(std::size_t cls) noexcept {
  return (cls + 1) * frame_pool::k_granule - 8;
}
static_assert(class_of(frame_pool::k_max_pooled) < frame_pool::k_classes);
static_assert(bytes_of(class_of(248)) == 248 && bytes_of(class_of(249)) == 264);

// The large list for `size`, or null if blocks of that size are not kept.
free_list* large_list(std::size_t size) noexcept {
  if (size < 8192 || size > frame_pool::k_max_large || (size & (size - 1)) != 0) return nullptr;
  return &t_large[static_cast<std::size_t>(__builtin_ctzll(size)) - 13];
}

}  // namespace

void* frame_pool::allocate(std::size_t size) {
  if (size > k_max_pooled) {
    if (free_list* list = large_list(size); list != nullptr && list->head != nullptr) {
      free_block* b = list->head;
      LANCER_UNPOISON(b, size);
      list->head = b->next;
      list->bytes -= size;
      ++t_stats.pool_hits;
      return b;
    }
    (void)&t_reaper;
    ++t_stats.system_allocations;
    return ::operator new(size);
  }
  if (size == 0) {
    ++t_stats.system_allocations;
    return ::operator new(size);
  }
  const std::size_t cls = class_of(size);
  free_list& list = t_lists[cls];
  if (free_block* b = list.head) {
    LANCER_UNPOISON(b, bytes_of(cls));
    list.head = b->next;
    list.bytes -= bytes_of(cls);
    ++t_stats.pool_hits;
    return b;
  }
  (void)&t_reaper;  // registers the thread-exit trim on first miss
  ++t_stats.system_allocations;
  return ::operator new(bytes_of(cls));
}

void frame_pool::deallocate(void* block, std::size_t size) noexcept {
  if (block == nullptr) return;
  if (size > k_max_pooled) {
    free_list* list = large_list(size);
    if (list != nullptr && list->bytes + size <= k_max_cached_large) {
      auto* b = static_cast<free_block*>(block);
      b->next = list->head;
      list->head = b;
      list->bytes += size;
      LANCER_POISON(b, size);
      return;
    }
    ++t_stats.system_frees;
    ::operator delete(block);
    return;
  }
  if (size == 0) {
    ++t_stats.system_frees;
    ::operator delete(block);
    return;
  }
  const std::size_t cls = class_of(size);
  const std::size_t bytes = bytes_of(cls);
  free_list& list = t_lists[cls];
  if (list.bytes + bytes > k_max_cached_bytes) {
    ++t_stats.system_frees;
    ::operator delete(block);
    return;
  }
  auto* b = static_cast<free_block*>(block);
  b->next = list.head;
  list.head = b;
  list.bytes += bytes;
  LANCER_POISON(b, bytes);
}

frame_pool_stats frame_pool::stats() noexcept {
  frame_pool_stats s = t_stats;
  s.cached_bytes = 0;  // summed here, not kept on every allocation
  for (const free_list& list : t_lists)
    s.cached_bytes += list.bytes;
  for (const free_list& list : t_large)
    s.cached_bytes += list.bytes;
  return s;
}

void frame_pool::trim() noexcept {
  for (std::size_t cls = 0; cls < k_classes; ++cls) {
    free_list& list = t_lists[cls];
    while (free_block* b = list.head) {
      LANCER_UNPOISON(b, bytes_of(cls));
      list.head = b->next;
      ::operator delete(b);
      ++t_stats.system_frees;
    }
    list.bytes = 0;
  }
  for (std::size_t k = 0; k < k_large_classes; ++k) {
    free_list& list = t_large[k];
    while (free_block* b = list.head) {
      LANCER_UNPOISON(b, std::size_t{8192} << k);
      list.head = b->next;
      ::operator delete(b);
      ++t_stats.system_frees;
    }
    list.bytes = 0;
  }
}

}  // namespace lancer::detail
