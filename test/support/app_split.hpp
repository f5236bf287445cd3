// Checks that any request handler on the fake source gives the same answer to its input whole
// and cut in pieces (run_app_split, in http_app.hpp, does the cutting).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "http_app.hpp"  // run_app_split()
#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace lancer_test {

// Checks that `input` cut once at every byte boundary, and sent a byte at a time, gets the
// same answer as whole; stops at the first difference (one failure, naming the cut). Returns
// the answer to the whole input.
inline std::string check_every_split(const lancer::http::request_handler& h, std::string_view input,
                                     const lancer::http::limits& lim = {}) {
  const std::string whole = run_app_split(h, input, {}, lim);
  for (std::size_t i = 1; i < input.size(); ++i) {
    const std::size_t cut[] = {i};
    const std::string got = run_app_split(h, input, cut, lim);
    if (got != whole) {
      CAPTURE(i);
      CHECK(got == whole);
      return whole;
    }
  }
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i < input.size(); ++i)
    bytes.push_back(i);
  CHECK(run_app_split(h, input, bytes, lim) == whole);
  return whole;
}

}  // namespace lancer_test
