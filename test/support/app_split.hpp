// Drives any request handler on the fake source with its input whole or cut in pieces, and
// checks that every cut gets the same answer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "http_app.hpp"  // comparable()
#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace lancer_test {

// Runs a fresh server around `http::serve(h, lim)` on the fake source (virtual time), sends it
// `input` cut at the byte offsets in `cuts` (ascending; each piece after the server has done
// all it can with the previous one), then half-closes. Returns what the server sent, through
// comparable().
inline std::string run_app_split(const lancer::http::request_handler& h, std::string_view input,
                                 std::span<const std::size_t> cuts,
                                 const lancer::http::limits& lim = {}) {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, lancer::http::serve(h, lim)};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  lancer::fake_client client = fake.connect();
  std::string out;
  std::size_t from = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t to = i < cuts.size() ? std::min(cuts[i], input.size()) : input.size();
    if (to > from) client.write(input.substr(from, to - from));
    from = std::max(from, to);
    sched.run_until_idle();
    out += client.read();
  }
  client.shutdown_write();
  sched.run_until_idle();
  out += client.read();
  return comparable(std::move(out));
}

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
