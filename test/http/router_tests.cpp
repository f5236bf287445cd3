// The router: hosts, patterns, methods, error pages, hooks and middleware, through the test
// client (fake source, virtual time).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lancer/http/app.hpp"

namespace http = lancer::http;
using lancer::task;
using namespace std::chrono_literals;

namespace {

// A handler answering `text`, then "path=<its capture>" and "<name>=<value>" for each other
// capture with a value.
http::route_handler says(std::string text) {
  return [text](http::context& x) -> task<> {
    std::string out = text;
    for (const std::string_view name : {"id", "path", "name", "rest", "a", "b"}) {
      if (name != "path" && x.param(name).empty()) continue;
      out += "\n" + std::string(name) + "=" + std::string(x.param(name));
    }
    co_await x.respond(200, "text/plain", out);
  };
}

http::fields host(std::string_view h) {
  http::fields f;
  f.add("Host", h);
  return f;
}

std::string first_line(const http::test_response& r) {
  return r.body.substr(0, r.body.find('\n'));
}

}  // namespace

TEST_CASE("hosts: exact names and comma lists, *., ~. and +. patterns, the any host") {
  http::router r;
  r.get("/", says("any"));
  r.host("example.com, www.example.com").get("/", says("exact"));
  r.host("*.wild.test").get("/", says("star"));
  r.host("~.below.test").get("/", says("tilde"));
  r.host("+.one.test").get("/", says("plus"));
  r.host("deep.wild.test").get("/", says("deep exact"));
  r.host("*.a.wild.test").get("/", says("longer star"));
  http::test_client t{r.handler()};
  const auto at = [&](std::string_view h) { return first_line(t.get("/", host(h))); };
  CHECK(at("example.com") == "exact");
  CHECK(at("WWW.Example.COM") == "exact");   // case-insensitive
  CHECK(at("example.com:8080") == "exact");  // the port is not part of the name
  CHECK(at("example.com.") == "exact");      // nor a trailing dot
  CHECK(at("other.example.com") == "any");
  CHECK(at("wild.test") == "star");  // *. matches the name itself
  CHECK(at("x.wild.test") == "star");
  CHECK(at("x.y.wild.test") == "star");
  CHECK(at("deep.wild.test") == "deep exact");  // an exact name wins over a pattern
  CHECK(at("q.a.wild.test") == "longer star");  // a longer pattern over a shorter
  CHECK(at("a.wild.test") == "longer star");
  CHECK(at("below.test") == "any");  // ~. does not match the name itself
  CHECK(at("x.below.test") == "tilde");
  CHECK(at("x.y.below.test") == "tilde");
  CHECK(at("one.test") == "any");  // +. : one level only
  CHECK(at("x.one.test") == "plus");
  CHECK(at("x.y.one.test") == "any");
  CHECK(at("wildXtest") == "any");
  CHECK(at("evilwild.test") == "any");  // a suffix must start at a label
  CHECK(at("127.0.0.1:80") == "any");
  CHECK(at("[::1]:80") == "any");
}

TEST_CASE("a host's unknown path falls back to the any host unless it says no_fallback") {
  http::router r;
  r.get("/shared", says("any shared"));
  r.host("a.test").get("/own", says("a own"));
  r.host("b.test").no_fallback().get("/own", says("b own"));
  http::test_client t{r.handler()};
  CHECK(first_line(t.get("/own", host("a.test"))) == "a own");
  CHECK(first_line(t.get("/shared", host("a.test"))) == "any shared");
  CHECK(first_line(t.get("/own", host("b.test"))) == "b own");
  CHECK(t.get("/shared", host("b.test")).status == 404);
  CHECK(t.get("/own", host("c.test")).status == 404);  // the any host has no /own
}

TEST_CASE("a host nobody serves gets 421 naming it when the any host has no routes") {
  http::router r;
  r.host("a.test").get("/", says("a"));
  http::test_client t{r.handler()};
  CHECK(t.get("/", host("a.test")).status == 200);
  const auto other = t.get("/", host("elsewhere.test"));
  CHECK(other.status == 421);
  CHECK(other.body == "No site here for host 'elsewhere.test'\n");
}

TEST_CASE("patterns: captures, rests, literals first, percent-decoding per segment") {
  http::router r;
  r.get("/items/{id}", says("item"));
  r.get("/items/new", says("new form"));
  r.get("/items/{id}/parts/{name}", says("part"));
  r.get("/files/{path...}", says("file"));
  r.get("/", says("root"));
  r.get("/a%20b", says("encoded literal"));
  http::test_client t{r.handler()};
  CHECK(t.get("/items/42").body == "item\nid=42\npath=");
  CHECK(t.get("/items/new").body == "new form\npath=");
  CHECK(t.get("/items/7/parts/x%20y").body == "part\nid=7\npath=\nname=x y");
  CHECK(t.get("/items/a%2Fb").body == "item\nid=a/b\npath=");  // %2F stays in its segment
  CHECK(t.get("/files/a/b/c.txt").body == "file\npath=a/b/c.txt");
  CHECK(t.get("/files/").body == "file\npath=");
  CHECK(t.get("/files").body == "file\npath=");
  CHECK(t.get("/files/%C3%A9t%C3%A9/x").body == "file\npath=été/x");
  CHECK(t.get("/").body == "root\npath=");
  CHECK(t.get("/a b").status == 400);  // not a valid request line (the parser's)
  CHECK(first_line(t.get("/a%20b")) == "encoded literal");
  CHECK(t.get("/items").status == 404);
  CHECK(t.get("/items/").status == 404);  // a {capture} is never empty
  CHECK(t.get("/items//parts/x").status == 404);
  CHECK(t.get("/items/1/2").status == 404);
  CHECK(t.get("/items/7?q=1").body == "item\nid=7\npath=");
}

TEST_CASE("a bad path gets 400: bad escapes, NUL, dot segments") {
  http::router r;
  r.get("/files/{path...}", says("file"));
  http::test_client t{r.handler()};
  CHECK(t.get("/files/%zz").status == 400);
  CHECK(t.get("/files/%4").status == 400);
  CHECK(t.get("/files/a%00b").status == 400);
  CHECK(t.get("/files/../etc/passwd").status == 400);
  CHECK(t.get("/files/%2e%2e/etc/passwd").status == 400);
  CHECK(t.get("/files/./x").status == 400);
  CHECK(t.get("/files/..%2F..%2Fetc%2Fpasswd").status == 400);  // ".." made of escapes
  CHECK(t.get("/files/a%2F..%2Fb").status == 400);
  CHECK(t.get("/files/a%2F..b").status == 200);  // "..b" is a name, not a step
  CHECK(t.get("/files/ok").status == 200);
}

TEST_CASE("methods: 405 with Allow, OPTIONS, HEAD from GET, OPTIONS *") {
  http::router r;
  r.route("GET, PUT", "/doc", says("doc"));
  r.post("/doc", says("posted"));
  r.get("/h", says("get h"));
  r.route("HEAD", "/h", [](http::context& x) -> task<> {
    x.fields().add("X-Head", "own");
    co_await x.respond(200, "text/plain", "");
  });
  http::test_client t{r.handler()};
  const auto del = t.request("DELETE", "/doc");
  CHECK(del.status == 405);
  CHECK(del.header("Allow") == "GET, HEAD, OPTIONS, POST, PUT");
  const auto opt = t.request("OPTIONS", "/doc");
  CHECK(opt.status == 204);
  CHECK(opt.header("Allow") == "GET, HEAD, OPTIONS, POST, PUT");
  CHECK(opt.body.empty());
  const auto get = t.get("/doc");
  const auto head = t.request("HEAD", "/doc");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.header("Content-Length") == get.header("Content-Length"));
  CHECK(t.request("HEAD", "/h").header("X-Head") == "own");  // routed HEAD wins
  CHECK(t.request("PUT", "/doc").status == 200);
  const auto star = t.send_raw("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(star.status == 204);
  CHECK(star.header("Allow").find("POST") != std::string_view::npos);
  CHECK(t.send_raw("GET * HTTP/1.1\r\nHost: x\r\n\r\n").status == 400);  // the parser's
}

TEST_CASE("error pages: a handler's, a file's, and context::error") {
  const auto dir = std::filesystem::temp_directory_path() / "lancer_router_pages";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "404.html") << "<h1>not here</h1>";
  http::router r;
  r.error_page(404, dir / "404.html");
  r.error_page(405, [](http::context& x) -> task<> {
    co_await x.respond(405, "text/plain", "no such method for " + std::string(x.path()) + "\n");
  });
  r.get("/gone", [](http::context& x) { return x.error(404); });
  r.get("/teapot", [](http::context& x) { return x.error(418); });
  r.get("/old", [](http::context& x) { return x.error(410); });
  http::test_client t{r.handler()};
  const auto missing = t.get("/nowhere");
  CHECK(missing.status == 404);
  CHECK(missing.body == "<h1>not here</h1>");
  CHECK(missing.header("Content-Type") == "text/html; charset=utf-8");
  CHECK(t.get("/gone").body == "<h1>not here</h1>");
  const auto wrong = t.request("PUT", "/gone");
  CHECK(wrong.status == 405);
  CHECK(wrong.body == "no such method for /gone\n");
  CHECK(wrong.header("Allow") == "GET, HEAD, OPTIONS");  // the router's fields stay
  CHECK(t.get("/old").body == "Gone\n");
  CHECK(t.get("/teapot").body == "Error\n");  // a status without a known reason
  CHECK_THROWS_AS(r.error_page(500, dir / "absent.html"), std::logic_error);  // fixed now
  http::router r2;
  CHECK_THROWS_AS(r2.error_page(500, dir / "absent.html"), std::runtime_error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("hooks: on_loaded once per server, before may answer or pass on") {
  http::router r;
  int loaded = 0;
  r.on_loaded([&loaded](lancer::pubframe& p) {
    ++loaded;
    p.emplace<std::string>("ready");
  });
  r.before([](http::context& x) -> task<> {
    if (x.req().headers().get("Authorization") != "yes")
      co_await x.respond(401, "text/plain", "who are you?\n");
  });
  r.get("/state", [](http::context& x) {
    return x.respond(200, "text/plain", *x.shared().get<std::string>());
  });
  http::test_client t{r.handler()};
  CHECK(t.get("/state").status == 401);
  http::fields auth;
  auth.add("Authorization", "yes");
  CHECK(t.get("/state", auth).body == "ready");
  CHECK(t.get("/nowhere", auth).status == 404);
  CHECK(t.get("/nowhere").status == 401);  // before runs ahead of routing
  http::fields close = auth;
  close.add("Connection", "close");
  CHECK(t.get("/state", close).closed);
  CHECK(t.get("/state", auth).body == "ready");  // a second connection
  CHECK(loaded == 1);
}

TEST_CASE("middleware wraps routing in order, sees automatic answers, may answer itself") {
  http::router r;
  std::vector<std::string> trace;
  r.use([&trace](http::context& x, const http::route_handler& next) -> task<> {
    trace.push_back("outer in");
    x.fields().add("X-Outer", "1");
    co_await next(x);
    trace.push_back("outer out " + std::to_string(x.req().response_status()));
  });
  r.use([&trace](http::context& x, const http::route_handler& next) -> task<> {
    trace.push_back("inner in");
    if (x.path() == "/blocked") {
      co_await x.respond(403, "text/plain", "no\n");
      co_return;
    }
    co_await next(x);
  });
  r.get("/ok", [&trace](http::context& x) {
    trace.push_back("handler");
    return x.respond(200, "text/plain", "ok");
  });
  http::test_client t{r.handler()};
  const auto ok = t.get("/ok");
  CHECK(ok.header("X-Outer") == "1");
  CHECK(trace == std::vector<std::string>{"outer in", "inner in", "handler", "outer out 200"});
  trace.clear();
  CHECK(t.get("/nowhere").header("X-Outer") == "1");
  CHECK(trace == std::vector<std::string>{"outer in", "inner in", "outer out 404"});
  trace.clear();
  CHECK(t.get("/blocked").status == 403);
  CHECK(trace == std::vector<std::string>{"outer in", "inner in", "outer out 403"});
}

TEST_CASE("captures as numbers, query parameters, extra fields and cookies") {
  http::router r;
  r.get("/n/{id}", [](http::context& x) -> task<> {
    const auto id = x.param_as<int>("id");
    const std::string text = id ? std::to_string(*id * 2) : "none";
    co_await x.respond(200, "text/plain", text);
  });
  r.get("/q", [](http::context& x) -> task<> {
    const auto& q = x.query_params();
    co_await x.respond(
        200, "text/plain",
        std::string(q.get("a").value_or("-")) + "|" + std::string(q.get("b").value_or("-")));
  });
  r.get("/login", [](http::context& x) {
    x.fields().set_cookie("session", "abc123");
    return x.redirect(303, "/me");
  });
  r.get("/me", [](http::context& x) -> task<> {
    co_await x.respond(200, "text/plain", std::string(http::cookie(x, "session").value_or("-")));
  });
  http::test_client t{r.handler()};
  CHECK(t.get("/n/21").body == "42");
  CHECK(t.get("/n/21x").body == "none");
  CHECK(t.get("/n/99999999999").body == "none");
  CHECK(t.get("/q?a=1+2&b=%C3%A9").body == "1 2|é");
  CHECK(t.get("/q?a=%zz").body == "-|-");
  CHECK(t.get("/me").body == "-");
  const auto login = t.get("/login");
  CHECK(login.status == 303);
  CHECK(login.header("Location") == "/me");
  CHECK(login.header("Set-Cookie") == "session=abc123; Path=/; HttpOnly; SameSite=Lax");
  CHECK(t.get("/me").body == "abc123");  // the client kept it
}

TEST_CASE("the table: bad patterns, routes twice, bad hosts, fixed once serving") {
  http::router r;
  CHECK_THROWS_AS(r.get("items", says("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.get("/a{id}", says("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.get("/{rest...}/x", says("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.get("/{a}/{a}", says("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.get("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", says("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.route("GET POST", "/x", says("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.host("a b"), std::invalid_argument);
  CHECK_THROWS_AS(r.host(""), std::invalid_argument);
  r.get("/x", says("x"));
  CHECK_THROWS_AS(r.get("/x", says("again")), std::logic_error);
  CHECK(&r.host("a.test, b.test") == &r.host("b.test"));
  const auto h = r.handler();
  CHECK_THROWS_AS(r.get("/y", says("y")), std::logic_error);
  CHECK_THROWS_AS(r.use({}), std::logic_error);
}

TEST_CASE("a routed request split at every byte gets the same answer") {
  http::router r;
  r.post("/items/{id}", [](http::context& x) -> task<> {
    const auto body = co_await x.body();
    if (!body) co_return;
    co_await x.respond(200, "text/plain", std::string(x.param("id")) + ":" + std::string(*body));
  });
  const std::string req =
      "POST /items/a%20b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "GET /items/x HTTP/1.1\r\nHost: h\r\n\r\n";
  const auto answer = [&](std::size_t cut) {
    http::test_client t{r.handler()};
    lancer::fake_client c = t.source().connect();
    c.write(req.substr(0, cut));
    t.sched().run_until_idle();
    c.write(req.substr(cut));
    t.sched().run_until_idle();
    return c.read();
  };
  const std::string whole = answer(req.size());
  CHECK(whole.find("a b:hello") != std::string::npos);
  CHECK(whole.find("405 Method Not Allowed") != std::string::npos);
  for (std::size_t cut = 1; cut < req.size(); ++cut) {
    CAPTURE(cut);
    CHECK(answer(cut) == whole);
  }
}

TEST_CASE("review: a route with the method wins over an earlier match without it") {
  http::router r;
  r.get("/items/new", says("new form"));
  r.del("/items/{id}", says("deleted"));
  r.route("LOCK", "/l", says("lock"));
  r.route("UNLOCK", "/u", says("unlock"));
  http::test_client t{r.handler()};
  CHECK(t.request("DELETE", "/items/new").body == "deleted\nid=new\npath=");
  CHECK(first_line(t.get("/items/new")) == "new form");
  const auto wrong = t.request("PUT", "/items/new");
  CHECK(wrong.status == 405);
  CHECK(wrong.header("Allow") == "GET, HEAD, OPTIONS");  // the first node the path reaches
  const auto star = t.send_raw("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(star.header("Allow") == "DELETE, GET, HEAD, LOCK, OPTIONS, UNLOCK");
}

TEST_CASE("review: captures and the path survive reading a large body") {
  http::router r;
  r.post("/items/{id}", [](http::context& x) -> task<> {
    const auto body = co_await x.body();
    if (!body) co_return;
    const std::string text = std::string(x.param("id")) + "|" + std::string(x.path()) + "|" +
                             std::string(x.query_params().get("q").value_or("-")) + "|" +
                             std::to_string(body->size());
    co_await x.respond(200, "text/plain", text);
  });
  http::limits lim;
  lim.body = 4 << 20;
  http::test_client t{r.handler(lim)};
  const std::string big(900 * 1024, 'b');
  CHECK(t.post("/items/abc?q=yes", big, "text/plain").body == "abc|/items/abc|yes|921600");
}

TEST_CASE("review: on_loaded that throws is tried again; fields the response owns are refused") {
  http::router r;
  int calls = 0;
  r.on_loaded([&calls](lancer::pubframe& p) {
    if (++calls == 1) throw std::runtime_error("not yet");
    p.emplace<int>(7);
  });
  r.get("/n", [](http::context& x) {
    return x.respond(200, "text/plain", std::to_string(*x.shared().get<int>()));
  });
  r.get("/bad", [](http::context& x) {
    x.fields().add("Content-Length", "2");  // throws: the response writes its own
    return x.respond(200, "text/plain", "hello");
  });
  http::test_client t{r.handler()};
  CHECK(t.get("/n").status == 500);
  CHECK(t.get("/n").body == "7");
  CHECK(calls == 2);
  CHECK(t.get("/bad").status == 500);
  http::fields f;
  f.add("transfer-encoding", "chunked");  // fine in a list (a request's), not in a response
  CHECK(f.written_by_response() == "Transfer-Encoding");
  CHECK_THROWS_AS(f.add("X-A", "a\r\nSet-Cookie: x=1"), std::invalid_argument);
  CHECK_NOTHROW(f.add("X-A", "fine"));
}

TEST_CASE("review: host names with ports are refused; +. before *. on the same suffix") {
  http::router r;
  CHECK_THROWS_AS(r.host("localhost:8080"), std::invalid_argument);
  CHECK_THROWS_AS(r.host("a]b"), std::invalid_argument);
  r.host("*.ex.test").get("/", says("star"));
  r.host("+.ex.test").get("/", says("plus"));
  r.host("[::1]").get("/", says("v6"));
  r.get("/go", [](http::context& x) { return x.redirect(302, ""); });
  http::test_client t{r.handler()};
  CHECK(first_line(t.get("/", host("a.ex.test"))) == "plus");
  CHECK(first_line(t.get("/", host("a.b.ex.test"))) == "star");
  CHECK(first_line(t.get("/", host("[::1]:8080"))) == "v6");
  CHECK(t.get("/go", host("x")).status == 500);  // an empty Location is the handler's bug
}

TEST_CASE("the method * takes every method a pattern has no route of its own for") {
  http::router r;
  r.route("*", "/api/{rest...}", [](http::context& x) -> task<> {
    co_await x.respond(200, "text/plain",
                       std::string(x.req().method()) + " " + std::string(x.param("rest")));
  });
  r.get("/api/own", says("own GET"));
  r.get("/doc", says("doc"));
  http::test_client t{r.handler()};
  CHECK(t.request("DELETE", "/api/a/b").body == "DELETE a/b");
  CHECK(t.request("PROPFIND", "/api/").body == "PROPFIND ");
  CHECK(t.request("OPTIONS", "/api/x").body == "OPTIONS x");  // routed: not the automatic 204
  CHECK(t.get("/api/x").body == "GET x");
  CHECK(t.request("HEAD", "/api/x").status == 200);
  CHECK(first_line(t.get("/api/own")) == "own GET");        // a method's own route wins
  CHECK(t.request("POST", "/api/own").body == "POST own");  // and * takes the others there
  const auto del = t.request("DELETE", "/doc");             // elsewhere nothing changes
  CHECK(del.status == 405);
  CHECK(del.header("Allow") == "GET, HEAD, OPTIONS");
  const auto star = t.send_raw("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(star.header("Allow").find('*') == std::string_view::npos);
}

TEST_CASE("a service slot: each request takes the current service, none is held between them") {
  const auto make = [](std::string text, std::uint64_t body_limit, int& loaded) {
    http::router r;
    r.on_loaded([&loaded](lancer::pubframe&) { ++loaded; });
    r.route("GET, POST", "/", says(text));
    http::limits lim;
    lim.body = body_limit;
    return std::make_shared<const http::service>(http::service{r.dispatcher(lim), lim, {}, {}});
  };
  int loaded_a = 0;
  int loaded_b = 0;
  auto a = make("a", 10, loaded_a);
  std::weak_ptr<const http::service> weak_a = a;
  auto slot = std::make_shared<http::service_slot>(std::move(a));
  http::test_client t{http::serve(slot)};
  CHECK(first_line(t.get("/")) == "a");
  CHECK(t.request("POST", "/", std::string(20, 'x')).status == 413);  // a's limits
  slot->set(make("b", 100, loaded_b));
  CHECK(weak_a.expired());  // the open keep-alive connection holds no service between requests
  CHECK(first_line(t.get("/")) == "b");  // the same connection, the new service
  CHECK(t.request("POST", "/", std::string(20, 'x')).status == 200);  // b's limits
  CHECK(loaded_a == 1);
  CHECK(loaded_b == 1);  // each table's on_loaded runs once on the server

  // A request in flight keeps its service until it is answered.
  bool alive_while_answering = false;
  http::router r;
  r.get("/swap", [&](http::context& x) -> task<> {
    slot->set(make("c", 100, loaded_b));
    co_await x.respond(200, "text/plain", "swapped");
    alive_while_answering = !weak_a.expired();
  });
  auto d = std::make_shared<const http::service>(http::service{r.dispatcher(), {}, {}, {}});
  weak_a = d;
  slot->set(std::move(d));
  CHECK(t.get("/swap").body == "swapped");
  CHECK(alive_while_answering);
  CHECK(weak_a.expired());
  CHECK(first_line(t.get("/")) == "c");
  CHECK_THROWS_AS(http::serve(std::make_shared<http::service_slot>(nullptr)),
                  std::invalid_argument);
}
