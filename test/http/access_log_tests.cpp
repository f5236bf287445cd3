// http::access_log: lines batched per scheduler turn, both formats, the request time, flush,
// reopen and write errors.
#include "lancer/http/access_log.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/sched/awaitables.hpp"
#include "lancer/source/fake.hpp"
#include "log_capture.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace http = lancer::http;
namespace json = boost::json;
using lancer::connection;
using lancer::fake_client;
using lancer::frame;
using lancer::pubframe;
using lancer::task;

namespace {

// A file name of its own under the temporary directory, removed at the end.
struct temp_path {
  fs::path path;
  explicit temp_path(const char* name)
      : path(fs::temp_directory_path() /
             (std::string("lancer-access-") + name + "-" + std::to_string(::getpid()))) {
    fs::remove(path);
  }
  ~temp_path() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t from = 0;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', from)) {
    out.push_back(text.substr(from, nl - from));
    from = nl + 1;
  }
  CHECK(from == text.size());  // no torn last line
  return out;
}

// A server on the fake source in virtual time whose handler is `h`, logging to `log`.
struct bed {
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv;
  lancer::fake_source fake;
  bed(http::request_handler h, const http::access_log& log)
      : srv(sched, http::serve(std::move(h), {}, log.hook())) {
    lancer::set_log_level(lancer::log_level::warn);
    srv.attach_source(fake);
    srv.run();
  }
  ~bed() { lancer::set_log_level(lancer::log_level::info); }
};

task<> hello(connection& c, http::request& req, frame&, pubframe&) {
  co_await http::respond(c, req, 200, "text/plain", "Hello, World!");
}

}  // namespace

TEST_CASE("access_log: a turn's lines are written together when the turn ends") {
  temp_path file("turn");
  http::access_log log(file.path.string());
  std::vector<std::size_t> seen;  // the file's size as each handler ran
  bed b(
      [&](connection& c, http::request& req, frame&, pubframe&) -> task<> {
        seen.push_back(read_file(file.path).size());
        co_await http::respond(c, req, 200, "text/plain", "ok");
      },
      log);
  fake_client c = b.fake.connect();
  // Three pipelined requests: answered in one turn; the lines wait for its end.
  c.exchange(
      "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
      "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(seen == std::vector<std::size_t>{0, 0, 0});
  const std::vector<std::string> lines = lines_of(read_file(file.path));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].find("\"GET /1 HTTP/1.1\" 200 2 \"-\" \"-\" 0.000") != std::string::npos);
  CHECK(lines[2].find("\"GET /3 HTTP/1.1\" 200 2 ") != std::string::npos);
  // The next request, in a later turn, sees the earlier lines in the file.
  c.exchange("GET /4 HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(seen.size() == 4);
  CHECK(seen[3] == read_file(file.path).size() - lines_of(read_file(file.path))[3].size() - 1);
}

TEST_CASE("access_log: a buffer past batch_bytes is written at once, within the turn") {
  temp_path file("batch");
  http::access_log log(file.path.string(), {.batch_bytes = 1});
  std::vector<std::size_t> seen;
  bed b(
      [&](connection& c, http::request& req, frame&, pubframe&) -> task<> {
        seen.push_back(lines_of(read_file(file.path)).size());
        co_await http::respond(c, req, 200, "text/plain", "ok");
      },
      log);
  fake_client c = b.fake.connect();
  c.exchange("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(seen == std::vector<std::size_t>{0, 1});
}

TEST_CASE("access_log: the request time runs from the request's start to its answer") {
  temp_path file("time");
  http::access_log combined(file.path.string());
  temp_path jfile("time-json");
  http::access_log js(jfile.path.string(), {.format = http::log_format::json});
  lancer::scheduler sched{lancer::clock::manual()};
  auto slow = [](connection& c, http::request& req, frame&, pubframe&) -> task<> {
    co_await lancer::sleep_for(1500ms);
    co_await http::respond(c, req, 200, "text/plain", "late");
  };
  lancer::server a(sched, http::serve(slow, {}, combined.hook()));
  lancer::server j(sched, http::serve(slow, {}, js.hook()));
  lancer::fake_source fa;
  lancer::fake_source fj;
  a.attach_source(fa);
  j.attach_source(fj);
  a.run();
  j.run();
  fake_client ca = fa.connect();
  fake_client cj = fj.connect();
  ca.write("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
  cj.write("GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
  sched.run_until_idle();
  sched.advance(2s);
  const std::vector<std::string> lines = lines_of(read_file(file.path));
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].ends_with("\"GET /slow HTTP/1.1\" 200 4 \"-\" \"-\" 1.500"));
  const std::vector<std::string> jl = lines_of(read_file(jfile.path));
  REQUIRE(jl.size() == 1);
  const json::object o = json::parse(jl[0]).as_object();
  CHECK(o.at("request_time").to_number<double>() == doctest::Approx(1.5));
  CHECK(jl[0].find("\"request_time\":1.500,") != std::string::npos);
}

TEST_CASE("access_log: JSON lines are valid JSON, whatever the client sent") {
  temp_path file("json");
  http::access_log log(file.path.string(), {.format = http::log_format::json});
  bed b(hello, log);
  fake_client c = b.fake.connect();
  // Quotes, backslashes, a tab, valid UTF-8 (é, €, 😀), and bytes that are not UTF-8: a lone
  // 0xff, a cut sequence, an overlong '/', an encoded surrogate.
  const std::string agent =
      "a\"b\\c\td \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xff \xe2\x82 "
      "\xc0\xaf \xed\xa0\x80 end";
  const std::string referer = "http://r/?q=</script>&x=\"'";
  c.exchange("GET /p\"q\\r?s={}|^` HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: " + agent +
             "\r\nReferer: " + referer + "\r\n\r\nPOST /x HTTP/1.0\r\n\r\n");
  const std::vector<std::string> lines = lines_of(read_file(file.path));
  REQUIRE(lines.size() == 2);
  json::object o = json::parse(lines[0]).as_object();
  CHECK(o.at("method").as_string() == "GET");
  CHECK(o.at("target").as_string() == "/p\"q\\r?s={}|^`");
  CHECK(o.at("protocol").as_string() == "HTTP/1.1");
  CHECK(o.at("status").to_number<int>() == 200);
  CHECK(o.at("bytes_sent").to_number<int>() == 13);
  CHECK(o.at("remote_addr").as_string() == "fake/1");
  CHECK(o.at("host").as_string() == "example.com:8080");
  CHECK(o.at("referer").as_string() == referer);
  CHECK(o.at("user_agent").as_string() ==
        "a\"b\\c\td \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd "
        "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
  const std::string time(o.at("time").as_string());
  CAPTURE(time);
  CHECK(time.size() == 25);  // 1970-01-01T01:00:00+00:00
  CHECK(time[10] == 'T');
  CHECK(time[22] == ':');
  CHECK(o.size() == 11);
  // A 1.0 request without Host, Referer or User-Agent.
  o = json::parse(lines[1]).as_object();
  CHECK(o.at("protocol").as_string() == "HTTP/1.0");
  CHECK(o.at("host").as_string() == "");
  CHECK(o.at("user_agent").as_string() == "");
  // The raw line keeps JSON's escapes, and nothing in it is a control character.
  for (const char ch : lines[0])
    CHECK(static_cast<unsigned char>(ch) >= 0x20);
  CHECK(lines[0].find("\"user_agent\":\"a\\\"b\\\\c\\td ") != std::string::npos);
}

TEST_CASE("access_log: a request refused before its handler is logged with its status") {
  temp_path file("refused");
  temp_path jfile("refused-json");
  http::access_log combined(file.path.string());
  http::access_log js(jfile.path.string(), {.format = http::log_format::json});
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv(sched, http::serve(hello, {.target = 64, .body = 10, .header_timeout = 5s},
                                        [&](const connection& c, const http::request& req) {
                                          combined.write(c, req);
                                          js.write(c, req);
                                        }));
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  lancer::set_log_level(lancer::log_level::warn);
  fake.connect().exchange("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n");
  fake.connect().exchange("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n");
  fake_client slow = fake.connect();
  slow.write("GET /slow HTTP/1.1\r\nHost: h\r\n");
  sched.run_until_idle();
  sched.advance(6s);
  fake_client gone = fake.connect();  // closes in the middle of a header: nothing answered
  gone.write("GET /gone HTTP/1.1\r\n");
  gone.shutdown_write();
  sched.run_until_idle();
  sched.advance(5s);
  lancer::set_log_level(lancer::log_level::info);
  combined.flush();
  js.flush();
  const std::vector<std::string> lines = lines_of(read_file(file.path));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].find("\"POST /big HTTP/1.1\" 413 ") != std::string::npos);
  CHECK(lines[1].find("] \"-\" 414 ") != std::string::npos);  // the request line was not read
  CHECK(lines[2].find("] \"-\" 408 ") != std::string::npos);  // its header never ended
  const std::vector<std::string> jl = lines_of(read_file(jfile.path));
  REQUIRE(jl.size() == 3);
  const json::object o = json::parse(jl[1]).as_object();
  CHECK(o.at("status").to_number<int>() == 414);
  CHECK(o.at("method").as_string() == "");
  CHECK(o.at("target").as_string() == "");
}

TEST_CASE("access_log: parse_log_format takes combined and json only") {
  http::log_format f = http::log_format::json;
  CHECK(http::parse_log_format("combined", f));
  CHECK(f == http::log_format::combined);
  CHECK(http::parse_log_format("json", f));
  CHECK(f == http::log_format::json);
  CHECK_FALSE(http::parse_log_format("JSON", f));
  CHECK_FALSE(http::parse_log_format("", f));
  CHECK(f == http::log_format::json);
}

TEST_CASE("access_log: reopen writes what was buffered to the old file, then the new one") {
  temp_path file("reopen");
  temp_path moved("reopen-moved");
  http::access_log log(file.path.string());
  bed b(hello, log);
  fake_client c = b.fake.connect();
  c.exchange("GET /before HTTP/1.1\r\nHost: h\r\n\r\n");
  fs::rename(file.path, moved.path);
  c.exchange("GET /between HTTP/1.1\r\nHost: h\r\n\r\n");  // still the old file
  CHECK(log.reopen());
  c.exchange("GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::vector<std::string> old_lines = lines_of(read_file(moved.path));
  const std::vector<std::string> new_lines = lines_of(read_file(file.path));
  REQUIRE(old_lines.size() == 2);
  REQUIRE(new_lines.size() == 1);
  CHECK(old_lines[1].find("/between") != std::string::npos);
  CHECK(new_lines[0].find("/after") != std::string::npos);
}

TEST_CASE("access_log: a line logged outside a scheduler, and flush, reach the file") {
  temp_path file("flush");
  {
    http::access_log log(file.path.string());
    CHECK(log.enabled());
    bed b(hello, log);
    fake_client c = b.fake.connect();
    c.write("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
    b.sched.run_until_idle();
    log.flush();
    CHECK(lines_of(read_file(file.path)).size() == 1);
  }
  CHECK(lines_of(read_file(file.path)).size() == 1);
  http::access_log off("off");
  CHECK_FALSE(off.enabled());
  CHECK(off.reopen());
  CHECK_THROWS_AS(http::access_log("/nonexistent-dir/x/access.log"), std::system_error);
}

TEST_CASE("access_log: failed writes give one warning, not one per line, and no crash") {
  if (!fs::exists("/dev/full")) return;
  lancer_test::log_capture logs;
  http::access_log log("/dev/full");
  bed b(hello, log);
  lancer::set_log_level(lancer::log_level::info);
  fake_client c = b.fake.connect();
  for (int i = 0; i < 5; ++i)
    CHECK(c.exchange("GET / HTTP/1.1\r\nHost: h\r\n\r\n").find("200 OK") != std::string::npos);
  std::size_t warnings = 0;
  for (const std::string& l : logs.lines)
    warnings += l.find("writing to /dev/full failed") != std::string::npos ? 1 : 0;
  CHECK(warnings == 1);
}

TEST_CASE("access_log: the combined line is http::access_line and the request time") {
  std::vector<std::pair<std::string, std::string>> got;  // (access_line, combined)
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched,
                     http::serve(hello, {}, [&](const connection& c, const http::request& req) {
                       std::string line;
                       http::append_log_line(line, http::log_format::combined, c, req);
                       got.emplace_back(http::access_line(c, req), line);
                     })};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  fake_client c = fake.connect();
  c.exchange(
      "GET /a%22b?c=\"\\ HTTP/1.1\r\nHost: h\r\nReferer: r\"\\\r\nUser-Agent: "
      "\xc3\xa9\x80\tz\r\n\r\n"
      "HEAD / HTTP/1.0\r\n\r\n");
  REQUIRE(got.size() == 2);
  // The same line but for the time, which follows the scheduler's (here manual) clock.
  for (const auto& [plain, combined] : got) {
    CHECK(combined.substr(0, combined.find('[')) == plain.substr(0, plain.find('[')));
    CHECK(combined.substr(combined.find(']')) == plain.substr(plain.find(']')) + " 0.000");
  }
  CHECK(got[0].second.find("\"r\\x22\\x5C\" \"\\xC3\\xA9\\x80\\x09z\"") != std::string::npos);
}
