// lancer::buffer: a byte queue for a connection's inbound or outbound bytes.
//
// Bytes are appended at the back and consumed from the front. Storage up to 4 KiB comes from
// the per-thread frame pool, larger storage from operator new; `release()` hands it back, so
// an idle connection holds no buffer memory at all. Consuming everything resets the read
// position, so a buffer that keeps being drained never grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace lancer {

class buffer {
 public:
  buffer() noexcept = default;
  buffer(buffer&& other) noexcept;
  buffer& operator=(buffer&& other) noexcept;
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer() { free_storage(); }

  // The bytes not consumed yet. Valid until the next append/prepare/release.
  std::string_view view() const noexcept { return {data_ + begin_, end_ - begin_}; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t capacity() const noexcept { return capacity_; }

  // Drops `n` bytes from the front (all of them if n >= size()).
  void consume(std::size_t n) noexcept;
  // Drops `n` bytes starting `offset` bytes in, keeping what comes before and after (a
  // protocol that keeps a header in front while it streams the body behind it).
  void erase(std::size_t offset, std::size_t n) noexcept;

  // Returns at least `n` writable bytes after the data; commit() makes them part of it.
  std::span<char> prepare(std::size_t n);
  void commit(std::size_t n) noexcept {
    end_ += static_cast<std::uint32_t>(n);
    added_ += static_cast<std::uint32_t>(n);
  }

  void append(std::string_view bytes);

  // How many bytes were ever added (append and commit), whatever was consumed or released
  // since, modulo 2^32: a stream's byte counts. The difference of two readings is exact for
  // less than 4 GiB between them. (32 bits fill the room the other fields leave: a
  // connection's descriptor stays within its 256-byte pool class.)
  std::uint32_t added() const noexcept { return added_; }
  // Counts `n` bytes as added that never passed through the buffer (a file sent zero-copy).
  void count_added(std::uint64_t n) noexcept { added_ += static_cast<std::uint32_t>(n); }

  // Gives the storage back if the buffer is empty; a no-op otherwise.
  void release() noexcept {
    if (empty()) free_storage();
  }

 private:
  void free_storage() noexcept;

  char* data_ = nullptr;
  std::uint32_t begin_ = 0;     // first unconsumed byte
  std::uint32_t end_ = 0;       // one past the last byte
  std::uint32_t capacity_ = 0;  // bytes of storage (at most 4 GiB: a larger append throws)
  std::uint32_t added_ = 0;     // bytes ever added, modulo 2^32
};

}  // namespace lancer
