// url.hpp: split_target, percent_decode / percent_encode, and params over hostile input.
#include "lancer/http/url.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace http = lancer::http;

namespace {

// percent_decode into a fresh string; nullopt when it fails.
std::optional<std::string> decoded(std::string_view in, bool plus_as_space = false) {
  std::string out;
  if (!http::percent_decode(in, out, plus_as_space)) return std::nullopt;
  return out;
}

std::vector<std::string> values_of(const http::params& p, std::string_view name) {
  std::vector<std::string> out;
  for (const std::string_view v : p.all(name))
    out.emplace_back(v);
  return out;
}

}  // namespace

TEST_CASE("split_target separates the path and the query, without the '?'") {
  CHECK(http::split_target("/a/b?x=1&y").path == "/a/b");
  CHECK(http::split_target("/a/b?x=1&y").query == "x=1&y");
  CHECK(http::split_target("/a/b").path == "/a/b");
  CHECK(http::split_target("/a/b").query.empty());
  CHECK(http::split_target("/a?").path == "/a");
  CHECK(http::split_target("/a?").query.empty());
  CHECK(http::split_target("/a?b?c").query == "b?c");  // a second '?' is the query's
  CHECK(http::split_target("").path.empty());
}

TEST_CASE("split_target ignores a fragment in the path or the query") {
  CHECK(http::split_target("/a#frag?x=1").path == "/a");
  CHECK(http::split_target("/a#frag?x=1").query.empty());
  CHECK(http::split_target("/a?x=1#frag").path == "/a");
  CHECK(http::split_target("/a?x=1#frag").query == "x=1");
}

TEST_CASE("percent_decode decodes escapes in either case and appends to out") {
  CHECK(decoded("/a%20b%2fc%2F") == std::optional<std::string>("/a b/c/"));
  CHECK(decoded("%C3%a9") == std::optional<std::string>("\xc3\xa9"));
  CHECK(decoded("") == std::optional<std::string>(""));
  CHECK(decoded("a+b") == std::optional<std::string>("a+b"));  // '+' is itself in a path
  CHECK(decoded("a+b%2B", true) == std::optional<std::string>("a b+"));
  std::string out = "prefix:";
  CHECK(http::percent_decode("x%41", out));
  CHECK(out == "prefix:xA");
}

TEST_CASE("percent_decode refuses bad escapes and NUL, leaving out as it was") {
  for (const std::string_view bad :
       {"%zz", "%4", "%", "a%", "a%4", "%g0", "%0g", "%%41", "%00", "a%00b", "%+1"}) {
    CAPTURE(bad);
    std::string out = "kept";
    CHECK_FALSE(http::percent_decode(bad, out, true));
    CHECK(out == "kept");
  }
  std::string out = "kept";
  CHECK_FALSE(http::percent_decode(std::string_view("a\0b", 3), out));  // a raw NUL too
  CHECK(out == "kept");
}

TEST_CASE("percent_encode keeps only RFC 3986's unreserved bytes") {
  CHECK(http::percent_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(http::percent_encode("a b/c?d=e&f+g#h%") == "a%20b%2Fc%3Fd%3De%26f%2Bg%23h%25");
  CHECK(http::percent_encode("\xc3\xa9") == "%C3%A9");
  CHECK(http::percent_encode(std::string_view("\0\r\n", 3)) == "%00%0D%0A");
  std::string out = "/p/";
  http::percent_encode("x y", out);
  CHECK(out == "/p/x%20y");
}

TEST_CASE("percent_encode then percent_decode gives every byte back (except NUL)") {
  std::string all;
  for (int b = 1; b < 256; ++b)
    all += static_cast<char>(b);
  CHECK(decoded(http::percent_encode(all)) == std::optional<std::string>(all));
  CHECK(decoded(http::percent_encode(all), true) == std::optional<std::string>(all));
}

TEST_CASE("params parses names and values, decoding %XX and '+'") {
  http::params p;
  REQUIRE(p.parse("a=1&b=two+words&c=%C3%A9&d%20e=f%26g"));
  CHECK(p.error().empty());
  CHECK(p.size() == 4);
  CHECK(p.get("a") == std::optional<std::string_view>("1"));
  CHECK(p.get("b") == std::optional<std::string_view>("two words"));
  CHECK(p.get("c") == std::optional<std::string_view>("\xc3\xa9"));
  CHECK(p.get("d e") == std::optional<std::string_view>("f&g"));
  CHECK_FALSE(p.get("A"));  // names are case-sensitive
  CHECK_FALSE(p.has("z"));
  CHECK(p.has("a"));
}

TEST_CASE("params: no '=' is an empty value, empty pairs are skipped, '=' may repeat") {
  http::params p;
  REQUIRE(p.parse("&&a&b=&=c&&d=1=2&"));
  CHECK(p.size() == 4);
  CHECK(p.get("a") == std::optional<std::string_view>(""));
  CHECK(p.get("b") == std::optional<std::string_view>(""));
  CHECK(p.get("") == std::optional<std::string_view>("c"));
  CHECK(p.get("d") == std::optional<std::string_view>("1=2"));
  REQUIRE(p.parse(""));
  CHECK(p.empty());
  REQUIRE(p.parse("&&&"));
  CHECK(p.empty());
}

TEST_CASE("params: a repeated name keeps every value in order; get() gives the first") {
  http::params p;
  REQUIRE(p.parse("tag=a&x=1&tag=b&tag=&y=2&tag=c"));
  CHECK(p.get("tag") == std::optional<std::string_view>("a"));
  CHECK(values_of(p, "tag") == std::vector<std::string>{"a", "b", "", "c"});
  CHECK(values_of(p, "x") == std::vector<std::string>{"1"});
  CHECK(values_of(p, "none").empty());
  CHECK(p.all("none").empty());
  CHECK_FALSE(p.all("tag").empty());
}

TEST_CASE("params iterates over every pair in order") {
  http::params p;
  REQUIRE(p.parse("a=1&b=2&a=3"));
  std::string seen;
  for (const http::params::param kv : p)
    seen.append(kv.name).append(":").append(kv.value).append(";");
  CHECK(seen == "a:1;b:2;a:3;");
  CHECK(p[1].name == "b");
}

TEST_CASE("params: a bad escape or NUL fails the parse and leaves the object empty") {
  http::params p;
  for (const std::string_view bad : {"a=%zz", "a=1&b=%4", "a=%", "%zz=1", "a=1&b=%00", "x%00=1"}) {
    CAPTURE(bad);
    REQUIRE(p.parse("old=1"));
    CHECK_FALSE(p.parse(bad));
    CHECK(p.error() == "bad percent-escape");
    CHECK(p.empty());
    CHECK_FALSE(p.get("a"));
    CHECK_FALSE(p.get("old"));
  }
  REQUIRE(p.parse("ok=1"));  // and it can be used again
  CHECK(p.error().empty());
  CHECK(p.get("ok") == std::optional<std::string_view>("1"));
}

TEST_CASE("params refuses more than default_max_pairs pairs; empty pairs do not count") {
  std::string text;
  for (std::size_t i = 0; i < http::params::default_max_pairs; ++i)
    text += "k" + std::to_string(i) + "=v&&";
  http::params p;
  REQUIRE(p.parse(text));
  CHECK(p.size() == http::params::default_max_pairs);
  CHECK(p.get("k999") == std::optional<std::string_view>("v"));
  CHECK_FALSE(p.parse(text + "one=more"));
  CHECK(p.error() == "too many pairs");
  CHECK(p.empty());
  // A hostile body of a million bare '&' and 'a's is refused after the limit, not indexed.
  std::string flood;
  for (int i = 0; i < 1'000'000; ++i)
    flood += "a&";
  CHECK_FALSE(p.parse(flood));
  CHECK_FALSE(p.parse("a&b&c", 2));  // the limit can be set per call
  CHECK(p.parse("a&b", 2));
}

TEST_CASE("params views stay valid across a copy and a move") {
  http::params p;
  REQUIRE(p.parse("name=value+here&n=2"));
  const http::params copy = p;
  http::params moved = std::move(p);
  p.clear();
  CHECK(copy.get("name") == std::optional<std::string_view>("value here"));
  CHECK(moved.get("name") == std::optional<std::string_view>("value here"));
  CHECK(moved.get("n") == std::optional<std::string_view>("2"));
}

// Counting allocations would take replacing the global operator new in all of test_http
// (counting_new.hpp), which ASan's own nothrow new does not pair with; the decoded bytes
// staying where they were shows the storage is reused (the index is a vector cleared, not
// shrunk).
TEST_CASE("params: a warm re-parse reuses its storage") {
  http::params p;
  const std::string first = "alpha=1&beta=two+words&gamma=%41%42&delta=4";
  REQUIRE(p.parse(first));
  const char* storage = p[0].name.data();
  for (int i = 0; i < 3; ++i) {
    REQUIRE(p.parse("x=%31&y=22&z=three"));  // shorter, fewer pairs
    CHECK(p[0].name.data() == storage);
    CHECK(p.get("z") == std::optional<std::string_view>("three"));
    CHECK_FALSE(p.parse("x=%zz"));  // a failure keeps the storage too
    REQUIRE(p.parse(first));
    CHECK(p[0].name.data() == storage);
    CHECK(p.get("gamma") == std::optional<std::string_view>("AB"));
  }
}
