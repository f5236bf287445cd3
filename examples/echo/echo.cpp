// echo: answers any method with the request body (Content-Length or chunked).
//
//   build/release/examples/echo/echo [BODY]
//
// main() serves the handler through the fake source, in memory: it POSTs BODY (default
// "ping") in chunked encoding and prints the raw response. lancer-serve's /echo route serves
// the same handler over TCP (src/serve/main.cpp).
#include <cstdio>
#include <string>

#include "lancer/http/httputil.hpp"
#include "lancer/source/fake.hpp"

namespace http = lancer::http;

// The handler: read the whole body (up to the 1 MiB default limit; 413 beyond), send it back.
lancer::task<> echo(lancer::connection& c, http::request& req, lancer::frame&, lancer::pubframe&) {
  const auto body = co_await http::read_body(c, req);
  if (!body) co_return;  // a bad or incomplete body was answered already
  co_await http::respond(c, req, 200, "application/octet-stream", *body);
}

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: %s [BODY]\n", argv[0]);
    return 2;
  }
  const std::string body = argc == 2 ? argv[1] : "ping";

  lancer::scheduler sched;
  lancer::server srv{sched, http::serve(echo)};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();

  // A chunked upload: the body in one chunk, then the last-chunk.
  char size[32];
  std::snprintf(size, sizeof size, "%zx", body.size());
  lancer::fake_client client = fake.connect();
  const std::string reply =
      client.exchange("POST /echo HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n" +
                      std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
  std::fwrite(reply.data(), 1, reply.size(), stdout);
  std::puts("");
  return 0;
}
