#include "lancer/http/access_log.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "lancer/log.hpp"
#include "lancer/sched/scheduler.hpp"

namespace lancer::http {

namespace {

// --- formats --------------------------------------------------------------------------------

// The request time in whole milliseconds: from the request's start to now, never negative.
std::uint64_t request_millis(const connection& c, const request& req) noexcept {
  const clock::duration d = c.now() - req.started_at();
  if (d <= clock::duration::zero()) return 0;
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

void append_seconds(std::string& out, std::uint64_t millis) {
  const fmt::format_int whole(millis / 1000);
  out.append(whole.data(), whole.size());
  const auto frac = static_cast<unsigned>(millis % 1000);
  const char digits[4] = {'.', static_cast<char>('0' + frac / 100),
                          static_cast<char>('0' + frac / 10 % 10),
                          static_cast<char>('0' + frac % 10)};
  out.append(digits, 4);
}

void append_number(std::string& out, std::uint64_t v) {
  const fmt::format_int text(v);
  out.append(text.data(), text.size());
}

// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 if it does not start with one.
std::size_t utf8_sequence(std::string_view s) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    if (lead == 0xe0) lo = 0xa0;  // overlong
    if (lead == 0xed) hi = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    if (lead == 0xf0) lo = 0x90;  // overlong
    if (lead == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xbf) return 0;
  }
  return n;
}

// Bytes a line cannot take as they are: control characters, '"', the backslash, DEL and
// everything from 0x80 up (both formats look at each of these).
constexpr std::array<bool, 256> k_special = [] {
  std::array<bool, 256> t{};
  for (int b = 0; b < 256; ++b)
    t[static_cast<std::size_t>(b)] = b < 0x20 || b == '"' || b == '\\' || b >= 0x7f;
  return t;
}();

// How many bytes from `i` on need no escape.
std::size_t plain_run(std::string_view v, std::size_t i) noexcept {
  std::size_t j = i;
  while (j < v.size() && !k_special[static_cast<unsigned char>(v[j])])
    ++j;
  return j - i;
}

// Appends `v` as a JSON string, quotes included.
void append_json_string(std::string& out, std::string_view v) {
  static constexpr char k_hex[] = "0123456789abcdef";
  out += '"';
  std::size_t i = 0;
  while (i < v.size()) {
    const std::size_t run = plain_run(v, i);  // plain ASCII is copied at once
    out.append(v.data() + i, run);
    i += run;
    if (i == v.size()) break;
    const auto b = static_cast<unsigned char>(v[i]);
    if (b >= 0x80) {
      const std::size_t n = utf8_sequence(v.substr(i));
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(v.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (b) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default: {  // other control characters, and DEL
        const char esc[6] = {'\\', 'u', '0', '0', k_hex[b >> 4], k_hex[b & 0xf]};
        out.append(esc, 6);
      }
    }
    ++i;
  }
  out += '"';
}

// The address without its port, as nginx writes $remote_addr; with trusted proxies, the
// client's address they forwarded.
std::string_view remote_addr(const connection& c, const request& req,
                             const trusted_proxies* trusted) noexcept {
  if (trusted != nullptr) return client_address(c, req, *trusted);
  return peer_ip(c.peer_address());
}

// The wall-clock second for a line. On a steady clock the system clock is read only when the
// scheduler's time (read once per turn) says the second may have changed: not once per line.
// A manual clock gives its own wall time, the same in every run.
std::time_t wall_second(const connection& c) {
  const scheduler* sched = scheduler::current();
  if (sched == nullptr) return std::time(nullptr);
  if (sched->clock().is_manual()) {
    return std::chrono::system_clock::to_time_t(sched->clock().wall_now());
  }
  thread_local clock::time_point next_check{};
  thread_local std::time_t second = 0;
  const clock::time_point now = c.now();
  if (now >= next_check) {
    const auto wall = std::chrono::system_clock::now();
    second = std::chrono::system_clock::to_time_t(wall);
    const auto into = wall - std::chrono::system_clock::from_time_t(second);  // [0, 1 s)
    next_check = now + std::chrono::duration_cast<clock::duration>(std::chrono::seconds(1) - into);
  }
  return second;
}

// The local time of `second` as the formats write it, formatted once a second per OS thread:
// [0] nginx's "22/Nov/2026:01:40:00 +0100", [1] ISO 8601's "2026-11-22T01:40:00+01:00".
struct shown_time {
  std::time_t second = -1;
  char text[2][40] = {};
  std::size_t len[2] = {};
};
const shown_time& local_time(std::time_t second) {
  thread_local shown_time t;
  if (second != t.second) {
    std::tm tm{};
    localtime_r(&second, &tm);
    t.len[0] = std::strftime(t.text[0], sizeof t.text[0], "%d/%b/%Y:%H:%M:%S %z", &tm);
    char* iso = t.text[1];
    std::size_t len = std::strftime(iso, sizeof t.text[1], "%Y-%m-%dT%H:%M:%S%z", &tm);
    if (len >= 5) {  // +hhmm -> +hh:mm
      iso[len + 1] = '\0';
      iso[len] = iso[len - 1];
      iso[len - 1] = iso[len - 2];
      iso[len - 2] = ':';
      ++len;
    }
    t.len[1] = len;
    t.second = second;
  }
  return t;
}

// Appends `v` with '"', a backslash, control characters and bytes from 0x7f up written as
// \xHH: client text cannot break the line's quoting.
void append_clean(std::string& out, std::string_view v) {
  static constexpr char k_hex[] = "0123456789ABCDEF";
  std::size_t i = 0;
  while (i < v.size()) {
    const std::size_t j = i + plain_run(v, i);
    out.append(v.data() + i, j - i);
    if (j == v.size()) break;
    const auto b = static_cast<unsigned char>(v[j]);
    const char esc[4] = {'\\', 'x', k_hex[b >> 4], k_hex[b & 0xf]};
    out.append(esc, 4);
    i = j + 1;
  }
}

// The combined line, with `addr` as the remote address.
void append_combined_line(std::string& out, const connection& c, const request& req,
                          std::string_view addr) {
  const shown_time& t = local_time(wall_second(c));
  out += addr;
  out += " - - [";
  out.append(t.text[0], t.len[0]);
  out += "] \"";
  if (req.method().empty()) {  // refused before its request line was parsed
    out += '-';
  } else {
    append_clean(out, req.method());
    out += ' ';
    append_clean(out, req.target());
    out += " HTTP/";
    out += static_cast<char>('0' + req.version() / 10);
    out += '.';
    out += static_cast<char>('0' + req.version() % 10);
  }
  out += "\" ";
  append_number(out, req.response_status());
  out += ' ';
  append_number(out, req.bytes_sent());
  out += " \"";
  const std::string_view referer = req.headers().get("Referer");
  append_clean(out, referer.empty() ? "-" : referer);
  out += "\" \"";
  const std::string_view agent = req.headers().get("User-Agent");
  append_clean(out, agent.empty() ? "-" : agent);
  out += '"';
}

}  // namespace

void append_access_line(std::string& out, const connection& c, const request& req) {
  append_combined_line(out, c, req, peer_ip(c.peer_address()));
}

std::string access_line(const connection& c, const request& req) {
  std::string out;
  append_access_line(out, c, req);
  return out;
}

namespace {

// nginx's combined format (append_access_line), then the request time.
void append_combined(std::string& out, const connection& c, const request& req,
                     const trusted_proxies* trusted) {
  append_combined_line(out, c, req, remote_addr(c, req, trusted));
  out += ' ';
  append_seconds(out, request_millis(c, req));
}

void append_json(std::string& out, const connection& c, const request& req,
                 const trusted_proxies* trusted) {
  const shown_time& t = local_time(wall_second(c));
  out += "{\"time\":\"";
  out.append(t.text[1], t.len[1]);
  out += "\",\"remote_addr\":";
  append_json_string(out, remote_addr(c, req, trusted));
  out += ",\"method\":";
  append_json_string(out, req.method());
  out += ",\"target\":";
  append_json_string(out, req.target());
  out += ",\"protocol\":\"HTTP/";
  out += static_cast<char>('0' + req.version() / 10);
  out += '.';
  out += static_cast<char>('0' + req.version() % 10);
  out += "\",\"status\":";
  append_number(out, req.response_status());
  out += ",\"bytes_sent\":";
  append_number(out, req.bytes_sent());
  out += ",\"referer\":";
  append_json_string(out, req.headers().get("Referer"));
  out += ",\"user_agent\":";
  append_json_string(out, req.headers().get("User-Agent"));
  out += ",\"request_time\":";
  append_seconds(out, request_millis(c, req));
  out += ",\"host\":";
  append_json_string(out, req.host());
  out += '}';
}

}  // namespace

bool parse_log_format(std::string_view text, log_format& out) noexcept {
  if (text == "combined") {
    out = log_format::combined;
  } else if (text == "json") {
    out = log_format::json;
  } else {
    return false;
  }
  return true;
}

void append_log_line(std::string& out, log_format f, const connection& c, const request& req,
                     const trusted_proxies* trusted) {
  if (f == log_format::json) {
    append_json(out, c, req, trusted);
    return;
  }
  append_combined(out, c, req, trusted);
}

// --- the log --------------------------------------------------------------------------------

namespace detail {

// One scheduler's buffer of whole lines.
struct access_log_shard {
  std::mutex mutex;              // the owning scheduler appends; flush() may come from anywhere
  std::string lines;             // whole lines, each ending in '\n'
  clock::time_point first_at{};  // when the oldest line in `lines` was added
};

struct access_log_state : std::enable_shared_from_this<access_log_state> {
  std::string destination;
  access_log_options options;
  bool enabled = false;

  std::mutex out_mutex;  // one batch at a time; guards fd, failing
  int fd = -1;
  bool owns_fd = false;  // a file we opened (not stdout)
  bool failing = false;  // a write failed: warned once, silent until one succeeds

  std::mutex shards_mutex;  // guards shards
  std::vector<std::shared_ptr<access_log_shard>> shards;

  access_log_shard& shard_for(scheduler& s);
  void log(const connection& c, const request& req);
  // Writes `sh`'s lines; its mutex is held by the caller.
  void write_shard(access_log_shard& sh) {
    if (sh.lines.empty()) return;
    write_out(sh.lines);
    sh.lines.clear();  // the capacity stays
  }
  void flush_shard(access_log_shard& sh) {
    std::lock_guard lock(sh.mutex);
    write_shard(sh);
  }
  void flush_all() {
    std::vector<std::shared_ptr<access_log_shard>> all;
    {
      std::lock_guard lock(shards_mutex);
      all = shards;
    }
    for (const auto& sh : all)
      flush_shard(*sh);
  }
  void write_out(std::string_view batch);
  void close() {
    std::lock_guard lock(out_mutex);
    if (owns_fd && fd >= 0) ::close(fd);
    fd = -1;
    owns_fd = false;
  }
};

namespace {

int open_append(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// A scheduler's buffers, one per access log that logged on it; destroyed with the scheduler,
// which writes what they still hold.
struct scheduler_shards {
  struct entry {
    std::shared_ptr<access_log_state> log;
    std::shared_ptr<access_log_shard> shard;
  };
  std::vector<entry> entries;
  scheduler::turn_callback_id callback = 0;  // 0: not registered yet

  scheduler_shards() = default;
  scheduler_shards(const scheduler_shards&) = delete;
  scheduler_shards& operator=(const scheduler_shards&) = delete;
  ~scheduler_shards() { flush(); }

  void flush() noexcept {
    for (const entry& e : entries) {
      try {
        e.log->flush_shard(*e.shard);
      } catch (...) {
        // A mutex that failed to lock: nothing else can be done here.
      }
    }
  }
};

}  // namespace

access_log_shard& access_log_state::shard_for(scheduler& s) {
  scheduler_shards& mine = s.local<scheduler_shards>();
  for (const scheduler_shards::entry& e : mine.entries) {
    if (e.log.get() == this) return *e.shard;
  }
  auto sh = std::make_shared<access_log_shard>();
  sh->lines.reserve(options.batch_bytes + 1024);
  {
    std::lock_guard lock(shards_mutex);
    // Shards of schedulers gone since are held by this list alone: drop them (empty).
    std::erase_if(shards, [](const auto& p) { return p.use_count() == 1; });
    shards.push_back(sh);
  }
  mine.entries.push_back({shared_from_this(), sh});
  if (mine.callback == 0) mine.callback = s.add_after_turn([&mine] { mine.flush(); });
  return *sh;
}

void access_log_state::log(const connection& c, const request& req) {
  if (!enabled) return;
  scheduler* s = scheduler::current();
  if (s == nullptr) {  // no turn to batch for: at once
    thread_local std::string line;
    line.clear();
    append_log_line(line, options.format, c, req, options.trusted.get());
    line += '\n';
    write_out(line);
    return;
  }
  access_log_shard& sh = shard_for(*s);
  std::lock_guard lock(sh.mutex);
  const clock::time_point now = c.now();
  if (sh.lines.empty()) sh.first_at = now;
  append_log_line(sh.lines, options.format, c, req, options.trusted.get());
  sh.lines += '\n';
  if (sh.lines.size() >= options.batch_bytes || now - sh.first_at >= options.max_delay)
    write_shard(sh);
}

void access_log_state::write_out(std::string_view batch) {
  std::lock_guard lock(out_mutex);
  if (fd < 0) return;
  const char* p = batch.data();
  std::size_t left = batch.size();
  int error = 0;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n > 0) {
      p += n;
      left -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Standard output may be a non-blocking pipe: wait for room, a little.
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, 1000) > 0) continue;
      error = EAGAIN;
      break;
    }
    error = n < 0 ? errno : EIO;
    break;
  }
  if (error != 0) {
    if (!failing) {
      failing = true;
      lancer::log(log_level::warn, "access-log",
                  "writing to {} failed: {}; lines are dropped until a write succeeds", destination,
                  std::strerror(error));
    }
  } else if (failing) {
    failing = false;
    lancer::log(log_level::info, "access-log", "writing to {} works again", destination);
  }
}

}  // namespace detail

access_log::access_log(std::string destination, access_log_options o)
    : state_(std::make_shared<detail::access_log_state>()) {
  detail::access_log_state& st = *state_;
  st.destination = std::move(destination);
  st.options = o;
  if (st.destination == "off") return;
  st.enabled = true;
  if (st.destination == "-") {
    st.fd = STDOUT_FILENO;
    return;
  }
  st.fd = detail::open_append(st.destination);
  if (st.fd < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "lancer::http::access_log: cannot open " + st.destination);
  }
  st.owns_fd = true;
}

access_log::~access_log() {
  state_->flush_all();
  state_->close();
}

access_hook access_log::hook() const {
  return [st = state_](const connection& c, const request& req) { st->log(c, req); };
}

void access_log::write(const connection& c, const request& req) {
  state_->log(c, req);
}

void access_log::flush() {
  state_->flush_all();
}

bool access_log::reopen() {
  detail::access_log_state& st = *state_;
  st.flush_all();
  if (!st.owns_fd) return true;  // "-", "off", or closed
  const int fresh = detail::open_append(st.destination);
  if (fresh < 0) {
    const int error = errno;
    lancer::log(log_level::warn, "access-log",
                "cannot reopen {}: {}; still writing to the old file", st.destination,
                std::strerror(error));
    return false;
  }
  std::lock_guard lock(st.out_mutex);
  ::close(std::exchange(st.fd, fresh));
  st.failing = false;
  return true;
}

bool access_log::enabled() const noexcept {
  return state_->enabled;
}

const std::string& access_log::destination() const noexcept {
  return state_->destination;
}

log_format access_log::format() const noexcept {
  return state_->options.format;
}

}  // namespace lancer::http
