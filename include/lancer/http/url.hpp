// URL helpers for handlers: a target's path and query, percent-decoding and -encoding, and
// lancer::http::params for application/x-www-form-urlencoded text (a query or a form body).
//
//   const auto [path, query] = lancer::http::split_target(req.target());
//   lancer::http::params q;                    // reuse it: a warm re-parse allocates nothing
//   if (!q.parse(query)) { /* 400: bad escape or too many pairs; q.error() says which */ }
//   const std::string_view page = q.get("page").value_or("1");
//   for (const std::string_view tag : q.all("tag")) { ... }
//
// Nothing here decodes a path for you: decode it segment by segment (after splitting on '/'),
// or "%2F" becomes a separator. Decoded bytes are never NUL (see percent_decode).
#pragma once

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lancer::http {

// A request target's two parts, as views into it.
struct target_parts {
  std::string_view path;   // up to the first '?' (or '#'); not decoded
  std::string_view query;  // after the '?', without it; "" if none. Not decoded
};

// Splits an origin-form target ("/a/b?x=1") into its path and query. A '#fragment' (which a
// client should not send) is cut off and ignored, from the path or from the query.
target_parts split_target(std::string_view target) noexcept;

// Appends the percent-decoded `in` to `out`: each %XX (hex digits in either case) becomes its
// byte, and with `plus_as_space` (form encoding) each '+' becomes a space; other bytes are
// copied as they are. Returns false, leaving `out` as it was, on a bad escape ('%' not followed
// by two hex digits: "%zz", "%4", a '%' at the end) or on a NUL byte, encoded ("%00") or raw:
// a NUL truncates C strings and file names further on, and no path, name or form value needs
// one. Allocates only as `out` grows.
bool percent_decode(std::string_view in, std::string& out, bool plus_as_space = false);

// Appends `in` to `out` with every byte other than RFC 3986's unreserved ones (ALPHA, DIGIT,
// '-', '.', '_', '~') written as %XX (upper-case hex): safe in a path segment, a query name or
// value, and a form body. '/' is encoded too: encode each segment of a path on its own.
void percent_encode(std::string_view in, std::string& out);
// The same, into a new string.
std::string percent_encode(std::string_view in);

// The name/value pairs of application/x-www-form-urlencoded text (a query string or a form
// body): `a=1&b=two+words&c=%C3%A9`. Pairs are split on '&'; empty pairs (`a=1&&b=2`, a leading
// or trailing '&') are skipped; a pair without '=' has the value ""; names and values are
// percent-decoded with '+' as a space. Names compare exactly (case-sensitively), and a name may
// appear several times, in order.
//
// Memory: the decoded names and values live in one string, indexed by a vector of offsets;
// parse() and clear() keep both capacities, so re-parsing text no longer than before, with no
// more pairs, allocates nothing. Views handed out are into this object: valid until the next
// parse() or clear() or its destruction (a copy or move has its own).
class params {
 public:
  // At most this many pairs by default: beyond, parse() fails, so hostile input cannot make
  // the index (and the work of every get()) grow without bound.
  static constexpr std::size_t default_max_pairs = 1000;

  struct param {
    std::string_view name;
    std::string_view value;
  };

  // Replaces the contents with the pairs of `text`. Returns false, leaving the object empty
  // with error() saying why, on a bad escape or NUL (see percent_decode) in any name or value,
  // or if `text` holds more than `max_pairs` (non-empty) pairs.
  bool parse(std::string_view text, std::size_t max_pairs = default_max_pairs);
  // Why the last parse() failed ("bad percent-escape", "too many pairs"); "" after a success.
  std::string_view error() const noexcept { return error_; }
  void clear() noexcept;  // keeps capacity

  std::size_t size() const noexcept { return index_.size(); }
  bool empty() const noexcept { return index_.empty(); }
  param operator[](std::size_t i) const noexcept {
    const entry& e = index_[i];
    return {{bytes_.data() + e.name_off, e.name_len}, {bytes_.data() + e.value_off, e.value_len}};
  }

  // The value of the first pair called `name`, or nullopt if there is none.
  std::optional<std::string_view> get(std::string_view name) const noexcept;
  bool has(std::string_view name) const noexcept { return find(name, 0) != size(); }

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = param;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = param;

    iterator() = default;
    iterator(const params* p, std::size_t i) noexcept : p_(p), i_(i) {}
    param operator*() const noexcept { return (*p_)[i_]; }
    iterator& operator++() noexcept {
      ++i_;
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }

   private:
    const params* p_ = nullptr;
    std::size_t i_ = 0;
  };
  iterator begin() const noexcept { return {this, 0}; }
  iterator end() const noexcept { return {this, size()}; }

  // The values of every pair called `name`, in order, as a range (no allocation).
  class values {
   public:
    class iterator {
     public:
      using iterator_category = std::forward_iterator_tag;
      using value_type = std::string_view;
      using difference_type = std::ptrdiff_t;
      using pointer = void;
      using reference = std::string_view;

      iterator() = default;
      iterator(const params* p, std::string_view name, std::size_t i) noexcept
          : p_(p), name_(name), i_(i) {}
      std::string_view operator*() const noexcept { return (*p_)[i_].value; }
      iterator& operator++() noexcept {
        i_ = p_->find(name_, i_ + 1);
        return *this;
      }
      iterator operator++(int) noexcept {
        iterator old = *this;
        ++*this;
        return old;
      }
      bool operator==(const iterator& o) const noexcept { return i_ == o.i_; }

     private:
      const params* p_ = nullptr;
      std::string_view name_;
      std::size_t i_ = 0;
    };
    values(const params* p, std::string_view name) noexcept : p_(p), name_(name) {}
    iterator begin() const noexcept { return {p_, name_, p_->find(name_, 0)}; }
    iterator end() const noexcept { return {p_, name_, p_->size()}; }
    bool empty() const noexcept { return begin() == end(); }

   private:
    const params* p_;
    std::string_view name_;
  };
  values all(std::string_view name) const noexcept { return {this, name}; }

 private:
  struct entry {
    std::size_t name_off, name_len, value_off, value_len;  // into bytes_
  };
  // The index of the first pair called `name` at or after `from`; size() if none.
  std::size_t find(std::string_view name, std::size_t from) const noexcept;

  std::string bytes_;         // the decoded names and values, one after another
  std::vector<entry> index_;  // one per pair, in order
  std::string_view error_;    // a literal: why the last parse failed
};

}  // namespace lancer::http
