// json.hpp through the fake source: read_json answers 415, 400 and 413 by itself, respond_json
// writes application/json, and a request split anywhere gets the same answer.
#include "lancer/http/json.hpp"

#include <doctest/doctest.h>

#include <string>

#include <boost/json.hpp>

#include "app_split.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/log.hpp"

using lancer::connection;
using lancer::frame;
using lancer::pubframe;
using lancer::task;
using lancer_test::check_every_split;
using lancer_test::run_app_split;
namespace http = lancer::http;
namespace json = boost::json;

namespace {

struct quiet {
  quiet() { lancer::set_log_level(lancer::log_level::off); }
  ~quiet() { lancer::set_log_level(lancer::log_level::info); }
};

http::limits small() {
  http::limits lim;
  lim.body = 256;
  return lim;
}

// POST /json answers 201 with {"got": <the document>}; anything else 404.
task<> json_app(connection& c, http::request& req, frame&, pubframe&) {
  if (req.target() != "/json") {
    const json::value missing = {{"error", "not found"}};
    co_await http::respond_json(c, req, 404, missing);
    co_return;
  }
  const std::optional<json::value> doc = co_await http::read_json(c, req, small());
  if (!doc) {
    CHECK(req.answered());
    co_return;
  }
  json::object out;
  out["got"] = *doc;
  co_await http::respond_json(c, req, 201, out);
}

std::string post(std::string_view body, std::string_view type = "application/json",
                 std::string_view target = "/json") {
  std::string r = "POST " + std::string(target) + " HTTP/1.1\r\nHost: x\r\n";
  if (!type.empty()) r += "Content-Type: " + std::string(type) + "\r\n";
  return r + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

std::string run(std::string_view input) {
  return run_app_split(json_app, input, {}, small());
}

using lancer_test::body_of;
using lancer_test::status_of;

bool has(const std::string& s, std::string_view what) {
  return s.find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("is_json_type takes application/json and any +json, with parameters") {
  CHECK(http::is_json_type("application/json"));
  CHECK(http::is_json_type("Application/JSON; charset=utf-8"));
  CHECK(http::is_json_type(" application/json ;charset=\"UTF-8\""));
  CHECK(http::is_json_type("application/problem+json"));
  CHECK(http::is_json_type("application/vnd.api+JSON; ext=1"));
  CHECK_FALSE(http::is_json_type(""));
  CHECK_FALSE(http::is_json_type("json"));
  CHECK_FALSE(http::is_json_type("text/plain"));
  CHECK_FALSE(http::is_json_type("application/jsonx"));
  CHECK_FALSE(http::is_json_type("application/x-json-stream"));
  CHECK_FALSE(http::is_json_type("application/+json"));
  CHECK_FALSE(http::is_json_type("/+json"));
  CHECK_FALSE(http::is_json_type("application/json+xml"));
}

TEST_CASE("a JSON POST is read and answered with application/json") {
  quiet q;
  const std::string reply = run(post(R"({"a":[1,2,{"b":null}],"s":"\u00e9"})"));
  CHECK(status_of(reply) == 201);
  CHECK(has(reply, "\r\nContent-Type: application/json\r\n"));
  const std::string body = body_of(reply);
  CHECK(json::parse(body) == json::parse(R"({"got":{"a":[1,2,{"b":null}],"s":"é"}})"));
  CHECK(has(reply, "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"));
}

TEST_CASE("a JSON body may be chunked, and its type may be +json with a charset") {
  quiet q;
  const std::string reply =
      run("POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/problem+json; "
          "charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[1, \r\n2\r\n2]\r\n0\r\n\r\n");
  CHECK(status_of(reply) == 201);
  CHECK(json::parse(body_of(reply)) == json::parse(R"({"got":[1,2]})"));
}

TEST_CASE("a body that is not JSON by its type gets 415, and the connection goes on") {
  quiet q;
  for (const std::string_view type :
       {"text/plain", "", "application/jsonx", "json", "application/x-www-form-urlencoded"}) {
    CAPTURE(type);
    const std::string reply = run(post("{}", type) + post("[]"));
    CHECK(status_of(reply) == 415);
    CHECK(has(reply, "Content-Type must be application/json"));
    // The unread body was skipped, and the next request read right.
    CHECK(has(reply, "HTTP/1.1 201 Created\r\n"));
    CHECK(has(reply, R"({"got":[]})"));
  }
}

TEST_CASE("bad JSON gets 400 naming the error, and the connection goes on") {
  quiet q;
  struct bad_case {
    std::string body, says;
  };
  const bad_case cases[] = {
      {"{\"a\":}", "bad JSON at byte 5: syntax error"},
      {"{\"a\":1} x", "extra data"},
      {"[1,2", "incomplete JSON"},
      {"[1,]", "syntax error"},
      {"\"\xff\"", "bad JSON at byte 1"},  // not UTF-8
      {"{\"a\":1 /* comment */}", "syntax error"},
      {"   ", "incomplete JSON"},
  };
  for (const bad_case& b : cases) {
    CAPTURE(b.body);
    const std::string reply = run(post(b.body) + post("1"));
    CHECK(status_of(reply) == 400);
    CHECK(has(body_of(reply), b.says));
    CHECK(has(reply, R"({"got":1})"));
  }
}

TEST_CASE("an empty JSON body gets 400") {
  quiet q;
  const std::string reply = run(post(""));
  CHECK(status_of(reply) == 400);
  CHECK(has(reply, "empty body"));
}

TEST_CASE("nesting deeper than json_max_depth gets 400; at the limit it is read") {
  quiet q;
  const auto nested = [](std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
  };
  const std::string ok = run(post(nested(http::json_max_depth)));
  CHECK(status_of(ok) == 201);
  const std::string deep = run(post(nested(http::json_max_depth + 1)));
  CHECK(status_of(deep) == 400);
  CHECK(has(deep, "too deep"));
  // A hostile body of brackets is refused early, not parsed to its end.
  const std::string flood = run(post(std::string(200, '[')));
  CHECK(status_of(flood) == 400);
}

TEST_CASE("a JSON body over the limit gets 413 and the connection closes") {
  quiet q;
  const std::string big = "\"" + std::string(300, 'a') + "\"";
  const std::string fixed = run(post(big));
  CHECK(status_of(fixed) == 413);
  CHECK(has(fixed, "\r\nConnection: close\r\n"));
  // Chunked: read_json's read_body finds it too large as it arrives.
  std::string chunked =
      "POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i)
    chunked += "64\r\n" + std::string(100, ' ') + "\r\n";
  chunked += "0\r\n\r\n";
  const std::string reply = run(chunked);
  CHECK(status_of(reply) == 413);
  CHECK(has(reply, "\r\nConnection: close\r\n"));
}

TEST_CASE("respond_json answers HEAD without a body and other statuses as given") {
  quiet q;
  const std::string reply = run("GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(reply) == 404);
  CHECK(body_of(reply) == R"({"error":"not found"})");
  const std::string head = run("HEAD /other HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(status_of(head) == 404);
  CHECK(has(head, "\r\nContent-Length: 21\r\n"));
  CHECK(body_of(head).empty());
}

TEST_CASE("a JSON POST split anywhere gets the same answer") {
  quiet q;
  const std::string whole =
      check_every_split(json_app, post(R"({"name":"lancer","tags":["a","b"]})"), small());
  CHECK(status_of(whole) == 201);
}

TEST_CASE("a batch of 201, 415 and 400 split anywhere gets the same answers") {
  quiet q;
  const std::string input = post("[true]") + post("{}", "text/plain") + post("{bad}") + post("7");
  const std::string whole = check_every_split(json_app, input, small());
  CHECK(has(whole, "HTTP/1.1 201 Created\r\n"));
  CHECK(has(whole, "HTTP/1.1 415 "));
  CHECK(has(whole, "HTTP/1.1 400 "));
  CHECK(has(whole, R"({"got":7})"));
}

TEST_CASE("a 413 split anywhere gets the same answer") {
  quiet q;
  const std::string whole = check_every_split(json_app, post(std::string(300, '1')), small());
  CHECK(status_of(whole) == 413);
}
