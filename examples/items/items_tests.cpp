// The items app's tests: in memory, in virtual time.
#include <doctest/doctest.h>

#include "items.hpp"

using namespace std::chrono_literals;
using lancer::http::test_client;

TEST_CASE("hello greets by name") {
  test_client t{items::handler()};
  CHECK(t.get("/hello/ann").body == "Hello, ann!\n");
  CHECK(t.get("/hello/J%C3%BCrgen").body == "Hello, Jürgen!\n");
}

TEST_CASE("items are stored and found at their Location; 404, 405 with Allow, 400") {
  test_client t{items::handler()};
  const auto made = t.post("/items", R"({"name":"pen"})", "application/json");
  CHECK(made.status == 201);
  CHECK(made.header("Location") == "/items/1");
  const auto got = t.get(std::string(made.header("Location")));
  CHECK(got.status == 200);
  CHECK(got.body == R"({"name":"pen"})");
  CHECK(t.get("/items/2").status == 404);
  CHECK(t.post("/items", "{", "application/json").status == 400);
  const auto r = t.request("DELETE", "/items");
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "OPTIONS, POST");
  CHECK(t.get("/nowhere").status == 404);
}

TEST_CASE("an idle connection is closed after 5 s") {
  test_client t{items::handler()};
  CHECK(t.get("/hello/a").status == 200);
  t.advance(4s);
  CHECK(t.connected());
  t.advance(1s);
  CHECK(!t.connected());
}
