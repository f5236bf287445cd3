// lancer-serve's whole site (its configuration file read by load(), the service make_service()
// builds, served through a service slot as lancer-serve serves it) on the fake source: requests
// to each kind of route, cut at every byte boundary and sent a byte at a time, get the same
// answers as whole.
#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../../src/serve/config.hpp"
#include "../../src/serve/site.hpp"
#include "app_split.hpp"
#include "lancer/log.hpp"

namespace fs = std::filesystem;
namespace http = lancer::http;

namespace {

struct quiet {
  quiet() { lancer::set_log_level(lancer::log_level::off); }
  ~quiet() { lancer::set_log_level(lancer::log_level::info); }
};

// A directory with a configuration file, a root and an error page; removed at the end.
struct site_dir {
  fs::path dir;
  site_dir() {
    char templ[] = "/tmp/lancer-site-XXXXXX";
    dir = ::mkdtemp(templ);
    fs::create_directory(dir / "www");
    std::ofstream(dir / "www" / "index.html") << "<h1>the files.test index</h1>\n";
    std::ofstream(dir / "404.html") << "<h1>no such page here</h1>\n";
    std::ofstream(dir / "lancer.toml") << "health = \"/healthz\"\n"
                                          "access-log = \"off\"\n"
                                          "[limits]\n"
                                          "body = 64\n"
                                          "[error-pages]\n"
                                          "404 = \""
                                       << (dir / "404.html").string()
                                       << "\"\n"
                                          "[[host]]\n"
                                          "names = \"files.test\"\n"
                                          "  [[host.route]]\n"
                                          "  prefix = \"/\"\n"
                                          "  root = \""
                                       << (dir / "www").string() << "\"\n";
  }
  ~site_dir() { fs::remove_all(dir); }
};

// lancer-serve's handler for the site of `d`'s configuration file.
struct site {
  lancer_serve::module_set modules;
  lancer_serve::runtime rt;
  lancer::server::handler handler;
  explicit site(const site_dir& d) {
    lancer_serve::command_line cl;
    cl.config_file = (d.dir / "lancer.toml").string();
    const lancer_serve::config c = lancer_serve::load(cl);
    handler = http::serve(
        std::make_shared<http::service_slot>(lancer_serve::make_service(c, modules, rt)));
  }
};

// A client's frame: FIN, `opcode`, a payload under 126 bytes masked with 01 02 03 04.
std::string masked_frame(unsigned char opcode, std::string_view payload) {
  static constexpr unsigned char mask[] = {1, 2, 3, 4};
  std::string f;
  f += static_cast<char>(0x80 | opcode);
  f += static_cast<char>(0x80 | payload.size());
  for (const unsigned char m : mask)
    f += static_cast<char>(m);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f += static_cast<char>(static_cast<unsigned char>(payload[i]) ^ mask[i % 4]);
  return f;
}

// A site of site_dir's configuration, with the log quiet.
struct site_bed {
  quiet q;
  site_dir d;
  site s{d};
};

// The status codes of the responses in `out`, in order.
std::vector<unsigned> statuses(const std::string& out) {
  std::vector<unsigned> got;
  for (std::size_t at = out.find("HTTP/1.1 "); at != std::string::npos;
       at = out.find("HTTP/1.1 ", at + 1))
    got.push_back(lancer_test::status_of(out.substr(at, 12)));
  return got;
}

}  // namespace

TEST_CASE("lancer-serve's routes, pipelined, cut anywhere: the same answers as whole") {
  site_bed b;
  const std::string input =
      "GET /plaintext HTTP/1.1\r\nHost: any.test\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: any.test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-A: 1\r\n\r\n"
      "GET /index.html HTTP/1.1\r\nHost: files.test\r\nRange: bytes=8-17\r\n\r\n"
      "HEAD / HTTP/1.1\r\nHost: FILES.test:8080\r\n\r\n"
      "GET /missing HTTP/1.1\r\nHost: files.test\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: any.test\r\n\r\n"
      "GET /%2e%2e/lancer.toml HTTP/1.1\r\nHost: files.test\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: any.test\r\nContent-Length: 65\r\n\r\n" +
      std::string(65, 'x');
  const std::string whole = lancer_test::check_server_every_split(b.s.handler, input);
  const std::vector<unsigned> st = statuses(whole);
  REQUIRE(st.size() == 8);
  CHECK(st[0] == 200);
  CHECK(whole.find("Hello, World!") != std::string::npos);
  CHECK(st[1] == 200);
  CHECK(whole.find("hello world") != std::string::npos);
  CHECK(st[2] == 206);
  CHECK(whole.find("files.test") != std::string::npos);  // bytes 8-17 of the index
  CHECK(st[3] == 200);                                   // HEAD of the host's index
  CHECK(st[4] == 404);
  CHECK(whole.find("no such page here") != std::string::npos);  // the configured error page
  CHECK(st[5] == 200);                                          // the health endpoint
  CHECK((st[6] == 400 || st[6] == 404));  // nothing outside the root, whatever the spelling
  CHECK(whole.find("body = 64") == std::string::npos);
  CHECK(st[7] == 413);  // [limits] body
}

TEST_CASE("lancer-serve's /ws: the handshake and frames cut anywhere: the same answers") {
  site_bed b;
  const std::string input =
      "GET /ws HTTP/1.1\r\nHost: any.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
      masked_frame(0x1, "hi") + masked_frame(0x8, "\x03\xe8");  // text "hi", close 1000
  const std::string whole = lancer_test::check_server_every_split(b.s.handler, input);
  CHECK(lancer_test::status_of(whole) == 101);
  CHECK(whole.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos);
  const std::string frames = lancer_test::body_of(whole);
  CHECK(frames.substr(0, 4) == "\x81\x02hi");
  CHECK(frames.substr(4, 2) == "\x88\x02");
}
