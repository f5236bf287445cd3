// lancer::http::test_client: an app's HTTP tests, in memory and in virtual time.
//
//   http::test_client t{app.handler()};           // a server on the fake source, manual clock
//   auto r = t.get("/hello/ann");
//   CHECK(r.status == 200);
//   CHECK(r.body == "Hello, ann!\n");
//   auto made = t.post("/items", R"({"name":"pen"})", "application/json");
//   CHECK(made.header("Location") == "/items/1");
//   t.advance(5s);                                 // virtual time: timeouts fire
//   CHECK(!t.connected());
//
// Requests go over one keep-alive connection, opened again when the server closed it. Each
// call runs the server until the answer is whole, stepping the manual clock from one timer to
// the next when the server waits for time (a handler that sleeps 2 s takes 2 s of virtual
// time and no real time). The client keeps cookies: Set-Cookie fields it receives are sent
// back in a Cookie field (one jar for every host and path; Max-Age=0 or a past Expires
// deletes; a positive Max-Age does not run out in virtual time). The Date field follows the manual
// clock (clock::wall_now), so whole responses can be compared. Log lines below `log` are dropped
// while the client lives (LANCER_TEST_LOG=debug or info in the environment shows them).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/http/headers.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/sched/scheduler.hpp"
#include "lancer/source/fake.hpp"

namespace lancer::http {

// A response as the client read it.
struct test_response {
  unsigned status = 0;  // 0: the server closed the connection without a whole answer
  std::vector<std::pair<std::string, std::string>> fields;  // in order, as sent
  std::string body;                                         // de-chunked
  std::string raw;                                          // the bytes as they came
  bool closed = false;  // the server closed the connection after it

  // The value of the first field called `name` (case-insensitively), or "".
  std::string_view header(std::string_view name) const noexcept;
  // How many fields are called `name`.
  std::size_t count(std::string_view name) const noexcept;
};

struct test_options {
  server_options server;            // the server's options
  log_level log = log_level::warn;  // lines below are dropped while the client lives
  std::string host = "localhost";   // the Host field, unless a request gives its own
  clock::duration max_wait = std::chrono::hours(1);  // virtual time one answer may take
};

namespace detail {
// Parses the first response in `in` (the answer to a HEAD if `head`); nullopt while it is
// incomplete. `eof`: the server closed, so a body that runs to the close is whole. Sets
// `used` to the bytes it took. An unparsable answer comes back with the reason in its body.
// (ws::test_client reads its handshake's answer with it too.)
std::optional<test_response> parse_response(std::string_view in, bool head, bool eof,
                                            std::size_t& used);
}  // namespace detail

class test_client {
 public:
  explicit test_client(server::handler h, test_options o = {});
  ~test_client();
  test_client(const test_client&) = delete;
  test_client& operator=(const test_client&) = delete;

  test_response get(std::string_view target, const http::fields& extra = {});
  test_response post(std::string_view target, std::string_view body,
                     std::string_view content_type = "application/x-www-form-urlencoded",
                     const http::fields& extra = {});
  // Any method. A body gets a Content-Length; `extra` may set Content-Type, Host, Cookie,
  // Connection and others.
  test_response request(std::string_view method, std::string_view target,
                        std::string_view body = {}, const http::fields& extra = {});
  // Sends `bytes` as they are (a request of one's own making) and returns the first whole
  // response. Answers to further requests in `bytes` are dropped, unread: send those one
  // call at a time. Interim 1xx answers (100 Continue) are passed over here as everywhere.
  test_response send_raw(std::string_view bytes);

  // Lets `d` of virtual time pass (timers due fire, each at its own time).
  void advance(clock::duration d);
  // Whether the keep-alive connection is still open (the server has not closed it).
  bool connected() const noexcept;
  // The cookie jar: name -> value.
  std::map<std::string, std::string>& cookies() noexcept { return cookies_; }

  scheduler& sched() noexcept { return *sched_; }
  server& srv() noexcept { return *srv_; }
  fake_source& source() noexcept { return *fake_; }

 private:
  test_response exchange(std::string_view bytes);
  void keep_cookies(const test_response& r);

  test_options options_;
  log_level saved_level_;
  std::unique_ptr<scheduler> sched_;
  std::unique_ptr<fake_source> fake_;
  std::unique_ptr<server> srv_;
  std::optional<fake_client> conn_;
  std::string pending_;  // bytes received after the last whole response
  bool head_ = false;    // the request was HEAD: its answer has no body
  std::map<std::string, std::string> cookies_;
};

}  // namespace lancer::http
