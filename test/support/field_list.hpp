// A request's header fields built in memory, for testing functions that take http::headers
// (cookies, Accept) without a server.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "lancer/http/headers.hpp"

namespace lancer_test {

// Owns the bytes that its `headers` point into, as a connection's buffer would.
class field_list {
 public:
  field_list(std::initializer_list<lancer::http::headers::field> fields) {
    for (const auto& f : fields) {
      const auto name_off = static_cast<std::uint32_t>(bytes_.size());
      bytes_.append(f.name);
      const auto value_off = static_cast<std::uint32_t>(bytes_.size());
      bytes_.append(f.value);
      h_.add(name_off, static_cast<std::uint32_t>(f.name.size()), value_off,
             static_cast<std::uint32_t>(f.value.size()));
    }
    h_.rebase(bytes_.data());
  }
  field_list(const field_list&) = delete;
  field_list& operator=(const field_list&) = delete;

  const lancer::http::headers& headers() const noexcept { return h_; }
  operator const lancer::http::headers&() const noexcept { return h_; }

 private:
  std::string bytes_;
  lancer::http::headers h_;
};

}  // namespace lancer_test
