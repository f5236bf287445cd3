// form.hpp through the fake source: read_form answers 415, 400 and 413 by itself, a reused
// params serves a whole connection, and a form split anywhere gets the same answer.
#include "lancer/http/form.hpp"

#include <doctest/doctest.h>

#include <string>

#include "app_split.hpp"
#include "lancer/core/server.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"

using lancer::connection;
using lancer::frame;
using lancer::pubframe;
using lancer::task;
using lancer_test::check_every_split;
using lancer_test::run_app_split;
namespace http = lancer::http;

namespace {

struct quiet {
  quiet() { lancer::set_log_level(lancer::log_level::off); }
  ~quiet() { lancer::set_log_level(lancer::log_level::info); }
};

http::limits small() {
  http::limits lim;
  lim.body = 4096;
  return lim;
}

// Each pair as "name=value\n", decoded.
std::string listing(const http::params& form) {
  std::string out;
  for (const http::params::param p : form)
    out.append(p.name).append("=").append(p.value).append("\n");
  return out;
}

// POST /form answers 200 with the listing of the form.
task<> form_app(connection& c, http::request& req, frame&, pubframe&) {
  const std::optional<http::params> form = co_await http::read_form(c, req, small());
  if (!form) {
    CHECK(req.answered());
    co_return;
  }
  const std::string out = listing(*form);
  http::response r;
  r.body = out;
  co_await http::respond(c, req, r);
}

std::string post(std::string_view body,
                 std::string_view type = "application/x-www-form-urlencoded") {
  std::string r = "POST /form HTTP/1.1\r\nHost: x\r\n";
  if (!type.empty()) r += "Content-Type: " + std::string(type) + "\r\n";
  return r + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

std::string run(std::string_view input) {
  return run_app_split(form_app, input, {}, small());
}

using lancer_test::body_of;
using lancer_test::status_of;

bool has(const std::string& s, std::string_view what) {
  return s.find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("a form POST is decoded: '+', %XX, repeated names, empty values") {
  quiet q;
  const std::string reply = run(post("user=ann+lee&tag=a&tag=b%26c&empty&note=%C3%A9"));
  CHECK(status_of(reply) == 200);
  CHECK(body_of(reply) == "user=ann lee\ntag=a\ntag=b&c\nempty=\nnote=\xc3\xa9\n");
}

TEST_CASE("a form's type may carry parameters and any case") {
  quiet q;
  const std::string reply = run(post("a=1", "Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
  CHECK(status_of(reply) == 200);
  CHECK(body_of(reply) == "a=1\n");
}

TEST_CASE("a body that is not a urlencoded form gets 415, and the connection goes on") {
  quiet q;
  for (const std::string_view type :
       {"multipart/form-data; boundary=x", "", "application/json", "text/plain"}) {
    CAPTURE(type);
    const std::string reply = run(post("a=1", type) + post("b=2"));
    CHECK(status_of(reply) == 415);
    CHECK(has(reply, "Content-Type must be application/x-www-form-urlencoded"));
    CHECK(has(reply, "\r\n\r\nb=2\n"));
  }
}

TEST_CASE("a bad escape, a NUL or too many pairs gets 400 naming it") {
  quiet q;
  for (const std::string_view bad : {"a=%zz", "a=1&b=%4", "a=%", "a=%00", "%zz=1"}) {
    CAPTURE(bad);
    const std::string reply = run(post(bad) + post("ok=1"));
    CHECK(status_of(reply) == 400);
    CHECK(has(reply, "bad form body: bad percent-escape\n"));
    CHECK(has(reply, "\r\n\r\nok=1\n"));  // the body was read: the connection goes on
  }
  std::string many;
  for (std::size_t i = 0; i <= http::params::default_max_pairs; ++i)
    many += "a&";
  const std::string reply = run(post(many));
  CHECK(status_of(reply) == 400);
  CHECK(has(reply, "bad form body: too many pairs\n"));
}

TEST_CASE("a form over the body limit gets 413 and the connection closes") {
  quiet q;
  const std::string reply = run(post("a=" + std::string(5000, 'x')));
  CHECK(status_of(reply) == 413);
  CHECK(has(reply, "\r\nConnection: close\r\n"));
}

TEST_CASE("one params serves every form of a keep-alive connection") {
  quiet q;
  lancer::scheduler sched{lancer::clock::manual()};
  lancer::server srv{sched, [](connection& c, frame&, pubframe&) -> task<> {
                       http::request req;
                       http::params form;  // reused: warm parses allocate nothing
                       while (co_await http::wait_for_headers(c, req)) {
                         const bool ok = co_await http::read_form(c, req, form);
                         if (!ok) continue;  // answered
                         const std::string out = listing(form);
                         http::response r;
                         r.body = out;
                         co_await http::respond(c, req, r);
                       }
                     }};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  lancer::fake_client client = fake.connect();
  CHECK(body_of(client.exchange(post("a=1&b=2"))) == "a=1\nb=2\n");
  CHECK(status_of(client.exchange(post("a=%zz"))) == 400);
  CHECK(body_of(client.exchange(post("c=3"))) == "c=3\n");
  CHECK(status_of(client.exchange(post("c=3", "text/plain"))) == 415);
  CHECK(body_of(client.exchange(post(""))) == "");
  CHECK_FALSE(client.server_done());
}

TEST_CASE("a form POST split anywhere gets the same answer") {
  quiet q;
  const std::string whole =
      check_every_split(form_app, post("user=ann+lee&tag=%41%42&x") + post("a=%zz"), small());
  CHECK(has(whole, "HTTP/1.1 200 OK\r\n"));
  CHECK(has(whole, "tag=AB\n"));
  CHECK(has(whole, "HTTP/1.1 400 "));
}
