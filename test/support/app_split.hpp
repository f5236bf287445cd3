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

// Checks that `input` cut once at every byte boundary, and sent a byte at a time, gets the
// same answer from server handler `h` as whole; stops at the first difference (one failure,
// naming the cut). Returns the answer to the whole input.
inline std::string check_server_every_split(const lancer::server::handler& h,
                                            std::string_view input) {
  const std::string whole = run_server_split(h, input, {});
  for (std::size_t i = 1; i < input.size(); ++i) {
    const std::size_t cut[] = {i};
    const std::string got = run_server_split(h, input, cut);
    if (got != whole) {
      CAPTURE(i);
      CHECK(got == whole);
      return whole;
    }
  }
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i < input.size(); ++i)
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
