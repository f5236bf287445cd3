// A lancer user's program: an HTTP handler served through the fake source (in memory, no
// sockets), asked one request and checked. Exits 0 if the answer is right, 1 if not, so it
// fails when lancer's headers, library or pkg-config file do not work for a consumer.
#include <cstdio>
#include <string>
#include <string_view>

#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace http = lancer::http;

lancer::task<> greet(lancer::connection& c, http::request& req, lancer::frame&, lancer::pubframe&) {
  http::response r;
  r.status = req.target() == "/hello" ? 200 : 404;
  r.body = r.status == 200 ? "Hello from a consumer\n" : "Not Found\n";
  co_await http::respond(c, req, r);
}

int main() {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, http::serve(greet)};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();

  lancer::fake_client client = fake.connect();
  const std::string reply = client.exchange("GET /hello HTTP/1.1\r\nHost: consumer\r\n\r\n");
  const std::string_view view{reply};
  const bool ok = view.starts_with("HTTP/1.1 200 OK\r\n") &&
                  view.find("\r\nContent-Length: 22\r\n") != std::string_view::npos &&
                  view.ends_with("\r\n\r\nHello from a consumer\n");
  if (!ok) {
    std::fprintf(stderr, "consumer: wrong answer to GET /hello:\n%s\n", reply.c_str());
    return 1;
  }
  std::puts("consumer: GET /hello answered 200 through lancer");
  return 0;
}
