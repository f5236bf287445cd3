// Static files: mime types, index files, 404, 405, and no way out of the root.
#include "lancer/http/files.hpp"

#include <doctest/doctest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>

#include "http_app.hpp"
#include "lancer/core/server.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"

namespace fs = std::filesystem;
namespace http = lancer::http;

namespace {

// A temporary tree: root/{index.html, a.txt, sub/b.css, out -> ../secret.txt}, secret.txt.
struct tree {
  fs::path base, root;
  tree() {
    base = fs::temp_directory_path() / ("lancer-files-" + std::to_string(::getpid()));
    fs::remove_all(base);
    root = base / "root";
    fs::create_directories(root / "sub");
    std::ofstream(root / "index.html") << "<h1>home</h1>";
    std::ofstream(root / "a.txt") << "plain";
    std::ofstream(root / "sub" / "b.css") << "b{}";
    std::ofstream(base / "secret.txt") << "SECRET";
    fs::create_symlink(base / "secret.txt", root / "out");
    root = fs::canonical(root);
  }
  ~tree() { fs::remove_all(base); }
};

struct bed {
  tree files;
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv;
  lancer::fake_source fake;
  bed()
      : srv(sched, http::serve([this](lancer::connection& c, http::request& req, lancer::frame&,
                                      lancer::pubframe&) -> lancer::task<> {
              co_await http::respond_file(c, req, files.root);
            })) {
    lancer::set_log_level(lancer::log_level::warn);
    srv.attach_source(fake);
    srv.run();
  }
  ~bed() { lancer::set_log_level(lancer::log_level::info); }
  std::string get(const std::string& target, const std::string& method = "GET") {
    lancer::fake_client c = fake.connect();
    return c.exchange(method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
  }
};

using lancer_test::body_of;
using lancer_test::status_of;

}  // namespace

TEST_CASE("files are served with their mime type; a directory by its index.html") {
  bed b;
  std::string r = b.get("/");
  CHECK(status_of(r) == 200);
  CHECK(body_of(r) == "<h1>home</h1>");
  CHECK(r.find("Content-Type: text/html; charset=utf-8\r\n") != std::string::npos);
  r = b.get("/a.txt?x=1");
  CHECK(body_of(r) == "plain");
  CHECK(r.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
  r = b.get("/sub/b.css");
  CHECK(r.find("Content-Type: text/css\r\n") != std::string::npos);
  CHECK(body_of(b.get("/%61.txt")) == "plain");  // percent-decoded
  r = b.get("/a.txt", "HEAD");
  CHECK(status_of(r) == 200);
  CHECK(body_of(r).empty());
}

TEST_CASE("no path leaves the root: .., %2e%2e, NUL, and symlinks pointing out all get 404") {
  bed b;
  for (const char* target :
       {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/sub/../a.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt", "/out", "/a.txt%00.html", "/missing", "/%zz", "/%2"}) {
    CAPTURE(std::string(target));
    const std::string r = b.get(target);
    CHECK(status_of(r) == 404);
    CHECK(r.find("SECRET") == std::string::npos);
  }
}

TEST_CASE("methods other than GET and HEAD get 405 with Allow") {
  bed b;
  const std::string r = b.get("/a.txt", "DELETE");
  CHECK(status_of(r) == 405);
  CHECK(r.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
}

TEST_CASE("mime types and percent-decoding on their own") {
  CHECK(http::mime_type("x.PNG") == "image/png");
  CHECK(http::mime_type("noext") == "application/octet-stream");
  CHECK(http::percent_decode("/a%20b") == std::optional<std::string>("/a b"));
  CHECK_FALSE(http::percent_decode("/a%00b"));
  CHECK_FALSE(http::percent_decode("/a%4"));
}
