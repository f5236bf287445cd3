// lancer::ws: WebSocket (RFC 6455) on any connection, fake, TCP, Unix or systemd.
//
//   up.add("websocket", [](connection& c, http::request& req, frame&, pubframe&) -> task<> {
//     std::unique_ptr<ws::socket> ws = co_await ws::accept(c, req);
//     if (!ws) co_return;                          // answered over HTTP: 426, 403, 400
//     while (std::optional<ws::message> m = co_await ws->read()) {
//       co_await ws->send(*m);                     // an echo: text as text, binary as binary
//     }
//     // ws->close_code() says how it ended: 1000, 1001, 1002, 1006, 1007, 1009, ...
//   });
//
// The framing, masking, UTF-8 checks, fragmentation, control frames, the close handshake and
// permessage-deflate are Boost.Beast's websocket::stream. It runs over a view of the lancer
// connection (its bytes, its backpressure, its virtual time): no Asio socket, so it works on
// every source, and its completions run under the socket's own driver, inside the coroutine
// that awaits read(), send() or close(). Nothing resumes a coroutine directly.
//
// - Errors are values and log lines, never exceptions: read() returns nullopt once the
//   connection is closed, send() false. A peer that breaks the protocol gets the close code
//   RFC 6455 names (1002 protocol error, 1007 bad UTF-8, 1009 a message over `max_message`)
//   and the connection closes; the line is logged at info.
// - Timeouts run on the scheduler's clock (virtual in tests): a connection quiet for
//   `ping_interval` gets a ping; no byte within `ping_timeout` after it drops the connection
//   (1006); `idle_timeout` with no message closes it with 1001. A server drain closes each
//   socket with 1001 as its handler next waits.
// - Backpressure: send() waits while the peer is slow to read (the connection's high-water
//   mark). Memory stays bounded: a message is at most `max_message`, and post() refuses (and
//   closes 1008) once `max_queued` bytes wait for a peer that does not read.
// - One thread drives the socket at a time: the one in read(), send(), ping() or close().
//   Another thread of the same scheduler (a broadcast) uses post(), which queues a copy and
//   wakes the driver; other OS threads must not touch the socket.
// - Steady state allocates nothing per message: completions and Beast's operations live in
//   the scheduler's frame pool, and the message buffer keeps its capacity.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/core/connection.hpp"
#include "lancer/http/request.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::ws {

// Close codes (RFC 6455 7.4.1).
enum close_code : std::uint16_t {
  normal = 1000,
  going_away = 1001,
  protocol_error = 1002,
  unsupported_data = 1003,
  no_status = 1005,  // the peer's close frame had no code
  abnormal = 1006,   // no close frame: the connection was lost or dropped
  bad_payload = 1007,
  policy_violation = 1008,
  too_big = 1009,
  internal_error = 1011,
};

struct options {
  std::size_t max_message = 1 << 20;  // the largest message read; beyond: close 1009
  clock::duration ping_interval = std::chrono::seconds(30);  // quiet this long: a ping (0: never)
  clock::duration ping_timeout = std::chrono::seconds(30);   // no byte after it: dropped (1006)
  clock::duration idle_timeout = std::chrono::minutes(10);   // no message this long: close 1001
  clock::duration close_timeout = std::chrono::seconds(5);   // for the peer's close frame
  // permessage-deflate (RFC 7692), off by default: compression costs CPU and, per
  // connection, zlib's windows (about 300 KiB at these settings while compressing).
  bool deflate = false;
  int deflate_level = 6;
  int deflate_window_bits = 15;
  std::size_t deflate_threshold = 64;  // smaller messages are sent as they are
  // Subprotocols this server speaks, preferred first. The first one the client offers is
  // chosen (subprotocol()); none in common: the handshake goes on without one (RFC 6455 4.2.2).
  std::vector<std::string> subprotocols;
  // Checks the Origin field ("" when absent); false answers 403. Unset: any origin.
  std::function<bool(std::string_view origin)> check_origin;
  std::size_t max_queued = 1 << 20;  // bytes post() may queue; beyond: close 1008
};

enum class kind : std::uint8_t { text, binary };

// A whole message (fragments are joined). `data` is valid until the socket's next read().
struct message {
  kind type = kind::text;
  std::string_view data;
  bool is_text() const noexcept { return type == kind::text; }
};

class socket {
 public:
  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;
  virtual ~socket();

  // The next whole message, or nullopt once the connection is closed (close_code() says
  // why). Pings are answered and pongs taken on the way.
  [[nodiscard]] task<std::optional<message>> read();
  // Sends a text message (it must be UTF-8), a binary one, or one of `m`'s kind. Returns false
  // if the connection is closed. Waits while the peer is slow to read. From a thread other
  // than the one driving the socket, it is post(): queued, not waited for.
  [[nodiscard]] task<bool> send(std::string_view text);
  [[nodiscard]] task<bool> send_binary(std::string_view bytes);
  [[nodiscard]] task<bool> send(const message& m);
  // Sends a ping (at most 125 bytes); the pong is taken by a later read().
  [[nodiscard]] task<bool> ping(std::string_view payload = {});
  // The close handshake: sends `code` and `reason` (at most 123 bytes), waits for the peer's
  // close frame (at most `close_timeout`), then closes the connection.
  task<> close(std::uint16_t code = close_code::normal, std::string_view reason = {});
  // Queues a copy of a message for the thread driving the socket (in read()), and wakes it.
  // False if the connection is closed, or if more than `max_queued` bytes would wait (the
  // peer does not read: the socket is closed with 1008 instead).
  bool post(std::string_view data, kind type = kind::text);

  bool is_open() const noexcept;
  // How the connection ended: the code of the close frame received (or sent first, when this
  // side closed or the peer broke the protocol), 1006 if it was lost; 0 while open.
  std::uint16_t close_code() const noexcept;
  std::string_view close_reason() const noexcept;
  // The subprotocol chosen at the handshake, or "".
  std::string_view subprotocol() const noexcept;
  // Whether permessage-deflate was negotiated.
  bool deflated() const noexcept;
  connection& conn() const noexcept;

 protected:
  socket() = default;
};

// The WebSocket handshake for `req`, a GET that asks to upgrade to websocket: checks it
// (Sec-WebSocket-Key, version 13, the origin), answers 101 with the subprotocol and the
// extensions chosen, and hands the connection over (http::switched_protocols). A request that
// does not ask for WebSocket gets 426 with `Upgrade: websocket`; a bad handshake gets 400 (a
// wrong version 426 with `Sec-WebSocket-Version: 13`); a refused origin 403; then nullptr.
// `o` must outlive the socket.
[[nodiscard]] task<std::unique_ptr<socket>> accept(connection& c, http::request& req,
                                                   const options& o);
[[nodiscard]] task<std::unique_ptr<socket>> accept(connection& c, http::request& req);

}  // namespace lancer::ws
