// hello: GET /plaintext answers "Hello, World!" as text/plain; anything else is a 404.
//
//   build/release/examples/hello/hello [REQUEST...]
//
// main() serves the handler through the fake source, in memory: each argument is sent as a
// request path (default: /plaintext), and the raw response is printed. To serve a handler over
// TCP, attach a lancer::tcp_source instead, as src/serve/main.cpp (lancer-serve) does.
#include <cstdio>
#include <string>

#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace http = lancer::http;

// The handler: one request at a time, keep-alive and pipelining handled by httputil.
lancer::task<> hello(lancer::connection& c, http::request& req, lancer::frame&, lancer::pubframe&) {
  if (req.target() == "/plaintext") {
    co_await http::respond(c, req, 200, "text/plain", "Hello, World!");
  } else {
    co_await http::respond(c, req, 404, "text/plain", "Not Found\n");
  }
}

int main(int argc, char** argv) {
  // Step 1: a scheduler, a server running the handler, and a source of connections.
  lancer::scheduler sched;
  lancer::server srv{sched, http::serve(hello)};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();

  // Step 2: one client connection; each request on it is answered in turn (keep-alive).
  lancer::fake_client client = fake.connect();
  for (int i = 1; i < argc || i == 1; ++i) {
    const std::string path = argc > 1 ? argv[i] : "/plaintext";
    if (path.empty() || path[0] != '/') {
      std::fprintf(stderr, "usage: %s [/PATH...]\n", argv[0]);
      return 2;
    }
    const std::string reply = client.exchange("GET " + path + " HTTP/1.1\r\nHost: example\r\n\r\n");
    std::fwrite(reply.data(), 1, reply.size(), stdout);
    std::puts("");
  }
  return 0;
}
