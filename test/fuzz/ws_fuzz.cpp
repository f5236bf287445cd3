// libFuzzer target, differential: WebSocket frames after a valid handshake, sent to an echo
// server (http::upgrades -> ws::accept -> read/send) whole, in the fragments the input
// chooses, and cut at a point it chooses, must get byte-identical answers (the 101's Date
// aside). After the client half-closes and virtual time runs past every timeout, no
// connection may be left. ASan and UBSan watch for the rest.
//
//   scripts/test runs it for a fixed number of inputs; by hand:
//   build/fuzz/test/fuzz/ws_fuzz -max_total_time=60 test/fuzz/corpus/ws
//
// Input: byte 0 picks the fragment size (1..32 bytes, or 0 for none) and, with its high bit,
// how the rest is read; bytes 1 and 2 pick a cut point. The rest is either raw bytes sent
// after the handshake, or (high bit set) a list of frames to build, masked as a client must:
// each is a flags byte (FIN, RSV1-3, opcode, as on the wire), a length byte, then that many
// payload bytes; so the fuzzer reaches fragmentation, control frames, UTF-8 and close codes
// instead of stopping at the mask bit.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http_app.hpp"
#include "lancer/http/upgrade.hpp"
#include "lancer/log.hpp"
#include "lancer/ws/socket.hpp"

namespace http = lancer::http;
namespace ws = lancer::ws;

namespace {

[[noreturn]] void fail(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "ws_fuzz: %s\n--- whole (%zu bytes)\n--- other (%zu bytes)\n", what,
               a.size(), b.size());
  __builtin_trap();
}

const ws::options& small_limits() {
  static const ws::options o = [] {
    ws::options x;
    x.max_message = 4096;
    return x;
  }();
  return o;
}

lancer::task<> echo(lancer::connection& c, http::request& req, lancer::frame&, lancer::pubframe&) {
  std::unique_ptr<ws::socket> s = co_await ws::accept(c, req, small_limits());
  if (!s) co_return;
  for (;;) {
    const std::optional<ws::message> m = co_await s->read();
    if (!m) break;
    const bool sent = co_await s->send(*m);
    if (!sent) break;
  }
}

constexpr std::string_view k_handshake =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// The frames the input lists, masked with a fixed key.
std::string build_frames(std::string_view spec) {
  static constexpr unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
  std::string out;
  while (spec.size() >= 2) {
    const auto flags = static_cast<unsigned char>(spec[0]);
    const std::size_t n =
        std::min<std::size_t>(static_cast<unsigned char>(spec[1]), spec.size() - 2);
    const std::string_view payload = spec.substr(2, n);
    spec.remove_prefix(2 + n);
    out += static_cast<char>(flags);
    out += static_cast<char>(0x80 | (n < 126 ? n : 126));
    if (n >= 126) {
      out += static_cast<char>(n >> 8);
      out += static_cast<char>(n & 0xff);
    }
    out.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < n; ++i)
      out += static_cast<char>(payload[i] ^ key[i % 4]);
  }
  return out;
}

// The handshake (whole) and `input` (cut at `cuts`) through an echo server; then time past
// every timeout, after which no connection may be left.
std::string run(std::string_view input, std::span<const std::size_t> cuts) {
  http::upgrades up;
  up.add("websocket", echo);
  std::string all(k_handshake);
  all += input;
  std::vector<std::size_t> at{k_handshake.size()};
  for (const std::size_t c : cuts)
    at.push_back(k_handshake.size() + c);
  return lancer_test::run_server_split(
      http::serve(lancer_test::http_app, {}, {}, std::move(up)), all, at,
      [](lancer::scheduler& sched, lancer::server& srv) {
        sched.advance(std::chrono::minutes(15));       // past the ping, idle and close timeouts
        if (srv.connections() != 0) __builtin_trap();  // a connection outlived every deadline
      });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  lancer::set_log_level(lancer::log_level::off);
  if (size < 3) return 0;
  const std::size_t fragment = (data[0] & 0x7f) % 33;
  const std::size_t cut_at = static_cast<std::size_t>(data[1]) << 8 | data[2];
  const std::string_view rest(reinterpret_cast<const char*>(data + 3), size - 3);
  const std::string input = (data[0] & 0x80) != 0 ? build_frames(rest) : std::string(rest);

  const std::string whole = run(input, {});
  if (whole.rfind("HTTP/1.1 101 ", 0) != 0)
    fail("the handshake was not answered with 101", whole, "");
  if (fragment != 0) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = fragment; at < input.size(); at += fragment)
      cuts.push_back(at);
    const std::string pieces = run(input, cuts);
    if (pieces != whole) fail("fragments answered differently", whole, pieces);
  }
  if (!input.empty()) {
    const std::size_t cut[] = {cut_at % input.size()};
    const std::string two = run(input, cut);
    if (two != whole) fail("two pieces answered differently", whole, two);
  }
  return 0;
}
