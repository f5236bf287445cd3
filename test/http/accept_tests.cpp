// accept.hpp: negotiate and accepts, per RFC 9110 12.5.1, over well-formed and malformed Accept.
#include "lancer/http/accept.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "field_list.hpp"

using lancer_test::field_list;
namespace http = lancer::http;

namespace {

using opt_index = std::optional<std::size_t>;

constexpr std::string_view k_json_html[] = {"application/json", "text/html"};
constexpr std::string_view k_html_json[] = {"text/html", "application/json"};

}  // namespace

TEST_CASE("an absent or empty Accept takes the first offered type") {
  CHECK(http::negotiate("", k_json_html) == opt_index(0));
  CHECK(http::negotiate("  ", k_json_html) == opt_index(0));
  CHECK(http::negotiate(" , ,", k_json_html) == opt_index(0));
  const field_list none{{"Host", "x"}};
  CHECK(http::negotiate(none.headers(), k_html_json) == opt_index(0));
  CHECK(http::accepts(none, "image/png"));
  CHECK_FALSE(http::negotiate("*/*", std::span<const std::string_view>{}));  // nothing offered
}

TEST_CASE("the exact type the client names wins; anything else is not acceptable") {
  CHECK(http::negotiate("text/html", k_json_html) == opt_index(1));
  CHECK(http::negotiate("application/json", k_json_html) == opt_index(0));
  CHECK_FALSE(http::negotiate("image/png", k_json_html));
  CHECK(http::negotiate("TEXT/HTML", k_json_html) == opt_index(1));  // case-insensitive
}

TEST_CASE("q-values order the offered types; a tie goes to the server's order") {
  CHECK(http::negotiate("text/html;q=0.9, application/json;q=0.8", k_json_html) == opt_index(1));
  CHECK(http::negotiate("text/html;q=0.5, application/json", k_json_html) == opt_index(0));
  CHECK(http::negotiate("text/html, application/json", k_json_html) == opt_index(0));
  CHECK(http::negotiate("text/html, application/json", k_html_json) == opt_index(0));
  CHECK(http::negotiate("text/html;q=0.001, application/json;q=0.002", k_json_html) ==
        opt_index(0));
  CHECK(http::negotiate("text/html ; Q=1.000 , application/json ;q=0.999", k_json_html) ==
        opt_index(1));
}

TEST_CASE("q=0 means not acceptable, even under a wildcard") {
  CHECK(http::negotiate("application/json;q=0, */*", k_json_html) == opt_index(1));
  CHECK_FALSE(http::negotiate("application/json;q=0", k_json_html));
  CHECK_FALSE(http::negotiate("*/*;q=0", k_json_html));
  CHECK_FALSE(http::negotiate("text/*;q=0.0, application/*;q=0.000", k_json_html));
  CHECK(http::negotiate("*/*;q=0, text/html", k_json_html) == opt_index(1));
}

TEST_CASE("the most specific matching range sets an offered type's weight") {
  // text/html is refused by its own range even though text/* and */* would take it.
  CHECK(http::negotiate("*/*, text/*;q=0.5, text/html;q=0", k_html_json) == opt_index(1));
  // The type/* range weighs text/html below */*'s weight for JSON.
  CHECK(http::negotiate("text/*;q=0.3, */*;q=0.5", k_html_json) == opt_index(1));
  CHECK(http::negotiate("text/*;q=0.6, */*;q=0.5", k_html_json) == opt_index(0));
  // Order in the header does not matter, only specificity.
  CHECK(http::negotiate("text/html;q=0, */*", k_html_json) == opt_index(1));
  CHECK(http::negotiate("text/*", k_json_html) == opt_index(1));
  CHECK(http::negotiate("application/*", k_html_json) == opt_index(1));
}

TEST_CASE("media range parameters must match the offered type's, and are more specific") {
  constexpr std::string_view offered[] = {"text/html;level=1", "text/html;level=2", "text/html"};
  CHECK(http::negotiate("text/html;level=2", offered) == opt_index(1));
  CHECK(http::negotiate("text/html;LEVEL=\"2\"", offered) == opt_index(1));
  CHECK(http::negotiate("text/html;q=0.5, text/html;level=2;q=0.9", offered) == opt_index(1));
  CHECK(http::negotiate("text/html;level=1;q=0, text/html", offered) == opt_index(1));
  CHECK_FALSE(http::negotiate("text/html;level=3", offered));
  // RFC 9110's example: text/plain;format=flowed gets 1, text/plain 0.7.
  constexpr std::string_view plain[] = {"text/plain", "text/plain;format=flowed"};
  CHECK(http::negotiate("text/plain;q=0.7, text/plain;format=flowed", plain) == opt_index(1));
}

TEST_CASE("parameters after q are accept-ext and ignored") {
  constexpr std::string_view offered[] = {"text/html"};
  CHECK(http::negotiate("text/html;q=0.5;ext=1", offered) == opt_index(0));
  CHECK(http::negotiate("text/html;q=0;ext=1", offered) == std::nullopt);
}

TEST_CASE("a malformed range or q is ignored, as if absent") {
  // Each bad range is skipped; the good one that follows still counts.
  for (const std::string_view bad :
       {"text", "/html", "text/", "*/html", "text/ht ml", "text/html;q=2", "text/html;q=1.5",
        "text/html;q=1.001", "text/html;q=0.1234", "text/html;q=abc",
        "text/html;q=", "text/html;q=-1", "text/html;q=.5", "text/html;=1", "text/html;a",
        "text/html;q=0 .5", "text/html;a=b c", "text/html;a=\"x\"y"}) {
    CAPTURE(bad);
    const std::string value = std::string(bad) + ", application/json;q=0.1";
    CHECK(http::negotiate(value, k_html_json) == opt_index(1));
  }
  // Nothing well-formed at all: as if there were no Accept.
  CHECK(http::negotiate("garbage", k_json_html) == opt_index(0));
  CHECK(http::negotiate("text/html;q=2", k_json_html) == opt_index(0));
  CHECK(http::negotiate(";;;,,,;=;", k_json_html) == opt_index(0));
}

TEST_CASE("quoted parameter values may hold ',' and ';'") {
  constexpr std::string_view offered[] = {"text/html;x=\"a,b;c\"", "application/json"};
  CHECK(http::negotiate("text/html;x=\"a,b;c\";q=0.9, application/json;q=0.5", offered) ==
        opt_index(0));
  CHECK(http::negotiate("text/html;x=\"a\\\",b\", application/json", offered) == opt_index(1));
}

TEST_CASE("a hostile Accept costs linear work and gives a sane answer") {
  std::string flood;
  for (int i = 0; i < 4000; ++i)
    flood += "a/b;q=0.5,";
  flood += "text/html;q=0.1";
  CHECK(http::negotiate(flood, k_json_html) == opt_index(1));
  std::string commas(8000, ',');
  CHECK(http::negotiate(commas, k_json_html) == opt_index(0));
  std::string quote = "text/html;x=\"" + std::string(8000, ';');  // an unterminated quote
  CHECK(http::negotiate(quote, k_json_html) == opt_index(0));
}

TEST_CASE("several Accept fields count as one list") {
  const field_list h{{"Accept", "application/json;q=0.2"}, {"Host", "x"}, {"Accept", "text/html"}};
  CHECK(http::negotiate(h.headers(), k_json_html) == opt_index(1));
  CHECK(http::accepts(h, "application/json"));
  CHECK(http::accepts(h, "text/html"));
  CHECK_FALSE(http::accepts(h, "image/png"));
}

TEST_CASE("accepts answers for one type, q=0 and wildcards included") {
  const field_list h{{"Accept", "text/*, image/png;q=0, */*;q=0.1"}};
  CHECK(http::accepts(h, "text/plain"));
  CHECK(http::accepts(h, "application/json"));
  CHECK_FALSE(http::accepts(h, "image/png"));
  const field_list strict{{"Accept", "application/json"}};
  CHECK_FALSE(http::accepts(strict, "text/html"));
  CHECK(http::accepts(strict, "Application/JSON"));
  const field_list broken{{"Accept", "nonsense"}};
  CHECK(http::accepts(broken, "text/html"));
}
