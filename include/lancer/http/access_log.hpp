// lancer::http::access_log: one line per answered request, buffered per scheduler and written
// in batches.
//
//   http::access_log requests{"/var/log/lancer/access.log", {.format = http::log_format::json}};
//   lancer::server srv{sched, http::serve(handler, {}, requests.hook())};
//   ...
//   requests.reopen();  // on SIGHUP, after a rotation moved the file away
//   requests.flush();   // at exit (the destructor does it too)
//
// Rules:
// - Each scheduler (one per OS thread) keeps its own buffer of whole lines. The buffer is
//   written with one write(2) at the end of the scheduler's turn (scheduler::add_after_turn),
//   as soon as it holds `batch_bytes`, once its oldest line is `max_delay` old, by flush() and
//   reopen(), and when the scheduler is destroyed. A line logged outside any scheduler is
//   written at once.
// - A write holds whole lines only and batches never interleave (one write at a time, the
//   file opened with O_APPEND), so lines from several threads never tear.
// - A failed write (disk full, a closed descriptor) drops its batch and logs one warning;
//   the next failures are silent until a write succeeds again. Nothing throws on the request
//   path, and no heap allocation happens per request once the buffers have grown.
// - flush() and reopen() may be called from any OS thread; the hook runs on the thread of the
//   request it logs.
//
// Formats (`log_format`):
// - combined: nginx's combined format, then the request time in seconds:
//     127.0.0.1 - - [22/Nov/2026:01:40:00 +0000] "GET / HTTP/1.1" 200 13 "-" "curl/8.0" 0.002
//   (http::append_access_line, then a space and the time). Quotes, backslashes, control
//   characters and bytes from 0x7f up sent by the client are written as \xHH.
// - json: one JSON object per line, keys in this order:
//     {"time":"2026-11-22T01:40:00+00:00","remote_addr":"127.0.0.1","method":"GET",
//      "target":"/","protocol":"HTTP/1.1","status":200,"bytes_sent":13,"referer":"",
//      "user_agent":"curl/8.0","request_time":0.002,"host":"example.com"}
//   `time` is the local time with its UTC offset; a missing Referer, User-Agent or Host is "".
// - The remote address is the peer's IP, or with `access_log_options::trusted`, the client's
//   address its trusted proxies forwarded (http::client_address, proxies.hpp).
// - A request refused before its handler is logged too (400, 408, 413, 414, 431, ...). One
//   refused before its request line was parsed (a header that never ended, a target over the
//   limit) shows "-" as its request in the combined format, and empty method and target in
//   JSON.
//   Strings are escaped as JSON requires (quote, backslash, control characters); valid UTF-8
//   is kept, and each byte that is not part of valid UTF-8 becomes \ufffd.
// - The request time runs from the request's start (request::started_at, when its first byte
//   was looked at) to the hook's call, once the response has been handed to the connection;
//   both are the scheduler's time, so in virtual time it is exact. Millisecond resolution.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "lancer/core/connection.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/proxies.hpp"
#include "lancer/http/request.hpp"
#include "lancer/sched/clock.hpp"

namespace lancer::http {

namespace detail {
struct access_log_state;
}

enum class log_format { combined, json };

// Parses "combined" or "json"; returns false and leaves `out` alone otherwise.
bool parse_log_format(std::string_view text, log_format& out) noexcept;

// Appends the line for `req` in format `f` to `out`, without its newline. No allocation once
// `out` has grown. This is what an access_log writes; tests and other sinks may call it.
// With `trusted`, the remote address is http::client_address's (proxies.hpp).
void append_log_line(std::string& out, log_format f, const connection& c, const request& req,
                     const trusted_proxies* trusted = nullptr);

struct access_log_options {
  log_format format = log_format::combined;
  std::size_t batch_bytes = 64 * 1024;                  // a buffer this full is written at once
  clock::duration max_delay = std::chrono::seconds(1);  // no line waits longer (in one turn)
  // The proxies whose X-Forwarded-For gives the remote address (http::client_address);
  // null: the peer's address, always.
  std::shared_ptr<const trusted_proxies> trusted = nullptr;
};

class access_log {
 public:
  // Opens `destination`: a file path (created with mode 0644 if missing, appended to), "-"
  // for standard output, or "off" for no log at all (the hook does nothing). Throws
  // std::system_error if the file cannot be opened.
  explicit access_log(std::string destination, access_log_options o = {});
  // Flushes every buffer, then closes the file. Hooks still held keep working but write
  // nothing.
  ~access_log();
  access_log(const access_log&) = delete;
  access_log& operator=(const access_log&) = delete;

  // A hook for http::serve and router::handler that logs each request. It shares the log's
  // state, so it may outlive this object (it then does nothing).
  access_hook hook() const;

  // Logs `req` into the calling scheduler's buffer (the hook's body).
  void write(const connection& c, const request& req);

  // Writes every scheduler's buffered lines. Any OS thread.
  void flush();

  // Flushes, then opens the destination path again (after a rotation renamed the file), and
  // closes the old descriptor. Returns false, logs a warning and keeps writing to the old file
  // if the path cannot be opened. Nothing to do for "-" and "off". Any OS thread.
  bool reopen();

  bool enabled() const noexcept;
  const std::string& destination() const noexcept;
  log_format format() const noexcept;

 private:
  std::shared_ptr<detail::access_log_state> state_;  // shared with hooks and the buffers
};

}  // namespace lancer::http
