#include "lancer/ws/test_client.hpp"

#include <fmt/core.h>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/zlib/deflate_stream.hpp>
#include <boost/beast/zlib/error.hpp>
#include <boost/beast/zlib/inflate_stream.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <stdexcept>
#include <utility>

namespace lancer::ws {

namespace beast = boost::beast;
namespace zlib = boost::beast::zlib;

std::uint16_t test_frame::close_code() const noexcept {
  if (payload.size() < 2) return close_code::no_status;
  return static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                    static_cast<unsigned char>(payload[1]));
}

std::string_view test_frame::close_reason() const noexcept {
  if (payload.size() <= 2) return {};
  return std::string_view(payload).substr(2);
}

struct test_client::zlib_state {
  zlib::deflate_stream out;  // what the client compresses
  zlib::inflate_stream in;   // what the server compressed
};

namespace {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. Written
// here rather than taken from Beast, which the server uses: the check stays independent.
bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned lo = 0x80;
    unsigned hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (n >= s.size() - i) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      const unsigned min = k == 1 ? lo : 0x80;
      const unsigned max = k == 1 ? hi : 0xbf;
      if (d < min || d > max) return false;
    }
    i += n + 1;
  }
  return true;
}

// A close code a peer may send (RFC 6455 7.4, and the IANA registry's 1012-1014).
bool valid_close_code(std::uint16_t c) noexcept {
  if (c >= 3000 && c <= 4999) return true;
  if (c < 1000 || c > 1014) return false;
  return c != 1004 && c != 1005 && c != 1006;
}

bool is_reserved(std::uint8_t op) noexcept {
  return (op >= 0x3 && op <= 0x7) || op >= 0xb;
}

const char* op_name(opcode op) noexcept {
  switch (op) {
    case opcode::continuation:
      return "continuation";
    case opcode::text:
      return "text";
    case opcode::binary:
      return "binary";
    case opcode::close:
      return "close";
    case opcode::ping:
      return "ping";
    case opcode::pong:
      return "pong";
  }
  return "reserved";
}

// True if the comma-separated `list` has `token` (case-insensitively).
bool has_token(std::string_view list, std::string_view token) {
  bool found = false;
  http::for_each_list_item(list, [&](std::string_view item) {
    found = found || http::iequals(item, token);
    return !found;
  });
  return found;
}

}  // namespace

// --- construction ---------------------------------------------------------------------------

test_client::test_client(server::handler h, http::test_options o) : max_wait_(o.max_wait) {
  owned_ = std::make_unique<http::test_client>(std::move(h), std::move(o));
  http_ = owned_.get();
}

test_client::test_client(http::test_client& shared)
    : http_(&shared), max_wait_(http::test_options{}.max_wait) {}

test_client::~test_client() {
  conn_.reset();
  owned_.reset();
}

// --- the handshake --------------------------------------------------------------------------

std::string test_client::accept_for(std::string_view key) {
  beast::websocket::detail::sec_ws_accept_type out;
  beast::websocket::detail::make_sec_ws_accept(out, key);
  return std::string(out.data(), out.size());
}

std::string test_client::request_bytes(std::string_view target, const handshake& h) const {
  std::string out = fmt::format("{} {} {}\r\n", h.method, target, h.http_version);
  if (h.extra.get("Host").empty()) out += "Host: localhost\r\n";
  if (!h.upgrade.empty()) {
    out += fmt::format("Upgrade: {}\r\n", h.upgrade);
    out += fmt::format("Connection: {}\r\n", h.connection);
  }
  if (h.send_key) out += fmt::format("Sec-WebSocket-Key: {}\r\n", h.key);
  if (!h.version.empty()) out += fmt::format("Sec-WebSocket-Version: {}\r\n", h.version);
  if (!h.protocols.empty()) {
    out += "Sec-WebSocket-Protocol: ";
    for (std::size_t i = 0; i < h.protocols.size(); ++i) {
      if (i > 0) out += ", ";
      out += h.protocols[i];
    }
    out += "\r\n";
  }
  if (h.origin) out += fmt::format("Origin: {}\r\n", *h.origin);
  std::string ext;
  if (h.deflate) ext = "permessage-deflate; client_max_window_bits";
  if (!h.extensions.empty()) ext += (ext.empty() ? "" : ", ") + h.extensions;
  if (!ext.empty()) out += fmt::format("Sec-WebSocket-Extensions: {}\r\n", ext);
  out += h.extra.wire();
  out += "\r\n";
  return out;
}

bool test_client::connect(std::string_view target, const handshake& h) {
  if (conn_) conn_->shutdown_write();
  conn_.reset();
  response_ = {};
  open_ = deflate_ = false;
  client_no_context_takeover_ = server_no_context_takeover_ = false;
  client_window_bits_ = 15;
  zlib_.reset();
  reading_ = true;
  close_sent_ = close_seen_ = in_message_ = false;
  pending_.clear();
  received_.clear();
  inbox_.clear();
  controls_.clear();
  skipped_.clear();

  conn_.emplace(http_->source().connect());
  conn_->write(request_bytes(target, h) + h.after);
  const clock::time_point until = sched().now() + max_wait_;
  for (;;) {
    pump();
    const bool eof = conn_->peer_done();
    std::size_t used = 0;
    if (std::optional<http::test_response> r =
            http::detail::parse_response(pending_, false, eof, used)) {
      pending_.erase(0, used);
      if (r->status >= 100 && r->status < 200 && r->status != 101) continue;  // interim
      response_ = std::move(*r);
      break;
    }
    if (eof || !step(until)) {
      response_.raw = pending_;
      response_.closed = eof;
      pending_.clear();
      return false;
    }
  }
  pump();
  response_.closed = conn_->peer_done();
  if (response_.status != 101) return false;

  bool ok = true;
  const auto breach = [&](std::string what) {
    violations_.push_back("handshake: " + std::move(what));
    ok = false;
  };
  if (!http::iequals(response_.header("Upgrade"), "websocket")) {
    breach(fmt::format("101 with Upgrade: '{}'", response_.header("Upgrade")));
  }
  if (!has_token(response_.header("Connection"), "upgrade")) {
    breach(fmt::format("101 with Connection: '{}'", response_.header("Connection")));
  }
  const std::string want = accept_for(h.key);
  if (response_.header("Sec-WebSocket-Accept") != want) {
    breach(fmt::format("Sec-WebSocket-Accept '{}', expected '{}'",
                       response_.header("Sec-WebSocket-Accept"), want));
  }
  if (response_.count("Sec-WebSocket-Protocol") > 1) breach("two Sec-WebSocket-Protocol fields");
  const std::string_view chosen = response_.header("Sec-WebSocket-Protocol");
  if (!chosen.empty() &&
      std::find(h.protocols.begin(), h.protocols.end(), chosen) == h.protocols.end()) {
    breach(fmt::format("subprotocol '{}' was not offered", chosen));
  }
  // permessage-deflate's answer (RFC 7692 7.1): its parameters.
  for (const auto& [name, value] : response_.fields) {
    if (!http::iequals(name, "Sec-WebSocket-Extensions")) continue;
    http::for_each_list_item(value, [&](std::string_view item) {
      if (item.empty()) return true;
      std::string_view rest = item;
      const std::size_t semi = rest.find(';');
      const std::string_view ext = http::trim_ows(rest.substr(0, semi));
      if (!http::iequals(ext, "permessage-deflate")) {
        breach(fmt::format("extension '{}' was not offered", ext));
        return true;
      }
      if (!h.deflate) breach("permessage-deflate was not offered");
      if (deflate_) breach("permessage-deflate twice");
      deflate_ = true;
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      while (!rest.empty()) {
        const std::size_t next = rest.find(';');
        const std::string_view param = http::trim_ows(rest.substr(0, next));
        const std::size_t eq = param.find('=');
        const std::string_view pname = http::trim_ows(param.substr(0, eq));
        std::string_view pvalue = eq == std::string_view::npos
                                      ? std::string_view{}
                                      : http::trim_ows(param.substr(eq + 1));
        if (pvalue.size() >= 2 && pvalue.front() == '"' && pvalue.back() == '"') {
          pvalue = pvalue.substr(1, pvalue.size() - 2);
        }
        if (http::iequals(pname, "client_no_context_takeover")) {
          client_no_context_takeover_ = true;
        } else if (http::iequals(pname, "server_no_context_takeover")) {
          server_no_context_takeover_ = true;
        } else if (http::iequals(pname, "client_max_window_bits")) {
          int bits = 0;
          const auto [p, e] = std::from_chars(pvalue.data(), pvalue.data() + pvalue.size(), bits);
          if (e != std::errc{} || p != pvalue.data() + pvalue.size() || bits < 8 || bits > 15) {
            breach(fmt::format("client_max_window_bits '{}'", pvalue));
          } else {
            client_window_bits_ = std::max(bits, 9);  // zlib's deflate takes 9 for 8
          }
        } else if (http::iequals(pname, "server_max_window_bits")) {
          int bits = 0;
          const auto [p, e] = std::from_chars(pvalue.data(), pvalue.data() + pvalue.size(), bits);
          if (e != std::errc{} || p != pvalue.data() + pvalue.size() || bits < 8 || bits > 15) {
            breach(fmt::format("server_max_window_bits '{}'", pvalue));
          }
        } else {
          breach(fmt::format("permessage-deflate parameter '{}'", pname));
        }
        if (next == std::string_view::npos) break;
        rest.remove_prefix(next + 1);
      }
      return true;
    });
  }
  if (!ok) return false;
  if (deflate_) {
    zlib_ = std::make_unique<zlib_state>();
    zlib_->out.reset(6, client_window_bits_, 8, zlib::Strategy::normal);
    zlib_->in.reset(15);
  }
  open_ = true;
  received_ = pending_;
  decode();
  pump();
  return true;
}

// --- sending --------------------------------------------------------------------------------

std::string test_client::frame_bytes(opcode op, std::string_view payload, const frame_options& o) {
  std::string out;
  out.reserve(payload.size() + 14);
  out += static_cast<char>((o.fin ? 0x80 : 0) | (o.rsv1 ? 0x40 : 0) | (o.rsv2 ? 0x20 : 0) |
                           (o.rsv3 ? 0x10 : 0) | (static_cast<std::uint8_t>(op) & 0x0f));
  const char mask_bit = o.masked ? static_cast<char>(0x80) : 0;
  const std::uint64_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(mask_bit | static_cast<char>(n));
  } else if (n <= 0xffff) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out += static_cast<char>((n >> shift) & 0xff);
  }
  if (!o.masked) {
    out += payload;
    return out;
  }
  std::array<std::uint8_t, 4> key{};
  if (o.mask) {
    key = *o.mask;
  } else {
    // xorshift32: a fixed sequence, so that every run sends the same bytes.
    mask_seed_ ^= mask_seed_ << 13;
    mask_seed_ ^= mask_seed_ >> 17;
    mask_seed_ ^= mask_seed_ << 5;
    for (int i = 0; i < 4; ++i)
      key[i] = static_cast<std::uint8_t>(mask_seed_ >> (8 * i));
  }
  for (const std::uint8_t k : key)
    out += static_cast<char>(k);
  for (std::size_t i = 0; i < payload.size(); ++i)
    out += static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ key[i % 4]);
  return out;
}

void test_client::send_frame(opcode op, std::string_view payload, const frame_options& o) {
  const std::string bytes = frame_bytes(op, payload, o);
  if (op == opcode::close) close_sent_ = true;
  write(bytes);
}

void test_client::send_close(std::uint16_t code, std::string_view reason) {
  std::string payload;
  if (code != 0) {
    payload += static_cast<char>(code >> 8);
    payload += static_cast<char>(code & 0xff);
    payload += reason;
  }
  send_frame(opcode::close, payload);
}

std::string test_client::deflate(std::string_view data) {
  if (!zlib_) {
    zlib_ = std::make_unique<zlib_state>();
    zlib_->out.reset(6, client_window_bits_, 8, zlib::Strategy::normal);
    zlib_->in.reset(15);
  }
  std::string out(zlib_->out.upper_bound(data.size()) + 64, '\0');
  zlib::z_params zs;
  zs.next_in = data.data();
  zs.avail_in = data.size();
  zs.next_out = out.data();
  zs.avail_out = out.size();
  for (;;) {
    beast::error_code ec;
    zlib_->out.write(zs, zlib::Flush::sync, ec);
    if (ec == zlib::error::need_buffers) ec = {};
    if (ec) throw std::runtime_error("ws::test_client: deflate: " + ec.message());
    if (zs.avail_out > 0 && zs.avail_in == 0) break;
    const std::size_t used = out.size() - zs.avail_out;
    out.resize(out.size() * 2);
    zs.next_out = out.data() + used;
    zs.avail_out = out.size() - used;
  }
  out.resize(out.size() - zs.avail_out);
  if (out.size() >= 4 && out.compare(out.size() - 4, 4, std::string_view("\0\0\xff\xff", 4)) == 0) {
    out.resize(out.size() - 4);
  }
  if (client_no_context_takeover_) zlib_->out.reset();
  return out;
}

void test_client::send_compressed(kind type, std::string_view data) {
  const std::string z = deflate(data);
  frame_options o;
  o.rsv1 = true;
  send_frame(type == kind::text ? opcode::text : opcode::binary, z, o);
}

void test_client::send_raw(std::string_view bytes) {
  write(bytes);
}

void test_client::send_pieces(std::string_view bytes, std::span<const std::size_t> cuts) {
  std::size_t from = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t to = i < cuts.size() ? std::min(cuts[i], bytes.size()) : bytes.size();
    if (to > from) write(bytes.substr(from, to - from));
    from = std::max(from, to);
  }
}

void test_client::send_bytewise(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size(); ++i)
    write(bytes.substr(i, 1));
}

void test_client::write(std::string_view bytes) {
  if (!conn_) throw std::logic_error("ws::test_client: not connected");
  conn_->write(bytes);
  pump();
}

// --- receiving ------------------------------------------------------------------------------

void test_client::pump() {
  for (;;) {
    sched().run_until_idle();
    if (!conn_ || !reading_) return;
    const std::string got = conn_->read();
    if (got.empty()) return;
    pending_ += got;
    if (open_) {
      received_ += got;
      decode();
    }
  }
}

bool test_client::step(clock::time_point until) {
  const std::optional<clock::time_point> next = sched().next_timer();
  if (!next || *next > until) return false;
  sched().clock().advance_to(*next);
  return true;
}

void test_client::decode() {
  std::size_t at = 0;
  for (;;) {
    const std::string_view in = std::string_view(pending_).substr(at);
    if (in.size() < 2) break;
    const auto b0 = static_cast<std::uint8_t>(in[0]);
    const auto b1 = static_cast<std::uint8_t>(in[1]);
    std::size_t head = 2;
    std::uint64_t len = b1 & 0x7f;
    bool minimal = true;
    if (len == 126) {
      if (in.size() < 4) break;
      len =
          (std::uint64_t{static_cast<std::uint8_t>(in[2])} << 8) | static_cast<std::uint8_t>(in[3]);
      minimal = len >= 126;
      head = 4;
    } else if (len == 127) {
      if (in.size() < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i)
        len = (len << 8) | static_cast<std::uint8_t>(in[2 + i]);
      minimal = len > 0xffff;
      head = 10;
      if (len > (std::uint64_t{1} << 40)) {
        violations_.push_back(fmt::format("a frame of {} bytes: the rest is dropped", len));
        pending_.clear();
        return;
      }
    }
    const bool masked = (b1 & 0x80) != 0;
    if (masked) head += 4;
    if (in.size() < head || in.size() - head < len) break;
    test_frame f;
    f.fin = (b0 & 0x80) != 0;
    f.rsv1 = (b0 & 0x40) != 0;
    f.rsv2 = (b0 & 0x20) != 0;
    f.rsv3 = (b0 & 0x10) != 0;
    f.op = static_cast<opcode>(b0 & 0x0f);
    f.masked = masked;
    f.payload = std::string(in.substr(head, len));
    if (masked) {
      for (std::size_t i = 0; i < f.payload.size(); ++i)
        f.payload[i] = static_cast<char>(f.payload[i] ^ in[head - 4 + i % 4]);
    }
    f.raw = std::string(in.substr(0, head + len));
    at += head + len;
    if (!minimal) {
      violations_.push_back(
          fmt::format("a {} frame's length {} is not minimally encoded", op_name(f.op), len));
    }
    check_frame(f);
    if (answer_pings_ && f.op == opcode::ping && !close_sent_ && conn_) {
      conn_->write(frame_bytes(opcode::pong, f.payload));
    }
    inbox_.push_back(std::move(f));
  }
  pending_.erase(0, at);
}

void test_client::check_frame(const test_frame& f) {
  const auto op = static_cast<std::uint8_t>(f.op);
  const char* name = op_name(f.op);
  const auto breach = [&](std::string_view what) {
    violations_.push_back(fmt::format("{} frame (opcode {}): {}", name, op, what));
  };
  if (close_seen_) breach("sent after the close frame");
  if (f.masked) breach("masked (a server must not mask)");
  if (f.rsv2 || f.rsv3) breach("RSV2 or RSV3 set");
  if (f.rsv1) {
    if (!deflate_) breach("RSV1 set, permessage-deflate not negotiated");
    if (f.is_control() || f.op == opcode::continuation) breach("RSV1 set on this opcode");
  }
  if (is_reserved(op)) {
    breach("a reserved opcode");
    return;
  }
  if (f.is_control()) {
    if (!f.fin) breach("a control frame fragmented");
    if (f.payload.size() > 125) breach("a control frame over 125 bytes");
  } else if (f.op == opcode::continuation) {
    if (!in_message_) breach("a continuation with no message under way");
    in_message_ = !f.fin;
  } else {
    if (in_message_) breach("a new message inside a fragmented one");
    in_message_ = !f.fin;
  }
  if (f.op == opcode::close) {
    close_seen_ = true;
    if (f.payload.size() == 1) breach("a close payload of 1 byte");
    if (f.payload.size() >= 2 && !valid_close_code(f.close_code())) {
      breach(fmt::format("close code {} may not be sent", f.close_code()));
    }
    if (!valid_utf8(f.close_reason())) breach("a close reason that is not UTF-8");
  }
}

std::optional<test_frame> test_client::next_frame() {
  return next_frame(max_wait_);
}

std::optional<test_frame> test_client::next_frame(clock::duration max_wait) {
  const clock::time_point until = sched().now() + max_wait;
  for (;;) {
    pump();
    if (!inbox_.empty()) {
      test_frame f = std::move(inbox_.front());
      inbox_.pop_front();
      return f;
    }
    if (!conn_ || !reading_ || conn_->peer_done()) return std::nullopt;
    if (!step(until)) return std::nullopt;
  }
}

std::optional<std::string> test_client::inflate(std::string_view data) {
  if (!zlib_) return std::nullopt;
  std::string in(data);
  in.append("\x00\x00\xff\xff", 4);
  std::string out(std::max<std::size_t>(256, in.size() * 4), '\0');
  zlib::z_params zs;
  zs.next_in = in.data();
  zs.avail_in = in.size();
  zs.next_out = out.data();
  zs.avail_out = out.size();
  constexpr std::size_t k_max = std::size_t{256} << 20;  // no bomb takes the test down
  for (;;) {
    beast::error_code ec;
    zlib_->in.write(zs, zlib::Flush::sync, ec);
    if (ec == zlib::error::need_buffers || ec == zlib::error::end_of_stream) ec = {};
    if (ec) return std::nullopt;
    if (zs.avail_out > 0 && zs.avail_in == 0) break;
    if (zs.avail_out > 0) return std::nullopt;  // no progress: the input is bad
    if (out.size() >= k_max) return std::nullopt;
    const std::size_t used = out.size() - zs.avail_out;
    out.resize(out.size() * 2);
    zs.next_out = out.data() + used;
    zs.avail_out = out.size() - used;
  }
  out.resize(out.size() - zs.avail_out);
  if (server_no_context_takeover_) zlib_->in.reset(15);
  return out;
}

std::optional<test_message> test_client::read_message() {
  return read_message(max_wait_);
}

std::optional<test_message> test_client::read_message(clock::duration max_wait) {
  const clock::time_point until = sched().now() + max_wait;
  test_message m;
  for (;;) {
    const clock::time_point now = sched().now();
    std::optional<test_frame> f = next_frame(until > now ? until - now : clock::duration{});
    if (!f) return std::nullopt;
    if (f->op == opcode::close) {
      inbox_.push_front(std::move(*f));  // for expect_close()
      return std::nullopt;
    }
    if (f->is_control()) {
      controls_.push_back(std::move(*f));
      continue;
    }
    if (m.frames == 0) {
      m.type = f->op == opcode::binary ? kind::binary : kind::text;
      m.compressed = f->rsv1;
    }
    ++m.frames;
    m.data += f->payload;
    if (f->fin) break;
  }
  if (m.compressed && deflate_) {  // without the extension, RSV1 is a breach already
    std::optional<std::string> plain = inflate(m.data);
    if (plain) {
      m.data = std::move(*plain);
    } else {
      violations_.push_back("a compressed message that does not inflate");
    }
  }
  if (m.type == kind::text && !valid_utf8(m.data)) {
    violations_.push_back("a text message that is not UTF-8");
  }
  return m;
}

test_close test_client::expect_close(bool answer) {
  return expect_close(answer, max_wait_);
}

test_close test_client::expect_close(bool answer, clock::duration max_wait) {
  const clock::time_point until = sched().now() + max_wait;
  for (;;) {
    const clock::time_point now = sched().now();
    std::optional<test_frame> f = next_frame(until > now ? until - now : clock::duration{});
    if (!f) return test_close{false, close_code::abnormal, {}};
    if (f->op != opcode::close) {
      skipped_.push_back(std::move(*f));
      continue;
    }
    test_close r{true, f->close_code(), std::string(f->close_reason())};
    if (answer && !close_sent_ && conn_ && !conn_->peer_closed()) {
      send_close(r.code == close_code::no_status ? 0 : r.code);
    }
    return r;
  }
}

// --- the connection -------------------------------------------------------------------------

bool test_client::closed() {
  pump();
  return conn_ && conn_->peer_done();
}

bool test_client::wait_closed(clock::duration max_wait) {
  const clock::time_point until = sched().now() + max_wait;
  for (;;) {
    if (closed()) return true;
    if (!step(until)) return false;
  }
}

void test_client::advance(clock::duration d) {
  const clock::time_point until = sched().now() + d;
  for (;;) {
    pump();
    if (!step(until)) break;
  }
  sched().clock().advance_to(until);
  pump();
}

void test_client::vanish() {
  if (!conn_) return;
  conn_->reset();
  reading_ = false;
  pump();
}

void test_client::stop_reading(std::size_t window) {
  reading_ = false;
  if (conn_) conn_->set_window(window);
  pump();
}

void test_client::resume_reading() {
  reading_ = true;
  if (conn_) conn_->set_window(std::numeric_limits<std::size_t>::max());
  pump();
}

std::size_t test_client::unread() const noexcept {
  return conn_ ? conn_->available() : 0;
}

void test_client::shutdown_write() {
  if (conn_) conn_->shutdown_write();
  pump();
}

}  // namespace lancer::ws
