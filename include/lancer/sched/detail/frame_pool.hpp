// Per-OS-thread recycling pool for coroutine frames (used by the promise's operator new).
//
// Frames are rounded up to a size class of 16k + 8 bytes (malloc gives such a block a chunk of
// 16(k + 1) bytes, its 8-byte header included: no slack) and, when freed, kept on that class's
// free list for the next frame of the same class. Steady-state spawn-and-finish
// therefore calls no malloc. Larger blocks whose size is a power of two up to 256 KiB (a
// connection buffer that doubled: a pipelined batch of responses, a body) have a free list per
// size too, holding at most `k_max_cached_large` bytes each; other sizes go straight to
// operator new. Each small class keeps at most `k_max_cached_bytes` so a burst of 100k
// connections does not pin its memory forever; the rest goes back to the system. Freeing a frame on
// another OS thread is allowed: the block simply joins that thread's pool. Under AddressSanitizer a
// cached block is poisoned, so a use after free is still reported.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lancer::detail {

struct frame_pool_stats {
  std::uint64_t system_allocations = 0;  // blocks taken from operator new (misses)
  std::uint64_t system_frees = 0;        // blocks given back to operator delete
  std::uint64_t pool_hits = 0;           // allocations served from a free list
  std::uint64_t cached_bytes = 0;        // bytes now held on free lists
};

class frame_pool {
 public:
  static constexpr std::size_t k_granule = 16;
  static constexpr std::size_t k_max_pooled = 4096;
  static constexpr std::size_t k_classes = k_max_pooled / k_granule + 1;
  static constexpr std::size_t k_max_cached_bytes = std::size_t{8} << 20;  // per class
  static constexpr std::size_t k_max_large = 256 * 1024;  // largest power of two kept
  static constexpr std::size_t k_max_cached_large = std::size_t{1} << 20;  // per large size

  // Returns a block of at least `size` bytes. Throws std::bad_alloc like operator new.
  static void* allocate(std::size_t size);

  // Returns a block from allocate(size) with the same `size`.
  static void deallocate(void* block, std::size_t size) noexcept;

  // This OS thread's counters.
  static frame_pool_stats stats() noexcept;

  // Gives every cached block of this OS thread back to the system.
  static void trim() noexcept;
};

// A standard allocator over the pool, for containers and Asio operations that come and go
// with requests: what one request frees, the next takes back, with no malloc.
template <class T>
struct pool_allocator {
  using value_type = T;
  pool_allocator() noexcept = default;
  template <class U>
  pool_allocator(const pool_allocator<U>&) noexcept {}  // NOLINT: implicit, as rebinding needs
  T* allocate(std::size_t n) { return static_cast<T*>(frame_pool::allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { frame_pool::deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const pool_allocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace lancer::detail
