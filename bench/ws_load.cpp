// WebSocket echo load generator for bench/ws: one thread, one epoll set, no library but libc.
//
//   ws_load --port P [--path /ws] [--conns 64] [--depth 1] [--size 64] [--binary]
//           [--seconds 8] [--warmup 2] [--pid SERVER_PID]
//       N connections do the opening handshake (checking 101 and Sec-WebSocket-Accept), then
//       each keeps DEPTH masked messages of SIZE bytes in flight: every echo is parsed (frames
//       may be split across reads or arrive many to a read; fragmented messages are put back
//       together), checked against what was sent (opcode, length, every byte) and answered
//       by the next message. Echoes are counted over SECONDS after WARMUP. Prints one line:
//         messages=M seconds=S rate=R server_us=U server_cpu=C client_cpu=L
//       rate in messages/s; server_us is the server's CPU time (utime + stime of SERVER_PID,
//       all its threads, from /proc) per echoed message, server_cpu and client_cpu the share
//       of one core each used over the window (so a client at 100% is the bottleneck).
//   ws_load ... --messages M
//       instead of a timed run: M messages in all, spread over the connections, then exit
//       (bench/ws counts the server's allocations around two such runs).
//   ws_load --port P --hold N
//       open N connections, handshake, print "holding N", idle until stdin closes.
//
// Every run ends with a closing handshake on every connection (close frame 1000, the
// server's close frame awaited). Any wrong byte, unexpected frame, refused handshake or
// early close prints what was wrong and exits 1.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void die(const char* what, int conn = -1) {
  if (conn >= 0) {
    std::fprintf(stderr, "ws_load: connection %d: %s\n", conn, what);
  } else {
    std::fprintf(stderr, "ws_load: %s\n", what);
  }
  std::exit(1);
}

[[noreturn]] void die_errno(const char* what, int conn = -1) {
  std::string text = std::string(what) + ": " + std::strerror(errno);
  die(text.c_str(), conn);
}

double now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// --- SHA-1 and base64, for Sec-WebSocket-Accept ---------------------------------------------
std::string sha1(std::string_view in) {
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string msg(in);
  const std::uint64_t bits = static_cast<std::uint64_t>(in.size()) * 8;
  msg += '\x80';
  while (msg.size() % 64 != 56)
    msg += '\0';
  for (int i = 7; i >= 0; --i)
    msg += static_cast<char>((bits >> (i * 8)) & 0xff);
  auto rol = [](std::uint32_t v, int n) { return (v << n) | (v >> (32 - n)); };
  for (std::size_t off = 0; off < msg.size(); off += 64) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(msg.data() + off + 4 * i);
      w[i] = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
             (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    }
    for (int i = 16; i < 80; ++i)
      w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f = 0, k = 0;
      if (i < 20) {
        f = (b & c) | (~b & d), k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d, k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d, k = 0xCA62C1D6;
      }
      const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  std::string out;
  for (std::uint32_t v : h)
    for (int i = 3; i >= 0; --i)
      out += static_cast<char>((v >> (i * 8)) & 0xff);
  return out;
}

std::string base64(std::string_view in) {
  static constexpr char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += k[v & 63];
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += k[v >> 18], out += k[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += '=';
  }
  return out;
}

std::uint64_t g_rand = 0x9E3779B97F4A7C15ull;
std::uint32_t next_random() {  // xorshift64*: mask keys and handshake keys
  g_rand ^= g_rand >> 12, g_rand ^= g_rand << 25, g_rand ^= g_rand >> 27;
  return static_cast<std::uint32_t>((g_rand * 0x2545F4914F6CDD1Dull) >> 32);
}

// --- options -----------------------------------------------------------------------------------
struct options {
  int port = 0;
  std::string path = "/ws";
  int conns = 64;
  int depth = 1;
  std::size_t size = 64;
  bool binary = false;
  double seconds = 8;
  double warmup = 2;
  int pid = 0;
  long long messages = 0;  // > 0: a counted run
  int hold = 0;            // > 0: hold idle connections
};

// --- one connection ----------------------------------------------------------------------------
enum class phase { connecting, handshake, open, closing, closed };

struct conn {
  int fd = -1;
  int id = 0;
  phase state = phase::connecting;
  std::string accept;    // the Sec-WebSocket-Accept expected
  std::vector<char> in;  // bytes read and not yet parsed: [0, in_len)
  std::size_t in_len = 0;
  std::string out;  // bytes to write: [out_off, size)
  std::size_t out_off = 0;
  bool want_write = false;  // EPOLLOUT armed
  std::string message;      // a fragmented message being put together
  int message_opcode = 0;
  std::uint64_t sent = 0, received = 0;  // messages
  std::uint64_t quota = UINT64_MAX;      // messages this connection may send
};

struct load {
  options opt;
  int ep = -1;
  std::vector<std::unique_ptr<conn>> conns;
  std::string pattern;   // the payload's bytes other than its sequence number
  bool sending = false;  // new messages go out after each echo
  std::uint64_t echoed = 0;
  int open_count = 0, closed_count = 0;
  sockaddr_in addr{};

  // The payload of message `seq` of connection `id`: printable ASCII (valid UTF-8 for text
  // frames), the sequence number in hexadecimal, then the connection's id, then a pattern.
  std::string room;  // payload_of's buffer

  void payload(char* p, int id, std::uint64_t seq) const {
    std::memcpy(p, pattern.data(), opt.size);
    char head[32];
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; ++i)
      head[i] = hex[(seq >> (60 - 4 * i)) & 15];
    head[16] = ':';
    for (int i = 0; i < 6; ++i)
      head[17 + i] = hex[(id >> (20 - 4 * i)) & 15];
    std::memcpy(p, head, std::min<std::size_t>(opt.size, 23));
  }

  static void frame(std::string& out, int opcode, const char* data, std::size_t n) {
    char h[14];
    std::size_t hn = 0;
    h[hn++] = static_cast<char>(0x80 | opcode);
    if (n < 126) {
      h[hn++] = static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      h[hn++] = static_cast<char>(0x80 | 126);
      h[hn++] = static_cast<char>(n >> 8), h[hn++] = static_cast<char>(n & 0xff);
    } else {
      h[hn++] = static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i)
        h[hn++] = static_cast<char>((std::uint64_t{n} >> (8 * i)) & 0xff);
    }
    const std::uint32_t key = next_random();
    std::memcpy(h + hn, &key, 4);
    const auto* k = reinterpret_cast<const unsigned char*>(h + hn);
    hn += 4;
    const std::size_t at = out.size();
    out.append(h, hn);
    out.resize(at + hn + n);
    char* dst = out.data() + at + hn;
    for (std::size_t i = 0; i < n; ++i)
      dst[i] = static_cast<char>(data[i] ^ k[i & 3]);
  }

  // Message `seq` of connection `id`, in `room` (opt.size bytes, reused between calls).
  const char* payload_of(int id, std::uint64_t seq) {
    room.resize(opt.size);
    payload(room.data(), id, seq);
    return room.data();
  }

  void send_message(conn& c) {
    frame(c.out, opt.binary ? 2 : 1, payload_of(c.id, c.sent), opt.size);
    ++c.sent;
  }

  void check_echo(conn& c, int opcode, const char* data, std::size_t n) {
    if (c.state != phase::open) return;  // while closing, late echoes are not checked
    if (c.received >= c.sent) die("an echo of a message never sent", c.id);
    const int want = opt.binary ? 2 : 1;
    if (opcode != want) {
      std::fprintf(stderr, "ws_load: connection %d: message %llu came back as opcode %d, not %d\n",
                   c.id, static_cast<unsigned long long>(c.received), opcode, want);
      std::exit(1);
    }
    const char* p = payload_of(c.id, c.received);
    if (n != opt.size || std::memcmp(p, data, n) != 0) {
      std::fprintf(stderr,
                   "ws_load: connection %d: wrong echo of message %llu: %zu bytes, expected %zu\n"
                   "  sent: %.*s\n  got:  %.*s\n",
                   c.id, static_cast<unsigned long long>(c.received), n, opt.size,
                   static_cast<int>(std::min<std::size_t>(opt.size, 80)), p,
                   static_cast<int>(std::min<std::size_t>(n, 80)), data);
      std::exit(1);
    }
    ++c.received;
    ++echoed;
    if (sending && c.sent < c.quota) send_message(c);
  }

  // Parses every whole frame in c.in; leaves a partial one at the front.
  void parse_frames(conn& c) {
    std::size_t pos = 0;
    const auto* b = reinterpret_cast<const unsigned char*>(c.in.data());
    while (c.in_len - pos >= 2) {
      const unsigned b0 = b[pos], b1 = b[pos + 1];
      if (b1 & 0x80) die("the server masked a frame", c.id);
      if (b0 & 0x70) die("a frame with RSV bits set (no extension was negotiated)", c.id);
      std::size_t hn = 2;
      std::uint64_t n = b1 & 0x7f;
      if (n == 126) {
        if (c.in_len - pos < 4) break;
        n = (std::uint64_t{b[pos + 2]} << 8) | b[pos + 3];
        hn = 4;
      } else if (n == 127) {
        if (c.in_len - pos < 10) break;
        n = 0;
        for (int i = 0; i < 8; ++i)
          n = (n << 8) | b[pos + 2 + i];
        hn = 10;
      }
      if (n > (std::uint64_t{1} << 26)) die("a frame of more than 64 MiB", c.id);
      if (c.in_len - pos < hn + n) {
        if (c.in.size() < hn + n) c.in.resize(hn + n);  // room for the whole frame
        break;
      }
      const bool fin = b0 & 0x80;
      const int opcode = b0 & 0x0f;
      const char* data = c.in.data() + pos + hn;
      pos += hn + n;
      switch (opcode) {
        case 0:  // continuation
          if (c.message_opcode == 0) die("a continuation frame with no message begun", c.id);
          c.message.append(data, n);
          if (fin) {
            check_echo(c, c.message_opcode, c.message.data(), c.message.size());
            c.message.clear();
            c.message_opcode = 0;
          }
          break;
        case 1:
        case 2:
          if (c.message_opcode != 0) die("a new message inside a fragmented one", c.id);
          if (fin) {
            check_echo(c, opcode, data, n);
          } else {
            c.message.assign(data, n);
            c.message_opcode = opcode;
          }
          break;
        case 8:  // close
          if (c.state != phase::closing) die("the server closed the connection", c.id);
          c.state = phase::closed;
          return;
        case 9:  // ping: answer with a pong carrying its payload
          if (!fin) die("a fragmented ping", c.id);
          frame(c.out, 10, data, n);
          break;
        case 10:  // pong: nothing to do
          break;
        default:
          die("a frame with an unknown opcode", c.id);
      }
    }
    if (pos > 0) {
      std::memmove(c.in.data(), c.in.data() + pos, c.in_len - pos);
      c.in_len -= pos;
    }
  }

  void arm(conn& c, bool write) {
    epoll_event ev{};
    ev.events = EPOLLIN | (write ? EPOLLOUT : 0u);
    ev.data.ptr = &c;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev) != 0) die_errno("epoll_ctl", c.id);
    c.want_write = write;
  }

  void flush(conn& c) {
    while (c.out_off < c.out.size()) {
      const ssize_t n =
          ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        die_errno("send", c.id);
      }
      c.out_off += static_cast<std::size_t>(n);
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
      if (c.want_write) arm(c, false);
    } else if (!c.want_write) {
      arm(c, true);
    }
  }

  void start_connect(conn& c) {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) die_errno("socket (raise ulimit -n?)", c.id);
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS)
      die_errno("connect", c.id);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = &c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) die_errno("epoll_ctl", c.id);
    c.want_write = true;
    c.state = phase::connecting;
  }

  void send_handshake(conn& c) {
    char raw[16];
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t r = next_random();
      std::memcpy(raw + 4 * i, &r, 4);
    }
    const std::string key = base64(std::string_view(raw, 16));
    c.accept = base64(sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
    c.out += "GET " + opt.path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(opt.port) +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
             "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.state = phase::handshake;
    flush(c);
  }

  static bool header_is(std::string_view head, std::string_view name, std::string_view value) {
    // A case-insensitive search for "\r\nname:" and the value after optional spaces.
    for (std::size_t at = head.find("\r\n"); at != std::string_view::npos;
         at = head.find("\r\n", at + 2)) {
      const std::string_view line = head.substr(at + 2, head.find("\r\n", at + 2) - at - 2);
      if (line.size() <= name.size() || line[name.size()] != ':') continue;
      bool same = true;
      for (std::size_t i = 0; i < name.size() && same; ++i)
        same = (line[i] | 0x20) == (name[i] | 0x20);
      if (!same) continue;
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
      return v == value;
    }
    return false;
  }

  void read_handshake(conn& c) {
    const std::string_view got(c.in.data(), c.in_len);
    const std::size_t end = got.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (c.in_len > 16384) die("a handshake answer of more than 16 KiB", c.id);
      return;
    }
    const std::string_view head = got.substr(0, end + 2);
    if (head.substr(0, 13) != "HTTP/1.1 101 ") {
      std::fprintf(stderr, "ws_load: connection %d: handshake refused:\n%.*s\n", c.id,
                   static_cast<int>(head.size()), head.data());
      std::exit(1);
    }
    if (!header_is(head, "Sec-WebSocket-Accept", c.accept))
      die("a wrong or missing Sec-WebSocket-Accept", c.id);
    const std::size_t rest = c.in_len - (end + 4);
    std::memmove(c.in.data(), c.in.data() + end + 4, rest);
    c.in_len = rest;
    c.state = phase::open;
    ++open_count;
    if (rest > 0) parse_frames(c);
  }

  void on_event(conn& c, std::uint32_t events) {
    if (c.state == phase::connecting) {
      if (events & (EPOLLERR | EPOLLHUP)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        errno = err;
        die_errno("connect", c.id);
      }
      if (events & EPOLLOUT) send_handshake(c);
      return;
    }
    if (events & EPOLLOUT) flush(c);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      if (c.in.size() - c.in_len < 512) c.in.resize(c.in.size() * 2);
      const ssize_t n = ::recv(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        if (c.state == phase::closing && errno == ECONNRESET) {
          finish_close(c);
          return;
        }
        die_errno("recv", c.id);
      }
      if (n == 0) {
        if (c.state == phase::closing) {  // the server closed without its close frame
          finish_close(c);
          return;
        }
        die(c.state == phase::handshake ? "closed during the handshake"
                                        : "the server closed the connection",
            c.id);
      }
      c.in_len += static_cast<std::size_t>(n);
      if (c.state == phase::handshake) {
        read_handshake(c);
      } else {
        parse_frames(c);
      }
      if (c.state == phase::closed) {
        finish_close(c);
        return;
      }
      if (!c.out.empty()) flush(c);
    }
  }

  void finish_close(conn& c) {
    ::close(c.fd);  // also leaves the epoll set
    c.fd = -1;
    c.state = phase::closed;
    ++closed_count;
  }

  // One epoll_wait (at most `ms` milliseconds) and the events it returns.
  void poll(int ms) {
    epoll_event events[256];
    const int n = epoll_wait(ep, events, 256, ms);
    if (n < 0) {
      if (errno == EINTR) return;
      die_errno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {  // stdin (hold mode)
        char buf[256];
        if (::read(0, buf, sizeof buf) <= 0) stdin_closed = true;
        continue;
      }
      on_event(*static_cast<conn*>(events[i].data.ptr), events[i].events);
    }
  }
  bool stdin_closed = false;

  // Opens every connection, at most 128 handshakes at a time (a listen backlog never
  // overflows), and waits until all are open.
  void open_all(int n) {
    const double deadline = now() + 60;
    int started = 0;
    while (open_count < n) {
      while (started < n && started - open_count < 128) {
        auto c = std::make_unique<conn>();
        c->id = started++;
        c->in.resize(1024);
        start_connect(*c);
        conns.push_back(std::move(c));
      }
      poll(100);
      if (now() > deadline) die("the handshakes took more than 60 s");
    }
  }

  void close_all() {
    static constexpr char code[2] = {0x03, static_cast<char>(0xe8)};  // 1000, normal closure
    for (auto& c : conns) {
      if (c->state != phase::open) continue;
      frame(c->out, 8, code, 2);
      c->state = phase::closing;
      flush(*c);
    }
    const double deadline = now() + 10;
    while (closed_count < static_cast<int>(conns.size())) {
      poll(100);
      if (now() > deadline) die("the closing handshakes took more than 10 s");
    }
  }

  // Waits until every connection has its echoes (no message left in flight).
  // Waits until every connection has the echoes of all it sent; fails if `seconds` pass with
  // no echo at all while some are missing (the server stalled).
  void drain(double seconds, const char* when) {
    double last = now();
    std::uint64_t seen = echoed;
    for (;;) {
      bool idle = true;
      for (auto& c : conns)
        idle = idle && c->received == c->sent;
      if (idle) return;
      poll(100);
      if (echoed != seen) {
        seen = echoed;
        last = now();
      } else if (now() > last + seconds) {
        std::uint64_t missing = 0, stalled = 0;
        for (auto& c : conns) {
          missing += c->sent - c->received;
          stalled += c->received != c->sent;
        }
        std::fprintf(stderr,
                     "ws_load: %llu echoes missing %s, none for %.0f s, on %llu of %zu "
                     "connections (the server stalled)\n",
                     static_cast<unsigned long long>(missing), when, seconds,
                     static_cast<unsigned long long>(stalled), conns.size());
        std::exit(1);
      }
    }
  }
};

long cpu_ticks(int pid) {  // utime + stime of a process, every thread
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) die_errno(path.c_str());
  char buf[2048];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  if (p == nullptr) die("an unreadable /proc/PID/stat");
  long utime = 0, stime = 0;
  // After ")": state, then fields 4..; utime and stime are fields 14 and 15.
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) !=
      2)
    die("an unreadable /proc/PID/stat");
  return utime + stime;
}

double self_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

void usage() {
  std::fputs(
      "usage: ws_load --port P [--path /ws] [--conns N] [--depth K] [--size BYTES] [--binary]\n"
      "               [--seconds S] [--warmup S] [--pid SERVER_PID] [--messages M]\n"
      "       ws_load --port P [--path /ws] --hold N\n",
      stderr);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  load l;
  options& o = l.opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--port") {
      o.port = std::atoi(value());
    } else if (a == "--path") {
      o.path = value();
    } else if (a == "--conns") {
      o.conns = std::atoi(value());
    } else if (a == "--depth") {
      o.depth = std::atoi(value());
    } else if (a == "--size") {
      o.size = static_cast<std::size_t>(std::atol(value()));
    } else if (a == "--binary") {
      o.binary = true;
    } else if (a == "--seconds") {
      o.seconds = std::atof(value());
    } else if (a == "--warmup") {
      o.warmup = std::atof(value());
    } else if (a == "--pid") {
      o.pid = std::atoi(value());
    } else if (a == "--messages") {
      o.messages = std::atoll(value());
    } else if (a == "--hold") {
      o.hold = std::atoi(value());
    } else {
      usage();
    }
  }
  if (o.port <= 0 || o.conns <= 0 || o.depth <= 0 || o.size == 0 || o.seconds <= 0) usage();
  if (o.size > (std::size_t{1} << 24)) die("--size: at most 16 MiB");

  l.pattern.resize(o.size);
  for (std::size_t i = 0; i < o.size; ++i)
    l.pattern[i] = static_cast<char>('a' + i % 26);
  l.addr.sin_family = AF_INET;
  l.addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  l.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  l.ep = epoll_create1(EPOLL_CLOEXEC);
  if (l.ep < 0) die_errno("epoll_create1");

  if (o.hold > 0) {
    l.open_all(o.hold);
    for (auto& c : l.conns)
      c->in.shrink_to_fit();
    std::printf("holding %d\n", o.hold);
    std::fflush(stdout);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    if (epoll_ctl(l.ep, EPOLL_CTL_ADD, 0, &ev) != 0) die_errno("epoll_ctl (stdin)");
    while (!l.stdin_closed)
      l.poll(1000);  // a server's ping is answered meanwhile
    epoll_ctl(l.ep, EPOLL_CTL_DEL, 0, nullptr);
    l.close_all();
    return 0;
  }

  l.open_all(o.conns);
  for (auto& c : l.conns)
    c->in.resize(std::max<std::size_t>(16384, 4 * (o.size + 14)));

  if (o.messages > 0) {  // a counted run: each connection sends its share, then all close
    const auto n = static_cast<std::uint64_t>(o.conns);
    const auto m = static_cast<std::uint64_t>(o.messages);
    for (std::size_t i = 0; i < l.conns.size(); ++i)
      l.conns[i]->quota = m / n + (i < m % n);
    l.sending = true;
    for (auto& c : l.conns) {
      for (int k = 0; k < o.depth && c->sent < c->quota; ++k)
        l.send_message(*c);
      l.flush(*c);
    }
    l.drain(10, "in the counted run");
    l.close_all();
    std::printf("messages=%llu\n", static_cast<unsigned long long>(l.echoed));
    return 0;
  }

  l.sending = true;
  for (auto& c : l.conns) {
    for (int k = 0; k < o.depth; ++k)
      l.send_message(*c);
    l.flush(*c);
  }
  const double start = now();
  double t0 = 0, c0 = 0;
  long s0 = 0;
  std::uint64_t e0 = 0;
  bool measuring = false;
  for (;;) {
    l.poll(5);
    const double t = now();
    if (!measuring && t >= start + o.warmup) {
      measuring = true;
      t0 = t, e0 = l.echoed, c0 = self_cpu();
      if (o.pid > 0) s0 = cpu_ticks(o.pid);
    } else if (measuring && t >= t0 + o.seconds) {
      const double t1 = now(), c1 = self_cpu();
      const std::uint64_t e1 = l.echoed;
      const long s1 = o.pid > 0 ? cpu_ticks(o.pid) : 0;
      const double span = t1 - t0;
      const auto count = static_cast<double>(e1 - e0);
      if (count <= 0) die("no message was echoed in the measured window");
      const double server_s =
          static_cast<double>(s1 - s0) / static_cast<double>(sysconf(_SC_CLK_TCK));
      std::printf(
          "messages=%.0f seconds=%.3f rate=%.0f server_us=%.3f server_cpu=%.0f client_cpu=%.0f\n",
          count, span, count / span, o.pid > 0 ? server_s * 1e6 / count : 0.0,
          o.pid > 0 ? 100 * server_s / span : 0.0, 100 * (c1 - c0) / span);
      std::fflush(stdout);
      // The figures stand; a server that then keeps echoes back still fails the run.
      l.sending = false;
      l.drain(10, "after the run");
      l.close_all();
      return 0;
    }
  }
}
