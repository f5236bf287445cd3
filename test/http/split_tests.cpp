// Requests split at every byte boundary, in three pieces and byte by byte get the same answers
// as the whole input: whatever the network does to a request, it is read the same way.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "app_split.hpp"
#include "http_app.hpp"
#include "lancer/log.hpp"

namespace http = lancer::http;
using lancer_test::run_split;

namespace {

struct quiet {
  quiet() { lancer::set_log_level(lancer::log_level::off); }
  ~quiet() { lancer::set_log_level(lancer::log_level::info); }
};

std::string cl_body() {
  return "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world";
}
std::string chunked_body() {
  return "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;ext=1;quoted=\"a b\"\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-A: 1\r\nTrailer-B: "
         "2\r\n\r\n";
}
std::string forty_fields() {
  std::string r = "GET /fields HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 39; ++i)
    r += "X-Field-" + std::to_string(i) + ": value " + std::to_string(i * 7) + "\r\n";
  return r + "\r\n";
}
std::string big_field(std::size_t n) {
  std::string v;
  for (std::size_t i = 0; i < n; ++i)
    v += static_cast<char>('a' + i % 26);
  return "GET /fields HTTP/1.1\r\nHost: x\r\nCookie: " + v + "\r\n\r\n";
}

std::vector<std::size_t> all_cuts(std::size_t n) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < n; ++i)
    cuts.push_back(i);
  return cuts;
}

std::size_t count(const std::string& s, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1))
    ++n;
  return n;
}

// Every split of `input` into two pieces, some splits into three, and byte by byte give
// `whole`'s answer (check_every_split); so do three pieces cut near each end of the request
// line and of the header, where the parser changes state. Stops at the first difference.
void check_splits(const std::string& input, const std::string& whole) {
  CHECK(lancer_test::check_every_split(lancer_test::http_app, input) == whole);
  const std::size_t n = input.size();
  for (std::size_t at = input.find("\r\n"); at != std::string::npos;
       at = input.find("\r\n", at + 1)) {
    for (std::size_t i = at > 2 ? at - 2 : 1; i < std::min(n, at + 3); ++i) {
      for (std::size_t j = i + 1; j < std::min(n, i + 40); ++j) {
        const std::vector<std::size_t> cuts = {i, j};
        const std::string got = run_split(input, cuts);
        if (got != whole) {
          CAPTURE(i);
          CAPTURE(j);
          CHECK(got == whole);
          return;
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("a Content-Length body split anywhere is read the same") {
  quiet q;
  const std::string whole = run_split(cl_body(), {});
  CHECK(whole.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(whole.find("\r\n\r\nhello world") != std::string::npos);
  check_splits(cl_body(), whole);
}

TEST_CASE("a chunked body with extensions and trailers split anywhere is read the same") {
  quiet q;
  const std::string whole = run_split(chunked_body(), {});
  CHECK(whole.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(whole.find("\r\n\r\nhello world") != std::string::npos);
  check_splits(chunked_body(), whole);
}

TEST_CASE("a GET with 40 fields split anywhere is read the same") {
  quiet q;
  const std::string whole = run_split(forty_fields(), {});
  CHECK(whole.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(count(whole, "X-Field-") == 39);
  CHECK(whole.find("X-Field-38=value 266\n") != std::string::npos);
  check_splits(forty_fields(), whole);
}

TEST_CASE("a request with a 6 KiB field split anywhere is read the same") {
  quiet q;
  const std::string input = big_field(6 * 1024);
  const std::string whole = run_split(input, {});
  CHECK(whole.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(whole.find("Cookie=abcdefghijklmnopqrstuvwxyz") != std::string::npos);
  check_splits(input, whole);
}

TEST_CASE("a pipelined batch of all of them split anywhere is read the same") {
  quiet q;
  const std::string input =
      cl_body() + chunked_body() + forty_fields() + big_field(6 * 1024) + cl_body();
  const std::string whole = run_split(input, {});
  CHECK(count(whole, "HTTP/1.1 200 OK\r\n") == 5);
  CHECK(count(whole, "hello world") == 3);
  CHECK(count(whole, "X-Field-") == 39);
  check_splits(input, whole);
}

TEST_CASE("header blocks from 1 KiB to 64 KiB: 200 up to the limit, 431 above it") {
  quiet q;
  const http::limits lim;  // header_bytes: 8 KiB
  // The header block of big_field(n): "Host: x\r\n", "Cookie: " + n bytes + "\r\n", "\r\n".
  const auto block_of = [](std::size_t n) { return 9 + 8 + n + 2 + 2; };
  std::vector<std::size_t> sizes;
  for (std::size_t kib = 1; kib <= 64; kib *= 2)
    sizes.push_back(kib * 1024);
  for (std::size_t kib = 3; kib <= 16; ++kib)
    sizes.push_back(kib * 1024 - 21);
  sizes.push_back(lim.header_bytes);      // exactly at the limit
  sizes.push_back(lim.header_bytes + 1);  // one byte over
  sizes.push_back(lim.header_bytes - 1);
  for (const std::size_t block : sizes) {
    CAPTURE(block);
    const std::string input = big_field(block - block_of(0));
    const unsigned expected = block <= lim.header_bytes ? 200 : 431;
    const std::string status = expected == 200 ? "HTTP/1.1 200 " : "HTTP/1.1 431 ";
    // Whole, and as a socket would deliver it: 4 KiB reads, and one odd split.
    std::vector<std::size_t> reads;
    for (std::size_t at = 4096; at < input.size(); at += 4096)
      reads.push_back(at);
    const std::size_t odd[] = {input.size() / 3, input.size() - 3};
    for (const std::string& got :
         {run_split(input, {}), run_split(input, reads), run_split(input, odd)}) {
      CHECK(got.rfind(status, 0) == 0);
    }
  }
}

TEST_CASE("200 pipelined GETs in one write, read 4 KiB at a time, all get 200") {
  quiet q;
  std::string input;
  for (int i = 0; i < 200; ++i)
    input +=
        "GET /plaintext?n=" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
  std::vector<std::size_t> reads;
  for (std::size_t at = 4096; at < input.size(); at += 4096)
    reads.push_back(at);
  const std::string whole = run_split(input, {});
  CHECK(count(whole, "HTTP/1.1 200 OK\r\n") == 200);
  CHECK(run_split(input, reads) == whole);
  CHECK(run_split(input, all_cuts(input.size())) == whole);
}
