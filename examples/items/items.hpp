// The items app: a JSON store behind three routes. main.cpp serves it; items_tests.cpp tests it.
#pragma once

#include <lancer/http/app.hpp>
#include <map>

namespace items {

namespace http = lancer::http;

struct store {
  std::map<std::int64_t, boost::json::value> items;
  std::int64_t next = 1;
};

inline lancer::server::handler handler() {
  http::router app;
  app.get("/hello/{name}", [](http::context& x) {
    return x.respond(200, "text/plain", "Hello, " + std::string(x.param("name")) + "!\n");
  });
  app.post("/items", [](http::context& x) -> lancer::task<> {
    auto item = co_await http::read_json(x);
    if (!item) co_return;  // answered already: 415, 400 or 413
    store& s = x.shared().get_or_emplace<store>();
    const std::int64_t id = s.next++;
    x.fields().add("Location", "/items/" + std::to_string(id));
    co_await http::respond_json(x, 201, s.items[id] = std::move(*item));
  });
  app.get("/items/{id}", [](http::context& x) -> lancer::task<> {
    const store* s = x.shared().get<store>();
    const auto id = x.param_as<std::int64_t>("id");
    const bool found = s != nullptr && id && s->items.contains(*id);
    if (!found) co_return co_await x.error(404);
    co_await http::respond_json(x, 200, s->items.at(*id));
  });
  return app.handler({.idle_timeout = std::chrono::seconds(5)});  // idle connections: 5 s
}

}  // namespace items
