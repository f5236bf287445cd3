// cookies.hpp: reading Cookie fields leniently, building Set-Cookie values strictly.
#include "lancer/http/cookies.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "field_list.hpp"

using namespace std::chrono_literals;
using lancer_test::field_list;
namespace http = lancer::http;

namespace {

using opt_sv = std::optional<std::string_view>;

// The message of the std::invalid_argument that set_cookie_value throws; "" if it does not.
std::string refusal(std::string_view name, std::string_view value,
                    const http::cookie_options& o = {}) {
  try {
    (void)http::set_cookie_value(name, value, o);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("cookie finds a cookie by name in the RFC 6265 form") {
  const field_list h{{"Host", "x"}, {"Cookie", "a=1; sid=abc123; b=2"}};
  CHECK(http::cookie(h, "sid") == opt_sv("abc123"));
  CHECK(http::cookie(h, "a") == opt_sv("1"));
  CHECK(http::cookie(h, "b") == opt_sv("2"));
  CHECK_FALSE(http::cookie(h, "SID"));  // names are case-sensitive
  CHECK_FALSE(http::cookie(h, "c"));
  CHECK_FALSE(http::cookie(h, "Host"));  // only Cookie fields count
}

TEST_CASE("cookie tolerates missing or extra spaces, empty items and items without '='") {
  const field_list h{{"cookie", " a=1;b=2 ;;  c = 3 ;\td=\t;flag; =anon;e=x=y;"}};
  CHECK(http::cookie(h, "a") == opt_sv("1"));
  CHECK(http::cookie(h, "b") == opt_sv("2"));
  CHECK(http::cookie(h, "c") == opt_sv("3"));
  CHECK(http::cookie(h, "d") == opt_sv(""));
  CHECK(http::cookie(h, "e") == opt_sv("x=y"));
  CHECK_FALSE(http::cookie(h, "flag"));
  CHECK_FALSE(http::cookie(h, ""));
}

TEST_CASE("cookie strips a DQUOTE-wrapped value, and only a whole pair of quotes") {
  const field_list h{{"Cookie", "q=\"quoted\"; e=\"\"; half=\"x; lone=\""}};
  CHECK(http::cookie(h, "q") == opt_sv("quoted"));
  CHECK(http::cookie(h, "e") == opt_sv(""));
  CHECK(http::cookie(h, "half") == opt_sv("\"x"));
  CHECK(http::cookie(h, "lone") == opt_sv("\""));
}

TEST_CASE("cookie looks through every Cookie field; the first match wins") {
  const field_list h{{"Cookie", "a=1"}, {"Accept", "*/*"}, {"Cookie", "b=2; a=3"}};
  CHECK(http::cookie(h, "a") == opt_sv("1"));
  CHECK(http::cookie(h, "b") == opt_sv("2"));
  const field_list none{{"Host", "x"}};
  CHECK_FALSE(http::cookie(none, "a"));
  const field_list empty{{"Cookie", ""}};
  CHECK_FALSE(http::cookie(empty, "a"));
}

TEST_CASE("for_each_cookie sees every cookie in order and can stop early") {
  const field_list h{{"Cookie", "a=1; b=2"}, {"Cookie", "c=\"3\""}};
  std::string seen;
  http::for_each_cookie(h, [&](std::string_view n, std::string_view v) {
    seen.append(n).append("=").append(v).append(";");
  });
  CHECK(seen == "a=1;b=2;c=3;");
  int calls = 0;
  http::for_each_cookie(h, [&](std::string_view, std::string_view) { return ++calls < 2; });
  CHECK(calls == 2);
}

TEST_CASE("set_cookie_value writes the attributes in order, with secure defaults") {
  CHECK(http::set_cookie_value("sid", "abc") == "sid=abc; Path=/; HttpOnly; SameSite=Lax");
  http::cookie_options o;
  o.path = "/app";
  o.domain = "example.com";
  o.max_age = 24h;
  o.secure = true;
  o.http_only = false;
  o.same_site = "strict";
  CHECK(http::set_cookie_value("sid", "abc", o) ==
        "sid=abc; Path=/app; Domain=example.com; Max-Age=86400; Secure; SameSite=Strict");
  http::cookie_options bare;
  bare.path = "";
  bare.http_only = false;
  bare.same_site = "";
  CHECK(http::set_cookie_value("a", "", bare) == "a=");
  CHECK(http::set_cookie_value("a", "\"quoted\"", bare) == "a=\"quoted\"");
}

TEST_CASE("set_cookie_value: Max-Age 0 or below deletes the cookie") {
  http::cookie_options o;
  o.max_age = 0s;
  CHECK(http::set_cookie_value("a", "", o) == "a=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
  o.max_age = -5s;
  CHECK(http::set_cookie_value("a", "", o) == "a=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
}

TEST_CASE("set_cookie_value refuses a name that is not a token") {
  for (const std::string_view bad :
       {"", "a b", "a=b", "a;b", "a\r\nSet-Cookie: x", "a,b", "(a)", "\xc3\xa9"}) {
    CAPTURE(bad);
    CHECK(refusal(bad, "v").find("name is not a token") != std::string::npos);
  }
}

TEST_CASE("set_cookie_value refuses a value outside cookie-octets: no injection") {
  for (const std::string_view bad : {"a; Domain=evil.com", "a\r\nSet-Cookie: admin=1", "a b", "a,b",
                                     "a\\b", "\"a", "a\"b", "\xc3\xa9", "a\tb"}) {
    CAPTURE(bad);
    CHECK(refusal("n", bad).find("cookie-octets") != std::string::npos);
  }
  CHECK(refusal("n", std::string_view("a\0b", 3)).find("cookie-octets") != std::string::npos);
  CHECK(refusal("n", "!#$%&'()*+-./09:<=>?@AZ[]^_`az{|}~").empty());  // every other octet
}

TEST_CASE("set_cookie_value refuses attributes with ';' or control characters") {
  http::cookie_options o;
  o.path = "/a; Domain=evil.com";
  CHECK(refusal("n", "v", o).find("Path") != std::string::npos);
  o.path = "/a\r\nX-Evil: 1";
  CHECK(refusal("n", "v", o).find("Path") != std::string::npos);
  o.path = std::string_view("/a\0", 3);
  CHECK(refusal("n", "v", o).find("Path") != std::string::npos);
  o.path = "/";
  o.domain = "example.com\n";
  CHECK(refusal("n", "v", o).find("Domain") != std::string::npos);
  o.domain = "a;b";
  CHECK(refusal("n", "v", o).find("Domain") != std::string::npos);
}

TEST_CASE("set_cookie_value: SameSite is Strict, Lax or None, and None needs Secure") {
  http::cookie_options o;
  o.same_site = "None";
  CHECK(refusal("n", "v", o).find("SameSite=None needs Secure") != std::string::npos);
  o.secure = true;
  CHECK(http::set_cookie_value("n", "v", o) == "n=v; Path=/; Secure; HttpOnly; SameSite=None");
  o.same_site = "Lax; Domain=evil.com";
  CHECK(refusal("n", "v", o).find("SameSite must be") != std::string::npos);
  o.same_site = "sometimes";
  CHECK(refusal("n", "v", o).find("SameSite must be") != std::string::npos);
}

TEST_CASE("set_cookie_value: __Secure- and __Host- prefixes keep their rules") {
  http::cookie_options o;
  CHECK(refusal("__Secure-id", "v", o).find("__Secure-") != std::string::npos);
  CHECK(refusal("__Host-id", "v", o).find("__Host-") != std::string::npos);
  o.secure = true;
  CHECK(refusal("__Secure-id", "v", o).empty());
  CHECK(refusal("__Host-id", "v", o).empty());
  o.domain = "example.com";
  CHECK(refusal("__Host-id", "v", o).find("__Host-") != std::string::npos);
  o.domain = "";
  o.path = "/app";
  CHECK(refusal("__Host-id", "v", o).find("__Host-") != std::string::npos);
}

TEST_CASE("a refusal never echoes the offending bytes") {
  CHECK(refusal("n", "x\r\nSet-Cookie: evil").find("evil") == std::string::npos);
  CHECK(refusal("evil\r\n", "v").find("evil") == std::string::npos);
}
