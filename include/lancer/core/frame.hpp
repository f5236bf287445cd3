// Handler state: `frame` belongs to one connection, `pubframe` to the whole server.
//
// Both hold one value of any type, created by the handler on first use:
//
//   auto& n = frame.get_or_emplace<int>(0);          // per connection: survives across requests
//   auto& hits = pub.get_or_emplace<std::size_t>();  // shared by every connection
//
// An empty frame costs 16 bytes; a small value (up to 16 bytes, nothrow-movable) is stored
// inline, a larger one on the heap.
#pragma once

#include <any>
#include <utility>

namespace lancer {

class frame {
 public:
  // Replaces the value with a T built from `args`; returns it.
  template <class T, class... Args>
  T& emplace(Args&&... args) {
    return value_.emplace<T>(std::forward<Args>(args)...);
  }
  // The value if it is a T, else null.
  template <class T>
  T* get() noexcept {
    return std::any_cast<T>(&value_);
  }
  // The value if it is a T; else replaces it with a T built from `args`.
  template <class T, class... Args>
  T& get_or_emplace(Args&&... args) {
    if (T* v = get<T>()) return *v;
    return emplace<T>(std::forward<Args>(args)...);
  }
  bool has_value() const noexcept { return value_.has_value(); }
  void reset() noexcept { value_.reset(); }

 private:
  std::any value_;
};

// The server-wide frame, shared by every connection's handler.
class pubframe : public frame {};

}  // namespace lancer
