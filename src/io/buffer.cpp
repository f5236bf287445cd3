#include "lancer/io/buffer.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer {

using detail::frame_pool;

namespace {
constexpr std::size_t k_first_capacity = 4096;  // one pooled block: a typical request fits
}  // namespace

buffer::buffer(buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      begin_(std::exchange(other.begin_, 0)),
      end_(std::exchange(other.end_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      added_(std::exchange(other.added_, 0)) {}

buffer& buffer::operator=(buffer&& other) noexcept {
  if (this != &other) {
    free_storage();
    data_ = std::exchange(other.data_, nullptr);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    added_ = std::exchange(other.added_, 0);
  }
  return *this;
}

void buffer::free_storage() noexcept {
  if (data_ != nullptr) frame_pool::deallocate(data_, capacity_);
  data_ = nullptr;
  begin_ = end_ = capacity_ = 0;
}

void buffer::consume(std::size_t n) noexcept {
  if (n >= size()) {
    begin_ = end_ = 0;
  } else {
    begin_ += static_cast<std::uint32_t>(n);
  }
}

void buffer::erase(std::size_t offset, std::size_t n) noexcept {
  if (offset >= size()) return;
  n = std::min(n, size() - offset);
  char* at = data_ + begin_ + offset;
  std::memmove(at, at + n, size() - offset - n);
  end_ -= static_cast<std::uint32_t>(n);
}

std::span<char> buffer::prepare(std::size_t n) {
  if (capacity_ - end_ < n) {
    const std::size_t used = size();
    if (capacity_ - used >= n && begin_ > 0) {
      std::memmove(data_, data_ + begin_, used);  // room enough once compacted
    } else {
      std::size_t cap = capacity_ == 0 ? k_first_capacity : std::size_t{capacity_} * 2;
      while (cap - used < n)
        cap *= 2;
      if (cap > UINT32_MAX) throw std::length_error("lancer::buffer: more than 4 GiB");
      char* grown = static_cast<char*>(frame_pool::allocate(cap));
      if (used != 0) std::memcpy(grown, data_ + begin_, used);
      if (data_ != nullptr) frame_pool::deallocate(data_, capacity_);
      data_ = grown;
      capacity_ = static_cast<std::uint32_t>(cap);
    }
    begin_ = 0;
    end_ = static_cast<std::uint32_t>(used);
  }
  return {data_ + end_, capacity_ - end_};
}

void buffer::append(std::string_view bytes) {
  if (bytes.empty()) return;
  std::span<char> room = prepare(bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

}  // namespace lancer
