// Handler state: `frame` belongs to one connection, `pubframe` to the whole server.
//
// Each holds any number of values, at most one per type, created by the handler on first use:
//
//   auto& n = frame.get_or_emplace<int>(0);           // per connection: survives across requests
//   auto& hits = pub.get_or_emplace<std::size_t>();   // shared by every connection
//   auto& db = pub.get_or_emplace<my_pool>(config);   // non-copyable, non-movable types too
//   if (session* s = frame.get<session>()) ...        // null until emplaced
//
// A type is its own key: to keep two ints, give each a type of its own (struct hits { int n; }).
// `emplace<T>` never replaces a value: it throws std::logic_error if a T is there already
// (erase<T>() it first, or use get_or_emplace<T>). Values are destroyed in reverse order of
// creation, so a value may use one created before it until its own end; reset() and the
// frame's end destroy them all.
//
// Cost: an empty frame is one pointer (every connection's descriptor holds one). Each value is
// one allocation: a node with the value, linked newest first. Looking a type up walks that
// list comparing addresses (one static byte per type: no RTTI, no allocation), which for the
// handful of values a handler keeps is a few compares.
#pragma once

#include <stdexcept>
#include <type_traits>
#include <utility>

namespace lancer {

namespace detail {

// A type's key: the address of a byte of its own.
template <class T>
struct frame_key {
  static constexpr char id = 0;
};

struct frame_node {
  frame_node* next;  // the value created before this one
  const void* key;   // &frame_key<T>::id
  void (*destroy)(frame_node*) noexcept;
};

template <class T>
struct frame_value final : frame_node {
  template <class... Args>
  explicit frame_value(frame_node* older, Args&&... args)
      : frame_node{older, &frame_key<T>::id, &destroy_as}, value(std::forward<Args>(args)...) {}
  static void destroy_as(frame_node* n) noexcept { delete static_cast<frame_value*>(n); }
  T value;
};

}  // namespace detail

class frame {
 public:
  frame() noexcept = default;
  ~frame() { reset(); }
  frame(const frame&) = delete;
  frame& operator=(const frame&) = delete;
  frame(frame&& other) noexcept : head_(std::exchange(other.head_, nullptr)) {}
  frame& operator=(frame&& other) noexcept {
    if (this != &other) {
      reset();
      head_ = std::exchange(other.head_, nullptr);
    }
    return *this;
  }

  // The T, or null if there is none. Never allocates.
  template <class T>
  T* get() noexcept {
    check_type<T>();
    for (detail::frame_node* n = head_; n != nullptr; n = n->next) {
      if (n->key == &detail::frame_key<T>::id)
        return &static_cast<detail::frame_value<T>*>(n)->value;
    }
    return nullptr;
  }
  template <class T>
  const T* get() const noexcept {
    return const_cast<frame*>(this)->get<T>();
  }

  // Creates a T from `args` and returns it. Throws std::logic_error if there is a T already
  // (it is left as it was): a value is never replaced behind its users' backs.
  template <class T, class... Args>
  T& emplace(Args&&... args) {
    if (get<T>() != nullptr) {
      throw std::logic_error(
          "lancer::frame::emplace: the frame holds a value of this type already");
    }
    return add<T>(std::forward<Args>(args)...);
  }

  // The T if there is one (`args` are then unused), else a new one made from `args`.
  template <class T, class... Args>
  T& get_or_emplace(Args&&... args) {
    if (T* v = get<T>()) return *v;
    return add<T>(std::forward<Args>(args)...);
  }

  template <class T>
  bool contains() const noexcept {
    return get<T>() != nullptr;
  }

  // Destroys the T, if there is one; returns whether there was.
  template <class T>
  bool erase() noexcept {
    check_type<T>();
    for (detail::frame_node** p = &head_; *p != nullptr; p = &(*p)->next) {
      detail::frame_node* n = *p;
      if (n->key == &detail::frame_key<T>::id) {
        *p = n->next;
        n->destroy(n);
        return true;
      }
    }
    return false;
  }

  bool empty() const noexcept { return head_ == nullptr; }

  // Destroys every value, the newest first. While one is destroyed, those created before it
  // are still there.
  void reset() noexcept {
    while (head_ != nullptr) {
      detail::frame_node* n = head_;
      head_ = n->next;
      n->destroy(n);
    }
  }

 private:
  template <class T>
  static constexpr void check_type() noexcept {
    static_assert(
        std::is_object_v<T> && !std::is_array_v<T> && std::is_same_v<T, std::remove_cv_t<T>>,
        "lancer::frame holds values of object types, neither arrays nor cv-qualified");
  }

  template <class T, class... Args>
  T& add(Args&&... args) {
    // Linked only once built: a constructor that throws leaves the frame as it was (and one
    // that adds values of other types gets them destroyed after this one).
    auto* n = new detail::frame_value<T>(nullptr, std::forward<Args>(args)...);
    n->next = head_;
    head_ = n;
    return n->value;
  }

  detail::frame_node* head_ = nullptr;  // the newest value; each node links to the one before
};

// The server-wide frame: one per server, shared by every connection's handler. A server and
// all its connections live on one OS thread (one scheduler), so its values need no lock. With
// several OS threads (lancer-serve --threads), each thread runs servers of its own, each with
// its own pubframe: nothing in it is shared across threads.
class pubframe : public frame {};

}  // namespace lancer
