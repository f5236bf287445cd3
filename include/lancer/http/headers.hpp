// lancer::http::headers: a request's fields, as views into the connection's buffer.
// lancer::http::fields: the extra fields of a response, which the response owns.
//
// headers: names compare case-insensitively; a name may appear several times (get() returns
// the first, count() and the iteration see them all). Nothing is copied: each field is four
// offsets into the bytes the request arrived in, which stay put until the next request is read.
//
// fields: `add` copies the name and value in, so a response never points at a caller's
// temporary; one string holds them all, and clear() keeps its capacity (a reused list
// allocates nothing once it has grown).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer::http {

// ASCII case-insensitive comparison, as field names and tokens need.
bool iequals(std::string_view a, std::string_view b) noexcept;

// `s` without the optional whitespace (spaces and tabs) around it.
constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Calls `f(item)` for each item of a comma-separated field value (`gzip, chunked`), with the
// optional whitespace around it removed; empty items are passed too. Stops early, returning
// false, when `f` returns false.
template <class F>
bool for_each_list_item(std::string_view list, F&& f) {
  for (;;) {
    const std::size_t comma = list.find(',');
    if (!f(trim_ows(list.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

class headers {
 public:
  struct field {
    std::string_view name;
    std::string_view value;
  };

  // Number of fields (a repeated name counts each time).
  std::size_t size() const noexcept { return refs_.size(); }
  bool empty() const noexcept { return refs_.empty(); }
  field operator[](std::size_t i) const noexcept {
    const ref& r = refs_[i];
    return {{base_ + r.name_off, r.name_len}, {base_ + r.value_off, r.value_len}};
  }

  // The value of the first field called `name`, or "" if there is none.
  std::string_view get(std::string_view name) const noexcept;
  // True if a field called `name` is present.
  bool has(std::string_view name) const noexcept { return find(name) != npos; }
  // How many fields are called `name`.
  std::size_t count(std::string_view name) const noexcept;
  // True if the comma-separated value list of `name` holds `token` (case-insensitively),
  // as for `Connection: keep-alive, Upgrade`.
  bool has_token(std::string_view name, std::string_view token) const noexcept;

  class iterator {
   public:
    iterator(const headers* h, std::size_t i) : h_(h), i_(i) {}
    field operator*() const noexcept { return (*h_)[i_]; }
    iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }

   private:
    const headers* h_;
    std::size_t i_;
  };
  iterator begin() const noexcept { return {this, 0}; }
  iterator end() const noexcept { return {this, refs_.size()}; }

  // --- for the parser ------------------------------------------------------------------
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  std::size_t find(std::string_view name) const noexcept;
  void clear() noexcept { refs_.clear(); }  // keeps capacity: no allocation next time
  void release() noexcept { refs_ = {}; }   // clears and gives the capacity back
  void add(std::uint32_t name_off, std::uint32_t name_len, std::uint32_t value_off,
           std::uint32_t value_len) {
    if (refs_.capacity() == 0) refs_.reserve(16);  // one pooled block; most requests fit
    refs_.push_back({name_off, name_len, value_off, value_len});
  }
  void rebase(const char* base) noexcept { base_ = base; }

 private:
  struct ref {
    std::uint32_t name_off, name_len, value_off, value_len;
  };
  const char* base_ = nullptr;  // where the request's bytes start now
  // From the frame pool: a request that ends gives the block to the next, with no malloc.
  std::vector<ref, lancer::detail::pool_allocator<ref>> refs_;
};

// Whether `name` is a field name (an RFC 9110 token) and `value` a field value that can be
// written as is: no CR, LF or NUL (they would split the header: response splitting), and no
// leading or trailing whitespace.
bool valid_field_name(std::string_view name) noexcept;
bool valid_field_value(std::string_view value) noexcept;

struct cookie_options;

// The extra header fields of a response (besides Date, Server, Content-Type, Content-Length,
// Transfer-Encoding and Connection, which the response writes itself), owned.
class fields {
 public:
  fields() = default;
  // fields{{"Location", "/items/1"}, {"Cache-Control", "no-store"}}
  fields(std::initializer_list<headers::field> list) {
    for (const headers::field& f : list)
      add(f.name, f.value);
  }
  // Appends `name: value`. Throws std::invalid_argument, naming the problem, if the name is
  // not a token or the value holds CR, LF or NUL. (A response refuses the fields it writes
  // itself: see written_by_response.)
  fields& add(std::string_view name, std::string_view value);
  // Appends a Set-Cookie field (cookies.hpp: set_cookie_value checks and builds it). Throws
  // std::invalid_argument as set_cookie_value does.
  fields& set_cookie(std::string_view name, std::string_view value, const cookie_options& o);
  fields& set_cookie(std::string_view name, std::string_view value);
  // The first of Content-Length, Transfer-Encoding, Connection, Content-Type, Date and Server
  // among the fields, or "": a response writes those itself, and a second one would
  // contradict it (respond and start_chunked throw std::invalid_argument instead).
  std::string_view written_by_response() const noexcept;
  // The value of the first field called `name` (case-insensitively), or "".
  std::string_view get(std::string_view name) const noexcept;
  bool empty() const noexcept { return text_.empty(); }
  void clear() noexcept { text_.clear(); }  // keeps the capacity
  // The fields as written on the wire: `Name: value\r\n` for each.
  std::string_view wire() const noexcept { return text_; }

 private:
  std::string text_;
};

}  // namespace lancer::http
