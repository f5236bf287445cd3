// Static files on the fake source, in virtual time: mime types, index files, 404, 405, no way
// out of the root; validators and conditional requests; ranges and multipart/byteranges;
// precompressed siblings; directories; Cache-Control; the open-file cache seeing changes;
// faults (a file that shrinks mid-body, no file descriptors left).
#include "lancer/http/files.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "app_split.hpp"
#include "http_app.hpp"
#include "lancer/core/server.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"
#include "log_capture.hpp"

namespace fs = std::filesystem;
namespace http = lancer::http;
using namespace std::chrono_literals;

namespace {

constexpr std::time_t k_mtime = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  const timespec times[2] = {{k_mtime, 0}, {k_mtime, 0}};
  ::utimensat(AT_FDCWD, p.c_str(), times, 0);
}

// A temporary tree: root/{index.html, a.txt, digits.txt, app.js(+.gz, .br), sub/b.css,
// list/{x&y.txt, .hidden, d/}, out -> ../secret.txt}, secret.txt.
struct tree {
  fs::path base, root;
  tree() {
    base = fs::temp_directory_path() / ("lancer-files-" + std::to_string(::getpid()));
    fs::remove_all(base);
    root = base / "root";
    fs::create_directories(root / "sub");
    fs::create_directories(root / "list" / "d");
    write_file(root / "index.html", "<h1>home</h1>");
    write_file(root / "a.txt", "plain");
    write_file(root / "digits.txt", "0123456789");
    write_file(root / "app.js", "console.log('plain')");
    write_file(root / "app.js.gz", "GZIP-BYTES");
    write_file(root / "app.js.br", "BROTLI-BYTES");
    write_file(root / "sub" / "b.css", "b{}");
    write_file(root / "list" / "x&y <z>.txt", "xy");
    write_file(root / "list" / ".hidden", "h");
    write_file(base / "secret.txt", "SECRET");
    fs::create_symlink(base / "secret.txt", root / "out");
    fs::create_symlink(base / "secret.txt", root / "a.txt.gz");  // a sibling pointing out
    root = fs::canonical(root);
  }
  ~tree() { fs::remove_all(base); }
};

struct bed {
  tree files;
  lancer::scheduler sched{lancer::clock::manual()};
  std::unique_ptr<http::static_files> handler;
  std::unique_ptr<lancer::server> srv;
  lancer::fake_source fake;
  explicit bed(http::static_options o = {}) {
    lancer::set_log_level(lancer::log_level::warn);
    handler = std::make_unique<http::static_files>(files.root, std::move(o));
    srv = std::make_unique<lancer::server>(
        sched, http::serve([this](lancer::connection& c, http::request& req, lancer::frame&,
                                  lancer::pubframe&) { return (*handler)(c, req); }));
    srv->attach_source(fake);
    srv->run();
  }
  ~bed() { lancer::set_log_level(lancer::log_level::info); }
  std::string get(const std::string& target, const std::string& fields = "",
                  const std::string& method = "GET") {
    lancer::fake_client c = fake.connect();
    return c.exchange(method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n");
  }
};

using lancer_test::body_of;
using lancer_test::status_of;

// The value of field `name` in the first response of `reply` ("" if absent).
std::string field(const std::string& reply, const std::string& name) {
  const std::size_t end = reply.find("\r\n\r\n");
  const std::string head = reply.substr(0, end);
  const std::size_t at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  const std::size_t value = at + name.size() + 4;
  return head.substr(value, head.find("\r\n", value) - value);
}

}  // namespace

TEST_CASE("files are served with their mime type; a directory by its index.html") {
  bed b;
  std::string r = b.get("/");
  CHECK(status_of(r) == 200);
  CHECK(body_of(r) == "<h1>home</h1>");
  CHECK(field(r, "Content-Type") == "text/html; charset=utf-8");
  r = b.get("/a.txt?x=1");
  CHECK(body_of(r) == "plain");
  CHECK(field(r, "Content-Type") == "text/plain; charset=utf-8");
  r = b.get("/sub/b.css");
  CHECK(field(r, "Content-Type") == "text/css; charset=utf-8");
  CHECK(body_of(b.get("/%61.txt")) == "plain");  // percent-decoded
  r = b.get("/a.txt", "", "HEAD");
  CHECK(status_of(r) == 200);
  CHECK(field(r, "Content-Length") == "5");
  CHECK(body_of(r).empty());
}

TEST_CASE("no path leaves the root: .., %2e%2e, NUL, and symlinks pointing out all get 404") {
  bed b;
  for (const char* target :
       {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/sub/../a.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt", "/out", "/a.txt%00.html", "/missing", "/%zz", "/%2",
        "/a.txt.gz", "/sub%5c..%5csecret.txt", "/a.txt/"}) {
    CAPTURE(std::string(target));
    const std::string r = b.get(target);
    CHECK(status_of(r) == 404);
    CHECK(r.find("SECRET") == std::string::npos);
  }
  // The sibling pointing out of the root is never sent for a.txt either.
  const std::string r = b.get("/a.txt", "Accept-Encoding: gzip\r\n");
  CHECK(body_of(r) == "plain");
  CHECK(field(r, "Content-Encoding").empty());
}

TEST_CASE("methods other than GET and HEAD get 405 with Allow") {
  bed b;
  const std::string r = b.get("/a.txt", "", "DELETE");
  CHECK(status_of(r) == 405);
  CHECK(field(r, "Allow") == "GET, HEAD");
}

TEST_CASE("a 200 carries ETag, Last-Modified and Accept-Ranges") {
  bed b;
  const std::string r = b.get("/digits.txt");
  CHECK(status_of(r) == 200);
  const std::string etag = field(r, "ETag");
  REQUIRE(etag.size() > 2);
  CHECK(etag.front() == '"');
  CHECK(etag.back() == '"');
  CHECK(etag.find("W/") == std::string::npos);
  CHECK(field(r, "Last-Modified") == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(field(r, "Accept-Ranges") == "bytes");
  CHECK(field(r, "Content-Length") == "10");
  CHECK(field(r, "Vary").empty());  // no sibling
}

TEST_CASE("If-None-Match and If-Modified-Since give 304 with the validators and no body") {
  bed b;
  const std::string etag = field(b.get("/digits.txt"), "ETag");
  for (const std::string& inm :
       {etag, "W/" + etag, std::string("\"other\", ") + etag, std::string("*")}) {
    CAPTURE(inm);
    const std::string r = b.get("/digits.txt", "If-None-Match: " + inm + "\r\n");
    CHECK(status_of(r) == 304);
    CHECK(body_of(r).empty());
    CHECK(field(r, "ETag") == etag);
    CHECK(field(r, "Content-Length").empty());
  }
  CHECK(status_of(b.get("/digits.txt", "If-None-Match: \"other\"\r\n")) == 200);
  CHECK(status_of(b.get("/digits.txt", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n")) ==
        304);
  CHECK(status_of(b.get("/digits.txt", "If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n")) ==
        304);
  CHECK(status_of(b.get("/digits.txt", "If-Modified-Since: Sun Nov  6 08:49:37 1994\r\n")) == 304);
  CHECK(status_of(b.get("/digits.txt", "If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n")) ==
        200);
  CHECK(status_of(b.get("/digits.txt", "If-Modified-Since: yesterday\r\n")) == 200);
  // If-None-Match wins over If-Modified-Since.
  CHECK(status_of(b.get("/digits.txt",
                        "If-None-Match: \"other\"\r\nIf-Modified-Since: Sun, 06 "
                        "Nov 1994 08:49:37 GMT\r\n")) == 200);
  // HEAD too.
  CHECK(status_of(b.get("/digits.txt", "If-None-Match: " + etag + "\r\n", "HEAD")) == 304);
}

TEST_CASE("If-Match and If-Unmodified-Since fail with 412") {
  bed b;
  const std::string etag = field(b.get("/digits.txt"), "ETag");
  CHECK(status_of(b.get("/digits.txt", "If-Match: " + etag + "\r\n")) == 200);
  CHECK(status_of(b.get("/digits.txt", "If-Match: *\r\n")) == 200);
  CHECK(status_of(b.get("/digits.txt", "If-Match: \"nope\"\r\n")) == 412);
  CHECK(status_of(b.get("/digits.txt", "If-Match: W/" + etag + "\r\n")) == 412);  // strong
  CHECK(status_of(b.get("/digits.txt", "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n")) ==
        412);
  CHECK(status_of(b.get("/digits.txt", "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n")) ==
        200);
  // If-Match wins over If-Unmodified-Since.
  CHECK(status_of(b.get("/digits.txt", "If-Match: " + etag +
                                           "\r\nIf-Unmodified-Since: Sun, 06 Nov 1994 "
                                           "08:49:36 GMT\r\n")) == 200);
}

TEST_CASE("one range gives 206 with Content-Range and exactly those bytes") {
  bed b;
  struct want {
    const char* range;
    const char* content_range;
    const char* body;
  };
  for (const want& w :
       {want{"bytes=0-3", "bytes 0-3/10", "0123"}, want{"bytes=5-", "bytes 5-9/10", "56789"},
        want{"bytes=-3", "bytes 7-9/10", "789"}, want{"bytes=8-100", "bytes 8-9/10", "89"},
        want{"bytes=-100", "bytes 0-9/10", "0123456789"},
        want{"BYTES = 2-2", "", ""},                        // not the grammar: ignored
        want{"bytes=0-1,1-4", "bytes 0-4/10", "01234"},     // merged
        want{"bytes=3-4, 5-6", "bytes 3-6/10", "3456"}}) {  // adjacent: merged
    CAPTURE(std::string(w.range));
    const std::string r = b.get("/digits.txt", std::string("Range: ") + w.range + "\r\n");
    if (*w.content_range == '\0') {
      CHECK(status_of(r) == 200);
      CHECK(body_of(r) == "0123456789");
      continue;
    }
    CHECK(status_of(r) == 206);
    CHECK(field(r, "Content-Range") == w.content_range);
    CHECK(body_of(r) == w.body);
    CHECK(field(r, "Content-Length") == std::to_string(std::string_view(w.body).size()));
  }
}

TEST_CASE("a Range that cannot be used is ignored; one beyond the end gets 416") {
  bed b;
  for (const char* ignored :
       {"bytes=x-1", "bytes=4-2", "items=0-1", "bytes=", "bytes=1-2;", "bytes=--1"}) {
    CAPTURE(std::string(ignored));
    const std::string r = b.get("/digits.txt", std::string("Range: ") + ignored + "\r\n");
    CHECK(status_of(r) == 200);
    CHECK(body_of(r) == "0123456789");
  }
  for (const char* beyond : {"bytes=10-", "bytes=20-30", "bytes=-0", "bytes=10-11,12-"}) {
    CAPTURE(std::string(beyond));
    const std::string r = b.get("/digits.txt", std::string("Range: ") + beyond + "\r\n");
    CHECK(status_of(r) == 416);
    CHECK(field(r, "Content-Range") == "bytes */10");
  }
  // More ranges than max_ranges: the whole file.
  std::string many = "bytes=0-0";
  for (int i = 2; i < 80; i += 2)
    many += "," + std::to_string(i % 10) + "-" + std::to_string(i % 10);
  CHECK(status_of(b.get("/digits.txt", "Range: " + many + "\r\n")) == 200);
}

TEST_CASE("several ranges give multipart/byteranges whose parts say their ranges") {
  bed b;
  const std::string r = b.get("/digits.txt", "Range: bytes=7-8,0-1,4-4\r\n");
  REQUIRE(status_of(r) == 206);
  const std::string type = field(r, "Content-Type");
  REQUIRE(type.rfind("multipart/byteranges; boundary=", 0) == 0);
  const std::string boundary = type.substr(type.find('=') + 1);
  const std::string body = body_of(r);
  CHECK(field(r, "Content-Length") == std::to_string(body.size()));
  const std::string expected =
      "\r\n--" + boundary +
      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/10\r\n\r\n01" +
      "\r\n--" + boundary +
      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 4-4/10\r\n\r\n4" +
      "\r\n--" + boundary +
      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 7-8/10\r\n\r\n78" +
      "\r\n--" + boundary + "--\r\n";
  CHECK(body == expected);
  // HEAD: the same head, no body.
  const std::string h = b.get("/digits.txt", "Range: bytes=7-8,0-1,4-4\r\n", "HEAD");
  CHECK(status_of(h) == 206);
  CHECK(field(h, "Content-Length") == std::to_string(body.size()));
  CHECK(body_of(h).empty());
}

TEST_CASE("If-Range lets a Range apply only to the same version") {
  bed b;
  const std::string etag = field(b.get("/digits.txt"), "ETag");
  const std::string range = "Range: bytes=0-1\r\n";
  CHECK(status_of(b.get("/digits.txt", range + "If-Range: " + etag + "\r\n")) == 206);
  CHECK(status_of(b.get("/digits.txt", range + "If-Range: \"stale\"\r\n")) == 200);
  CHECK(status_of(b.get("/digits.txt", range + "If-Range: W/" + etag + "\r\n")) == 200);
  CHECK(status_of(b.get("/digits.txt", range + "If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n")) ==
        206);
  CHECK(status_of(b.get("/digits.txt", range + "If-Range: Sun, 06 Nov 1994 08:49:38 GMT\r\n")) ==
        200);
}

TEST_CASE("precompressed siblings follow Accept-Encoding, with Vary and their own ETag") {
  bed b;
  const std::string plain = b.get("/app.js");
  CHECK(body_of(plain) == "console.log('plain')");
  CHECK(field(plain, "Vary") == "Accept-Encoding");
  CHECK(field(plain, "Content-Encoding").empty());
  const std::string gz = b.get("/app.js", "Accept-Encoding: gzip\r\n");
  CHECK(body_of(gz) == "GZIP-BYTES");
  CHECK(field(gz, "Content-Encoding") == "gzip");
  CHECK(field(gz, "Content-Type") == "text/javascript; charset=utf-8");
  CHECK(field(gz, "Vary") == "Accept-Encoding");
  CHECK(field(gz, "ETag") != field(plain, "ETag"));
  const std::string br = b.get("/app.js", "Accept-Encoding: gzip, deflate, br\r\n");
  CHECK(body_of(br) == "BROTLI-BYTES");
  CHECK(field(br, "Content-Encoding") == "br");
  CHECK(field(br, "ETag") != field(gz, "ETag"));
  CHECK(body_of(b.get("/app.js", "Accept-Encoding: br;q=0, gzip\r\n")) == "GZIP-BYTES");
  CHECK(body_of(b.get("/app.js", "Accept-Encoding: br;q=0.5, gzip;q=0.8\r\n")) == "GZIP-BYTES");
  CHECK(body_of(b.get("/app.js", "Accept-Encoding: *\r\n")) == "BROTLI-BYTES");
  CHECK(body_of(b.get("/app.js", "Accept-Encoding: *;q=0\r\n")) == "console.log('plain')");
  CHECK(body_of(b.get("/app.js", "Accept-Encoding: identity\r\n")) == "console.log('plain')");
  // The sibling asked for by name is a plain file of its own type.
  const std::string named = b.get("/app.js.gz");
  CHECK(body_of(named) == "GZIP-BYTES");
  CHECK(field(named, "Content-Type") == "application/gzip");
  CHECK(field(named, "Content-Encoding").empty());
  // A range applies to the encoded bytes.
  CHECK(body_of(b.get("/app.js", "Accept-Encoding: gzip\r\nRange: bytes=0-3\r\n")) == "GZIP");
  // Off: the plain file only.
  http::static_options o;
  o.precompressed = false;
  bed off(o);
  const std::string r = off.get("/app.js", "Accept-Encoding: gzip, br\r\n");
  CHECK(body_of(r) == "console.log('plain')");
  CHECK(field(r, "Vary").empty());
}

TEST_CASE("a directory: 301 to its slash, its index, a listing only when asked for") {
  bed b;
  std::string r = b.get("/sub");
  CHECK(status_of(r) == 301);
  CHECK(field(r, "Location") == "/sub/");
  r = b.get("/sub?x=1&y=2");
  CHECK(status_of(r) == 301);
  CHECK(field(r, "Location") == "/sub/?x=1&y=2");
  CHECK(status_of(b.get("/sub/")) == 404);  // no index.html, no listing
  CHECK(status_of(b.get("/list/")) == 404);

  http::static_options o;
  o.autoindex = true;
  bed listing(o);
  r = listing.get("/list/");
  CHECK(status_of(r) == 200);
  CHECK(field(r, "Content-Type") == "text/html; charset=utf-8");
  const std::string page = body_of(r);
  CHECK(page.find("<a href=\"x%26y%20%3Cz%3E.txt\">x&amp;y &lt;z&gt;.txt</a>") !=
        std::string::npos);
  CHECK(page.find("<a href=\"d/\">d/</a>") != std::string::npos);
  CHECK(page.find("hidden") == std::string::npos);
  CHECK(page.find("d/") < page.find("x&amp;y"));        // directories first
  CHECK(body_of(listing.get("/")) == "<h1>home</h1>");  // an index still wins
}

TEST_CASE("Cache-Control by path prefix: the longest prefix wins") {
  http::static_options o;
  o.cache_control = {{"/", "no-cache"}, {"/sub/", "public, max-age=60"}};
  bed b(o);
  CHECK(field(b.get("/sub/b.css"), "Cache-Control") == "public, max-age=60");
  CHECK(field(b.get("/a.txt"), "Cache-Control") == "no-cache");
  const std::string etag = field(b.get("/a.txt"), "ETag");
  CHECK(field(b.get("/a.txt", "If-None-Match: " + etag + "\r\n"), "Cache-Control") == "no-cache");
  http::static_options bad;
  bad.cache_control = {{"/", "x\r\nInjected: yes"}};
  CHECK_THROWS_AS(http::static_files(fs::temp_directory_path(), bad), std::invalid_argument);
}

TEST_CASE("the mime table can be extended and overridden") {
  http::mime_types m;
  CHECK(m.find("a.md") == "text/markdown; charset=utf-8");
  CHECK(m.find("a.unknown") == "application/octet-stream");
  m.add("unknown", "application/x-unknown");
  m.add(".TXT", "text/x-mine");
  CHECK(m.find("dir.d/a.UNKNOWN") == "application/x-unknown");
  CHECK(m.find("a.txt") == "text/x-mine");
  CHECK(m.find(".bashrc") == "application/octet-stream");  // a dot file has no extension
  CHECK_THROWS_AS(m.add("", "x/y"), std::invalid_argument);
  CHECK_THROWS_AS(m.add("a", "x\ny"), std::invalid_argument);
  CHECK(http::mime_type("x.PNG") == "image/png");
  CHECK(http::mime_type("noext") == "application/octet-stream");
  CHECK(http::percent_decode("/a%20b") == std::optional<std::string>("/a b"));
  CHECK_FALSE(http::percent_decode("/a%00b"));
  CHECK_FALSE(http::percent_decode("/a%4"));

  http::static_options o;
  o.mime.add(".txt", "text/x-custom");
  bed b(o);
  CHECK(field(b.get("/a.txt"), "Content-Type") == "text/x-custom");
}

TEST_CASE("the open-file cache sees a changed, replaced or removed file once its entry expires") {
  bed b;  // cache_valid: 1 s of virtual time
  CHECK(body_of(b.get("/a.txt")) == "plain");
  const std::string etag = field(b.get("/a.txt"), "ETag");
  std::ofstream(b.files.root / "a.txt", std::ios::trunc) << "changed!";
  CHECK(body_of(b.get("/a.txt")) == "plain");  // trusted for a second
  b.sched.advance(1s);
  std::string r = b.get("/a.txt");
  CHECK(body_of(r) == "changed!");
  CHECK(field(r, "ETag") != etag);
  // Replaced by rename (a new inode).
  write_file(b.files.base / "new.txt", "renamed in");
  fs::rename(b.files.base / "new.txt", b.files.root / "a.txt");
  b.sched.advance(1s);
  CHECK(body_of(b.get("/a.txt")) == "renamed in");
  // Removed, and a file that appears.
  fs::remove(b.files.root / "a.txt");
  write_file(b.files.root / "late.txt", "late");
  CHECK(status_of(b.get("/late.txt")) == 200);  // not cached before: looked up at once
  b.sched.advance(1s);
  CHECK(status_of(b.get("/a.txt")) == 404);

  http::static_options o;
  o.cache_valid = lancer::clock::duration::zero();
  bed at_once(o);
  CHECK(body_of(at_once.get("/a.txt")) == "plain");
  std::ofstream(at_once.files.root / "a.txt", std::ios::trunc) << "now";
  CHECK(body_of(at_once.get("/a.txt")) == "now");
  fs::remove(at_once.files.root / "a.txt");
  CHECK(status_of(at_once.get("/a.txt")) == 404);
}

TEST_CASE("a full open-file cache drops its least recently used entries first") {
  http::static_options o;
  o.cache_entries = 4;
  bed b(o);
  for (int i = 0; i < 5; ++i)
    write_file(b.files.root / ("f" + std::to_string(i)), "v1");
  for (const char* f : {"/f0", "/f1", "/f2", "/f3", "/f0", "/f4"})  // f0 used again: kept
    CHECK(body_of(b.get(f)) == "v1");
  for (int i = 0; i < 5; ++i)
    std::ofstream(b.files.root / ("f" + std::to_string(i)), std::ios::trunc) << "v2";
  // No time passed: an entry still held is trusted (the old bytes), a dropped one is read anew.
  CHECK(body_of(b.get("/f0")) == "v1");
  CHECK(body_of(b.get("/f4")) == "v1");
  CHECK(body_of(b.get("/f1")) == "v2");
  // Many misses in a row keep it bounded and correct.
  for (int i = 0; i < 200; ++i)
    CHECK(status_of(b.get("/missing" + std::to_string(i))) == 404);
  CHECK(body_of(b.get("/digits.txt")) == "0123456789");
}

TEST_CASE("a large file goes out whole through the fake source, to a slow reader too") {
  http::static_options o;
  o.in_memory = 1024;  // digits.txt stays in memory, big.bin does not
  bed b(o);
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>('a' + (i * 7) % 26);
  write_file(b.files.root / "big.bin", big);
  CHECK(body_of(b.get("/big.bin")) == big);
  // A reader that takes 64 KiB at a time.
  lancer::fake_client c = b.fake.connect();
  c.set_window(64 * 1024);
  c.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got;
  for (int i = 0; i < 200 && got.size() < big.size() + 300; ++i) {
    b.sched.run_until_idle();
    got += c.read();
  }
  b.sched.run_until_idle();
  got += c.read();
  const std::size_t second = got.find("HTTP/1.1 200 OK", 10);
  REQUIRE(second != std::string::npos);
  CHECK(body_of(got.substr(0, second)) == big);
  CHECK(body_of(got.substr(second)) == "0123456789");
  // A range in the middle of it, and several.
  CHECK(body_of(b.get("/big.bin", "Range: bytes=1000000-1000099\r\n")) == big.substr(1000000, 100));
  const std::string multi = b.get("/big.bin", "Range: bytes=0-9,2000000-2000009\r\n");
  CHECK(multi.find(big.substr(2000000, 10)) != std::string::npos);
}

TEST_CASE("a file that shrinks while it is sent ends the connection mid-body, with a log line") {
  for (const bool zero_copy : {true, false}) {
    CAPTURE(zero_copy);
    http::static_options o;
    o.in_memory = 0;
    o.sendfile = zero_copy;  // the fake source has no sendfile: both go through the buffer
    bed b(o);
    std::string big(2 * 1024 * 1024, 'x');
    write_file(b.files.root / "big.bin", big);
    lancer_test::log_capture logs;
    lancer::fake_client c = b.fake.connect();
    c.set_window(64 * 1024);
    c.write("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    b.sched.run_until_idle();
    std::string got = c.read();
    ::truncate((b.files.root / "big.bin").c_str(), 100 * 1024);
    for (int i = 0; i < 100 && !c.server_done(); ++i) {
      b.sched.run_until_idle();
      got += c.read();
    }
    CHECK(c.server_done());
    CHECK(field(got, "Content-Length") == std::to_string(big.size()));
    CHECK(body_of(got).size() < big.size());
    CHECK(logs.contains("big.bin"));
    // The server goes on serving.
    CHECK(body_of(b.get("/digits.txt")) == "0123456789");
  }
}

TEST_CASE("no file descriptor left: 503 with Retry-After and a log line, then it recovers") {
  bed b;
  lancer_test::log_capture logs;
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  // Fill the descriptor table up to a low limit.
  const int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(probe >= 0);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(probe + 16);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::vector<int> held{probe};
  for (;;) {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    held.push_back(fd);
  }
  const std::string r = b.get("/digits.txt");
  for (const int fd : held)
    ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  CHECK(status_of(r) == 503);
  CHECK(field(r, "Retry-After") == "1");
  CHECK(logs.contains("digits.txt"));
  CHECK(body_of(b.get("/digits.txt")) == "0123456789");
}

TEST_CASE("a file the server may not read gets 403 and a log line") {
  if (::geteuid() == 0) return;  // root reads it anyway
  bed b;
  lancer_test::log_capture logs;
  ::chmod((b.files.root / "a.txt").c_str(), 0);
  CHECK(status_of(b.get("/a.txt")) == 403);
  CHECK(logs.contains("a.txt"));
}

// A handler that answers with static_files::answer_or_error and its own page for what that
// leaves to it.
lancer::task<> with_own_pages(const http::static_files& files, lancer::connection& c,
                              http::request& req) {
  const unsigned status = co_await files.answer_or_error(c, req);
  if (status != 0)
    co_await http::respond(c, req, status, "text/plain", "own page " + std::to_string(status));
}

TEST_CASE("answer_or_error leaves 403 and 404 to its caller and answers the rest itself") {
  tree files;
  const http::static_files handler(files.root);
  const http::request_handler h = [&handler](lancer::connection& c, http::request& req,
                                             lancer::frame&, lancer::pubframe&) {
    return with_own_pages(handler, c, req);
  };
  const auto get = [&h](const std::string& target) {
    return lancer_test::run_app_split(h, "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", {});
  };
  std::string r = get("/missing");
  CHECK(status_of(r) == 404);
  CHECK(body_of(r) == "own page 404");  // one answer: nothing sent before the caller's
  r = get("/%2e%2e/secret.txt");
  CHECK(status_of(r) == 404);
  CHECK(body_of(r) == "own page 404");
  CHECK(body_of(get("/a.txt")) == "plain");
  r = get("/sub");
  CHECK(status_of(r) == 301);  // not an error: answered
  if (::geteuid() != 0) {      // root reads it anyway
    ::chmod((files.root / "a.txt").c_str(), 0);
    lancer_test::log_capture logs;
    r = get("/a.txt");
    CHECK(status_of(r) == 403);
    CHECK(body_of(r) == "own page 403");
  }
}

TEST_CASE("conditional and range requests split at every byte get the same answers") {
  tree files;
  const http::static_files handler(files.root);
  const http::request_handler h = [&handler](lancer::connection& c, http::request& req,
                                             lancer::frame&,
                                             lancer::pubframe&) { return handler(c, req); };
  const std::string etag = field(
      lancer_test::run_app_split(h, "GET /digits.txt HTTP/1.1\r\nHost: x\r\n\r\n", {}), "ETag");
  const std::string input =
      "GET /digits.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2,5-6\r\nIf-Range: " + etag +
      "\r\n\r\nGET /app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: "
      "\"x\"\r\n\r\nGET /sub HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string whole = lancer_test::check_every_split(h, input);
  CHECK(whole.find("HTTP/1.1 206") != std::string::npos);
  CHECK(whole.find("GZIP-BYTES") != std::string::npos);
  CHECK(whole.find("HTTP/1.1 301") != std::string::npos);
}

TEST_CASE("parse_http_date reads the three forms and refuses the rest") {
  CHECK(http::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == k_mtime);
  CHECK(http::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == k_mtime);
  CHECK(http::parse_http_date("Sun Nov  6 08:49:37 1994") == k_mtime);
  for (const char* bad : {"", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994 08:49:37",
                          "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 25:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
                          "Funday, 06-Nov-94 08:49:37 GMT", "Sun Nov 6 08:49:37 1994"}) {
    CAPTURE(std::string(bad));
    CHECK_FALSE(http::parse_http_date(bad));
  }
  std::array<char, 29> out{};
  CHECK(http::format_http_date(k_mtime, out) == "Sun, 06 Nov 1994 08:49:37 GMT");
}
