// lancer::ws::test_client: an app's WebSocket tests, in memory and in virtual time.
//
//   ws::test_client t{http::serve(routes, {}, {}, std::move(upgrades))};
//   REQUIRE(t.connect("/chat"));                  // the opening handshake: 101, accept checked
//   t.send_text("hello");                         // one masked frame, written by hand
//   auto m = t.read_message();                    // the server's next message, fragments joined
//   CHECK(m->data == "hello");
//   t.send_frame(ws::opcode::text, "x", {.masked = false});   // a bad frame, on purpose
//   CHECK(t.expect_close().code == 1002);
//   CHECK(t.closed());                            // the server closed the connection
//
// Like http::test_client (which it runs on: its scheduler with a manual clock, its fake source
// and its server), every call runs the server until it has nothing left to do now, and the
// calls that wait for something (next_frame, read_message, expect_close, connect) step the
// manual clock from one timer to the next, up to `max_wait`: a server that pings after 30 s
// takes 30 s of virtual time and no real time.
//
// The client speaks RFC 6455 by hand, not through a WebSocket library, so that a test can send
// what no library would: unmasked frames, reserved bits and opcodes, a frame cut in pieces
// with the server running between them, bytes right behind the handshake. What the server
// sends is checked as it is decoded: a server frame must not be masked, must not set RSV2/3
// (nor RSV1 unless permessage-deflate was negotiated), control frames are whole and at most
// 125 bytes, lengths are minimally encoded, close codes valid, text valid UTF-8, and nothing
// comes after a close frame. Each breach is a line in violations(); a test checks it is empty.
//
// The client answers nothing by itself (no pong, no close) unless asked: answer_pings(true),
// expect_close(true).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/core/server.hpp"
#include "lancer/http/headers.hpp"
#include "lancer/http/test_client.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/ws/socket.hpp"

namespace lancer::ws {

// Frame opcodes (RFC 6455 5.2). Reserved ones are sent as ws::opcode{3}.
enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xa,
};

// How send_frame writes a frame.
struct frame_options {
  bool fin = true;
  bool masked = true;  // a client must mask (RFC 6455 5.3): false makes a bad frame
  bool rsv1 = false;   // set by hand: permessage-deflate's "compressed" bit
  bool rsv2 = false;
  bool rsv3 = false;
  std::optional<std::array<std::uint8_t, 4>> mask;  // the masking key; unset: the next of a
                                                    // fixed sequence (runs are reproducible)
};

// A frame the server sent, decoded.
struct test_frame {
  opcode op = opcode::continuation;
  bool fin = false;
  bool rsv1 = false;
  bool rsv2 = false;
  bool rsv3 = false;
  bool masked = false;
  std::string payload;  // unmasked; as sent (still compressed when rsv1 is set)
  std::string raw;      // the frame's bytes as they came

  bool is_control() const noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }
  // For a close frame: its code (1005 when it has none) and reason.
  std::uint16_t close_code() const noexcept;
  std::string_view close_reason() const noexcept;
};

// A whole message from the server: its fragments joined, inflated if it was compressed.
struct test_message {
  kind type = kind::text;
  std::string data;
  bool compressed = false;  // it came with RSV1 (permessage-deflate)
  std::size_t frames = 0;   // how many frames it took
};

// What expect_close() saw.
struct test_close {
  bool received = false;   // a close frame came
  std::uint16_t code = 0;  // its code (1005: none in the frame); 1006 if no close frame came
  std::string reason;
};

// How connect() asks for the upgrade. Fields left at their defaults make a valid request.
struct handshake {
  std::vector<std::string> protocols;  // Sec-WebSocket-Protocol, in this order; none: no field
  std::optional<std::string> origin;   // Origin
  bool deflate = false;                // offers permessage-deflate (client_max_window_bits)
  std::string extensions;              // a Sec-WebSocket-Extensions value of one's own
  std::string key = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 1.3's example
  bool send_key = true;                          // false: no Sec-WebSocket-Key field
  std::string version = "13";                    // Sec-WebSocket-Version; "": no field
  std::string upgrade = "websocket";   // the Upgrade field; "": neither Upgrade nor Connection
  std::string connection = "Upgrade";  // the Connection field, when `upgrade` is set
  std::string method = "GET";
  std::string http_version = "HTTP/1.1";
  http::fields extra;  // more fields (Host is added unless given)
  std::string after;   // bytes written in the same write, right after the request
};

class test_client {
 public:
  // A server around `h` on a fake source, in virtual time (an http::test_client of its own).
  explicit test_client(server::handler h, http::test_options o = {});
  // A client on `shared`'s scheduler, source and server (which must outlive it).
  explicit test_client(http::test_client& shared);
  ~test_client();
  test_client(const test_client&) = delete;
  test_client& operator=(const test_client&) = delete;

  // --- the opening handshake ---------------------------------------------------------------
  // Opens a new connection (the previous one, if any, is half-closed and dropped), asks for
  // `target` to be upgraded and reads the answer (stepping virtual time, up to max_wait).
  // True if the server switched to WebSocket: 101 with `Upgrade: websocket`, `Connection:
  // upgrade` and the right Sec-WebSocket-Accept. Whatever the answer, response() has it.
  bool connect(std::string_view target = "/", const handshake& h = {});
  // The request connect() would write for `target` and `h`.
  std::string request_bytes(std::string_view target, const handshake& h = {}) const;
  // The handshake's answer (status 0 if none came; 101 on success).
  const http::test_response& response() const noexcept { return response_; }
  // True after a successful connect().
  bool open() const noexcept { return open_; }
  // The subprotocol the server chose ("" if none) and whether it took permessage-deflate.
  std::string_view subprotocol() const noexcept {
    return response_.header("Sec-WebSocket-Protocol");
  }
  bool deflated() const noexcept { return deflate_; }
  // Sec-WebSocket-Accept for `key` (SHA-1 and base64, RFC 6455 4.2.2).
  static std::string accept_for(std::string_view key);

  // --- what the client sends ---------------------------------------------------------------
  // Writes one frame made by hand and runs the server until idle.
  void send_frame(opcode op, std::string_view payload, const frame_options& o = {});
  // The bytes of that frame, not sent (to cut, to join with others, to send behind a request).
  std::string frame_bytes(opcode op, std::string_view payload, const frame_options& o = {});
  void send_text(std::string_view text) { send_frame(opcode::text, text); }
  void send_binary(std::string_view bytes) { send_frame(opcode::binary, bytes); }
  void send_ping(std::string_view payload = {}) { send_frame(opcode::ping, payload); }
  void send_pong(std::string_view payload = {}) { send_frame(opcode::pong, payload); }
  // A close frame with `code` and `reason` (code 0: an empty close frame).
  void send_close(std::uint16_t code = close_code::normal, std::string_view reason = {});
  // A whole message as permessage-deflate sends it: compressed, RSV1 on the first frame.
  void send_compressed(kind type, std::string_view data);
  // `data` compressed with this connection's deflate stream, the 00 00 ff ff tail taken off.
  std::string deflate(std::string_view data);
  // Writes `bytes` as they are and runs the server until idle.
  void send_raw(std::string_view bytes);
  // Writes `bytes` cut at the offsets in `cuts` (ascending), running the server until idle
  // after each piece.
  void send_pieces(std::string_view bytes, std::span<const std::size_t> cuts);
  // Writes `bytes` one byte at a time, running the server until idle after each.
  void send_bytewise(std::string_view bytes);

  // --- what the client receives ------------------------------------------------------------
  // The server's next frame: runs the server, stepping virtual time from timer to timer for
  // at most `max_wait` (default: the options' max_wait), until a frame is whole. Nullopt if
  // none came in that time or the connection closed first. Control frames are returned too.
  std::optional<test_frame> next_frame();
  std::optional<test_frame> next_frame(clock::duration max_wait);
  // The server's next message: data frames until one with FIN, joined (and inflated).
  // Control frames met on the way are kept in controls() (pings answered if answer_pings);
  // a close frame ends it (nullopt; expect_close() then returns that frame).
  std::optional<test_message> read_message();
  std::optional<test_message> read_message(clock::duration max_wait);
  // Reads frames until a close frame (other frames are passed over and kept in skipped()).
  // With `answer`, sends a close frame back with the same code, as a client that did not
  // start the close does (unless it sent one already). code 1006 if none came.
  test_close expect_close(bool answer = false);
  test_close expect_close(bool answer, clock::duration max_wait);
  // Answers each ping with a pong of its payload as it arrives (off by default).
  void answer_pings(bool on) noexcept { answer_pings_ = on; }
  // Control frames read_message() passed over, and the frames expect_close() passed over.
  const std::vector<test_frame>& controls() const noexcept { return controls_; }
  const std::vector<test_frame>& skipped() const noexcept { return skipped_; }
  // Every byte the server sent after its handshake answer, as it came.
  const std::string& received() const noexcept { return received_; }
  // The server broke the protocol: one line per breach, in order.
  const std::vector<std::string>& violations() const noexcept { return violations_; }

  // --- the connection ----------------------------------------------------------------------
  // Runs the server until idle; true once it shut its sending side or closed the connection
  // (frames it sent before may still wait for next_frame()).
  bool closed();
  // Runs the server for up to `max_wait` of virtual time, until closed().
  bool wait_closed(clock::duration max_wait);
  // Lets `d` of virtual time pass, timer by timer; the client reads (and answers pings, if
  // asked) between them.
  void advance(clock::duration d);
  // The client disappears: the connection is reset (a RST), unread bytes are lost.
  void vanish();
  // The client stops reading: the server may have at most `window` bytes sent and unread,
  // then its writes wait. resume_reading() reads again, without a limit.
  void stop_reading(std::size_t window);
  void resume_reading();
  // Bytes the server sent that the client has not read (while stop_reading).
  std::size_t unread() const noexcept;
  // Half-closes: the server reads EOF after what was sent.
  void shutdown_write();

  http::test_client& http_client() noexcept { return *http_; }
  scheduler& sched() noexcept { return http_->sched(); }
  server& srv() noexcept { return http_->srv(); }
  std::optional<fake_client>& conn() noexcept { return conn_; }

 private:
  struct zlib_state;

  void pump();                         // runs until idle and decodes what came
  bool step(clock::time_point until);  // moves the clock to the next timer up to `until`
  void decode();
  void check_frame(const test_frame& f);
  void on_response(std::string_view key);
  std::optional<std::string> inflate(std::string_view data);
  void write(std::string_view bytes);

  std::unique_ptr<http::test_client> owned_;
  http::test_client* http_;
  clock::duration max_wait_;
  std::optional<fake_client> conn_;
  http::test_response response_;
  bool open_ = false;
  bool deflate_ = false;
  bool client_no_context_takeover_ = false;
  bool server_no_context_takeover_ = false;
  int client_window_bits_ = 15;
  std::unique_ptr<zlib_state> zlib_;
  bool reading_ = true;
  bool answer_pings_ = false;
  bool close_sent_ = false;
  bool close_seen_ = false;  // the server's close frame came
  bool in_message_ = false;  // a fragmented data message is under way (decode's view)
  std::uint32_t mask_seed_ = 0x2545f491;
  std::string pending_;   // bytes received, not decoded yet
  std::string received_;  // every byte after the handshake answer
  std::deque<test_frame> inbox_;
  std::vector<test_frame> controls_;
  std::vector<test_frame> skipped_;
  std::vector<std::string> violations_;
};

}  // namespace lancer::ws
