// Checks that any request handler on the fake source gives the same answer to its input whole
// and cut in pieces (run_server_split, in http_app.hpp, does the cutting).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "http_app.hpp"  // run_server_split()
#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace lancer_test {

// Checks that `input` gets the same answer from server handler `h` as whole: cut once at
// every byte boundary, cut in three pieces at about 1500 pairs of cuts spread over it, and
// sent a byte at a time. Stops at the first difference (one failure, naming the cuts).
// Returns the answer to the whole input.
inline std::string check_server_every_split(const lancer::server::handler& h,
                                            std::string_view input) {
  const std::string whole = run_server_split(h, input, {});
  const std::size_t n = input.size();
  // True (after one failed check naming the cuts) if `cuts` gets another answer.
  const auto differs = [&](std::span<const std::size_t> cuts) {
    const std::string got = run_server_split(h, input, cuts);
    if (got == whole) return false;
    std::string at;
    for (const std::size_t c : cuts)
      at += std::to_string(c) + " ";
    CAPTURE(at);
    CHECK(got == whole);
    return true;
  };
  for (std::size_t i = 1; i < n; ++i) {
    const std::size_t cut[] = {i};
    if (differs(cut)) return whole;
  }
  const std::size_t step = std::max<std::size_t>(1, n / 38);
  for (std::size_t i = 1; i < n; i += step) {
    for (std::size_t j = i + 1; j < n; j += step) {
      const std::size_t cuts[] = {i, j};
      if (differs(cuts)) return whole;
    }
  }
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i < n; ++i)
    bytes.push_back(i);
  CHECK(run_server_split(h, input, bytes) == whole);
  return whole;
}

// The same for a request handler, served by http::serve under `lim`.
inline std::string check_every_split(const lancer::http::request_handler& h, std::string_view input,
                                     const lancer::http::limits& lim = {}) {
  return check_server_every_split(lancer::http::serve(h, lim), input);
}

}  // namespace lancer_test
