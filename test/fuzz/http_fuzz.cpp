// libFuzzer target: arbitrary bytes, in arbitrary fragments, through the fake source into a
// server running httputil. Whatever the input, the server must answer or close, never crash,
// hang, leak or touch memory it does not own (ASan and UBSan watch).
//
//   scripts/test runs it for a bounded time; by hand:
//   build/fuzz/test/fuzz/http_fuzz -max_total_time=60 test/fuzz/corpus/http
//
// Input: the first byte picks the fragment size (1..32 bytes, or 0 for everything at once);
// the rest is what the client sends, then it half-closes and time runs past every timeout.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lancer/http/httputil.hpp"
#include "lancer/log.hpp"
#include "lancer/source/fake.hpp"

namespace http = lancer::http;

namespace {

lancer::task<> app(lancer::connection& c, http::request& req, lancer::frame&, lancer::pubframe&) {
  if (req.target() == "/echo") {
    const auto body = co_await http::read_body(c, req);
    if (!body) co_return;
    co_await http::respond_on(c, req, 200, "application/octet-stream", *body);
  } else {
    co_await http::respond_on(c, req, 200, "text/plain", "Hello, World!");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  lancer::set_log_level(lancer::log_level::off);
  if (size == 0) return 0;
  const std::size_t fragment = data[0] % 33;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  lancer::scheduler sched{lancer::clock::manual()};
  http::limits lim;
  lim.body = 4096;
  lancer::server srv{sched, http::serve(app, lim)};
  lancer::fake_source fake;
  srv.attach_source(fake);
  srv.run();
  lancer::fake_client client = fake.connect();
  const std::size_t step = fragment == 0 ? input.size() : fragment;
  for (std::size_t at = 0; at < input.size() && !client.server_closed(); at += step) {
    client.write(input.substr(at, step));
    sched.run_until_idle();
    client.read();
  }
  if (!client.server_closed()) client.shutdown_write();
  sched.run_until_idle();
  client.read();
  sched.advance(std::chrono::minutes(5));        // past every timeout and grace period
  if (srv.connections() != 0) __builtin_trap();  // a connection outlived every deadline
  return 0;
}
