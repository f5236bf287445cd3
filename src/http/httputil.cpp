#include "lancer/http/httputil.hpp"

#include <boost/beast/http/error.hpp>

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>

#include "lancer/core/failure.hpp"
#include "lancer/http/detail/request_parser.hpp"
#include "lancer/http/files.hpp"
#include "lancer/log.hpp"

namespace lancer::http {

namespace beast = boost::beast;

namespace {

constexpr unsigned k_max_empty_lines = 4;    // ignored before a request line (RFC 9112 2.2)
constexpr std::size_t k_line_overhead = 64;  // a request line's bytes besides its target

// The Date header value, formatted at most once a second per OS thread, from the scheduler's
// clock (clock::wall_now: a test on a manual clock gets the same Date in every run).
std::string_view http_date() {
  thread_local std::time_t cached_at = -1;
  thread_local std::array<char, 29> text{};
  const scheduler* sched = scheduler::current();
  const std::time_t now = sched != nullptr && sched->clock().is_manual()
                              ? std::chrono::system_clock::to_time_t(sched->clock().wall_now())
                              : std::time(nullptr);
  if (now != cached_at) {
    format_http_date(now, text);
    cached_at = now;
  }
  return {text.data(), text.size()};
}

// Refuses extra fields that the response writes itself.
const http::fields& checked(const http::fields& f) {
  if (f.empty()) return f;
  if (const std::string_view own = f.written_by_response(); !own.empty())
    throw std::invalid_argument(
        fmt::format("lancer::http: {} is written by the response itself, not an extra field", own));
  return f;
}

// The task of an answer that was written whole and needs nothing more.
task<> done() {
  co_return;
}

bool status_has_body(unsigned status) noexcept {
  return status >= 200 && status != 204 && status != 304;
}

std::string conn_name(const connection& c) {
  return fmt::format("conn/{}", c.id());
}

// How a response's body is delimited.
enum class framing { length, chunked, close };

// Gathers a response head in a stack buffer and appends it to the connection in one write.
// Plain copies: a format string parsed per response cost more than the rest of the answer
// (callgrind: 30% of lancer-serve's own instructions per keep-alive request).
class head_writer {
 public:
  explicit head_writer(connection& c) noexcept : c_(c) {}
  head_writer& operator<<(std::string_view s) {
    if (s.empty()) return *this;  // (an empty view's data() may be null: no memcpy of it)
    if (s.size() > sizeof buf_ - n_) {
      flush();
      if (s.size() > sizeof buf_) {
        c_.write(s);
        return *this;
      }
    }
    std::memcpy(buf_ + n_, s.data(), s.size());
    n_ += s.size();
    return *this;
  }
  head_writer& operator<<(std::uint64_t v) {
    const fmt::format_int text(v);
    return *this << std::string_view(text.data(), text.size());
  }
  void flush() {
    c_.write({buf_, n_});
    n_ = 0;
  }

 private:
  connection& c_;
  char buf_[512];      // a typical head fits: one write
  std::size_t n_ = 0;  // bytes in buf_
};

// Appends a status line and header block to the connection's output.
void write_head(connection& c, unsigned version, unsigned status, std::string_view content_type,
                framing how, std::size_t content_length, bool close,
                std::span<const headers::field> fields, std::string_view wire = {}) {
  head_writer head(c);
  head << "HTTP/1.1 " << std::uint64_t{status} << " " << code2status(status)
       << "\r\nServer: lancer\r\nDate: " << http_date() << "\r\n";
  if (!content_type.empty()) head << "Content-Type: " << content_type << "\r\n";
  if (how == framing::length && status_has_body(status)) {
    head << "Content-Length: " << std::uint64_t{content_length} << "\r\n";
  } else if (how == framing::chunked && status_has_body(status)) {
    head << "Transfer-Encoding: chunked\r\n";
  }
  if (close) {
    head << "Connection: close\r\n";
  } else if (version == 10) {
    head << "Connection: keep-alive\r\n";
  }
  for (const headers::field& f : fields)
    head << f.name << ": " << f.value << "\r\n";
  head << wire << "\r\n";
  head.flush();
}

}  // namespace

// A read that reports a passed deadline as nullopt instead of throwing, so the caller can
// answer 408: that takes a co_await, which a catch block may not hold.
class read_unless_expired {
 public:
  explicit read_unless_expired(connection& c) : read_(c.read()) {}
  bool await_ready() { return read_.await_ready(); }
  void await_suspend(std::coroutine_handle<> h) { read_.await_suspend(h); }
  std::optional<std::size_t> await_resume() {
    try {
      return read_.await_resume();
    } catch (const timed_out&) {
      return std::nullopt;
    }
  }

 private:
  connection::read_awaiter read_;
};

// Reaches into request; declared its friend.
struct io {
  // The hook switched_protocols() logs the request with (upgrade.hpp).
  static void on_switch(request& req, const access_hook& log_to) noexcept {
    req.on_switch_ = &log_to;
  }
  // Answers a request that could not be read with the status `ec` calls for, then closes.
  static task<> reject(connection& c, request& req, boost::system::error_code ec) {
    const unsigned status = status_for(ec);
    log(log_level::info, conn_name(c), "bad request: {} ({})", ec.message(), status);
    if (req.answered_) {
      // An answer has begun (a handler streams while another thread reads the body): no
      // second status line in the middle of it; the connection ends, the answer cut.
      req.keep_alive_ = false;
      c.abort(std::make_error_code(std::errc::protocol_error));
      co_return;
    }
    if (!c.closed() && !c.error()) {
      const std::string_view reason = code2status(status);
      write_head(c, 11, status, "text/plain", framing::length, reason.size() + 1, true, {});
      c.write(reason);
      c.write("\n");
      req.bytes_sent_ = reason.size() + 1;
      try {
        co_await c.flush();
      } catch (const std::system_error&) {
        // The peer is gone already: nothing more to tell it.
      }
    }
    req.keep_alive_ = false;
    req.answered_ = true;
    req.status_ = status;
    c.close();
  }

  // After the handler: a request it did not answer gets a 500, and a failed one closes.
  static task<> after_handler(connection& c, request& req, bool failed) {
    if (!req.answered() && !c.closed()) {
      if (!failed) {
        log(log_level::error, conn_name(c), "handler returned without answering {} {}",
            req.method(), req.target());
      }
      response r;
      r.status = 500;
      r.body = "Internal Server Error\n";
      r.close = true;
      co_await respond(c, req, r);
    }
  }

  // Drops what the previous request left in the buffer. Returns false if the connection
  // cannot carry another request.
  static task<bool> finish_previous(connection& c, request& req, const limits& lim) {
    if (req.conn_ != &c || req.header_size_ == 0) co_return true;
    if (!req.keep_alive_ || c.closed()) co_return false;
    if (unread_body(req)) {
      // The handler answered without reading all the body. A chunked one cannot be skipped
      // cheaply, and a client waiting for 100 Continue may never send it: close instead.
      if (req.chunked_ || (req.continue_expected_ && !req.body_started_)) co_return false;
      while (req.body_left_ > 0) {
        c.erase(req.header_size_, req.body_in_buffer_);
        req.body_in_buffer_ = 0;
        const std::size_t here = c.buffered().size() - req.header_size_;
        const std::size_t drop =
            static_cast<std::size_t>(std::min<std::uint64_t>(here, req.body_left_));
        c.erase(req.header_size_, drop);
        req.body_left_ -= drop;
        if (req.body_left_ == 0) break;
        if (!co_await read_more(c, req, lim)) co_return false;
      }
    }
    drop_read_request(c, req);
    co_return true;
  }

  // finish_previous without a coroutine, for the common case: the request was read whole
  // (no body, or the handler read it). Returns whether the connection can carry another
  // request, or nullopt if the body must be skipped first (call finish_previous).
  static std::optional<bool> finish_read_request(connection& c, request& req) {
    if (!req.keep_alive_ || c.closed()) return false;
    if (unread_body(req)) return std::nullopt;
    drop_read_request(c, req);
    return true;
  }

  static bool unread_body(const request& req) noexcept { return req.has_body() && !req.body_done_; }
  static void drop_read_request(connection& c, request& req) noexcept {
    c.consume(req.header_size_ + req.body_in_buffer_);
    req.header_size_ = req.body_in_buffer_ = 0;
  }

  // Waits for more body bytes, restarting the body timeout on progress. Returns false (after
  // answering 408 or 400) if the body stalls past the timeout or the peer stops sending.
  static task<bool> read_more(connection& c, request& req, const limits& lim) {
    const std::optional<std::size_t> n = co_await read_unless_expired(c);
    if (!n) {
      log(log_level::info, conn_name(c), "request body stalled (408)");
      co_await reject_timeout(c, req);
      co_return false;
    }
    if (*n == 0 && c.at_eof()) {
      co_await reject(c, req, make_error_code(error::incomplete));
      co_return false;
    }
    req.body_received_ += *n;
    arm_body_deadline(c, req, lim);  // progress earns time, at the minimum rate
    co_return true;
  }

  // Before the parser sees a request: skips a few empty lines (RFC 9112 2.2), waits for the
  // whole request line, and checks that it ends in an HTTP version. Beast waits for more
  // input after a line without one ("GET / \r\n\r\n" would get 408, not 400), and refuses
  // HTTP/1.2 to 1.9, which RFC 9110 2.5 answers as 1.1. Sets req.line_size_ when the line is
  // whole and fit for the parser.
  static beast::error_code start_line(connection& c, request& req, const limits& lim) {
    std::string_view in = c.buffered();
    while (!in.empty() && (in[0] == '\r' || in[0] == '\n')) {
      const std::size_t n = in[0] == '\n' ? 1 : 2;
      if (in.size() < n) return beast::http::error::need_more;
      if (n == 2 && in[1] != '\n') return error::bad_request_line;  // a bare CR
      if (++req.empty_lines_ > k_max_empty_lines) return error::bad_request_line;
      c.consume(n);
      in = c.buffered();
    }
    const std::size_t longest =
        lim.target > SIZE_MAX - k_line_overhead ? SIZE_MAX : lim.target + k_line_overhead;
    const std::size_t eol = in.substr(0, longest == SIZE_MAX ? longest : longest + 1).find('\n');
    if (eol == std::string_view::npos) {
      return in.size() > longest ? beast::error_code(error::target_too_long)
                                 : beast::error_code(beast::http::error::need_more);
    }
    // method SP request-target SP HTTP-version CRLF; Beast reads the method and the target.
    const std::string_view line = in.substr(0, eol + 1);
    const auto digit = [](char ch) { return ch >= '0' && ch <= '9'; };
    if (line.size() < 14 || line[line.size() - 2] != '\r' || line[line.size() - 11] != ' ') {
      return error::bad_request_line;
    }
    const std::string_view v = line.substr(line.size() - 10, 8);
    if (v.substr(0, 5) != "HTTP/" || !digit(v[5]) || v[6] != '.' || !digit(v[7])) {
      return error::bad_request_line;
    }
    if (v[5] != '1') return error::version_not_supported;
    req.line_size_ = static_cast<std::uint32_t>(line.size());
    return {};
  }

  // Where the header block in `in` ends (one past its empty line), looking from `from` on; npos
  // if it has not arrived yet. The end is an LF followed by an empty line, CRLF or a bare LF:
  // Beast refuses the bare one (400) once it is fed, rather than it waiting for a CRLF.
  static std::size_t header_end(std::string_view in, std::size_t from) noexcept {
    for (std::size_t i = in.find('\n', from); i != std::string_view::npos;
         i = in.find('\n', i + 1)) {
      if (i + 1 < in.size() && in[i + 1] == '\n') return i + 2;
      if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
  }

  // Feeds the parser the request's header once it is whole (the request line, checked by
  // start_line, and the field lines up to the empty line). Fed in pieces, Beast reads a header
  // differently: after it asked for more, it looks at the fields again only once the header's
  // end has come, so a bad field would be answered at once or only at the end, depending on
  // where the network cut the bytes. Fed whole, the answer never depends on the cuts.
  // On success the header is read and the body deadline runs; need_more asks for more bytes;
  // anything else is bad.
  static beast::error_code parse(connection& c, request& req, const limits& lim) {
    if (req.line_size_ == 0) {
      const beast::error_code ec = start_line(c, req, lim);
      if (ec) return ec;
      req.scanned_ = req.line_size_ - 1;  // the line's LF may begin the header's end
    }
    const std::string_view in = c.buffered();
    const std::size_t end = header_end(in, req.scanned_);
    const std::size_t block =
        end == std::string_view::npos ? in.size() - req.line_size_ : end - req.line_size_;
    if (block > lim.header_bytes) return beast::http::error::header_limit;
    if (end == std::string_view::npos) {
      req.scanned_ = static_cast<std::uint32_t>(std::max<std::size_t>(req.scanned_, in.size() - 2));
      return beast::http::error::need_more;
    }
    req.parser_ = new detail::request_parser(req, lim, req.line_size_);
    beast::error_code ec;
    std::size_t from = 0;
    if (in[req.line_size_ - 3] != '0' && in[req.line_size_ - 3] != '1') {
      // HTTP/1.2 to 1.9: the parser reads the line as 1.1, from a copy.
      std::string line(in.substr(0, req.line_size_));
      line[req.line_size_ - 3] = '1';
      from = req.parser_->feed(line.data(), 0, line, ec);
      if (ec != beast::http::error::need_more) return ec ? ec : error::bad_request_line;
      ec = {};
    }
    req.parser_->feed(in.data(), from, in.substr(from), ec);
    // The whole header was there: asking for more means a line Beast could not end.
    if (ec == beast::http::error::need_more) ec = error::bad_field_value;
    if (!ec) {
      req.body_started_at_ = c.now();
      // Body bytes that came with the header earn their time too: the deadline is the same
      // however the bytes were cut.
      req.body_received_ = in.size() - req.header_size_;
      arm_body_deadline(c, req, lim);
    }
    return ec;
  }

  // The body deadline: `body_timeout` after the header, plus a second per `body_min_rate`
  // bytes of body received; or, with no rate, `body_timeout` after the last progress.
  static void arm_body_deadline(connection& c, const request& req, const limits& lim) {
    if (lim.body_min_rate == 0) {
      c.set_timeout(lim.body_timeout);
      return;
    }
    // At most 10^9 s: far beyond any deadline that matters, and no overflow in nanoseconds.
    const std::uint64_t whole =
        std::min<std::uint64_t>(req.body_received_ / lim.body_min_rate, 1'000'000'000);
    const std::uint64_t part = req.body_received_ % lim.body_min_rate;
    const auto earned = std::chrono::seconds(whole) +
                        std::chrono::microseconds(part * 1'000'000 / lim.body_min_rate);
    c.set_deadline(req.body_started_at_ + lim.body_timeout +
                   std::chrono::duration_cast<clock::duration>(earned));
  }

  // Waits between requests for the next one's first byte. Returns false when the connection
  // is done: the peer closed, the idle timeout passed, or the server drains. A drain does
  // not hang up on an idle connection at once: a request may be on its way (a client racing
  // the close would lose it), so the connection waits `drain_grace` for one, which is then
  // answered with `Connection: close`; just before it closes, it looks once more for input
  // that arrived unseen.
  static task<bool> wait_between(connection& c, const limits& lim) {
    bool grace = false;
    while (c.buffered().empty()) {
      arm_idle(c, lim, grace);
      const std::optional<std::size_t> n = co_await read_unless_expired(c);
      if (!still_idle(c, n, grace)) co_return false;
    }
    co_return true;
  }

  // wait_between()'s steps, without a coroutine frame of their own: serve_connection runs
  // the same loop in its frame, so that an idle connection holds one frame, not two.
  // Sets the deadline for the next read: the idle timeout, or at a drain, the grace.
  static void arm_idle(connection& c, const limits& lim, bool& grace) noexcept {
    if (c.draining() && !grace) {
      grace = true;
      c.wake_at(c.now() + lim.drain_grace);  // the core brings it before the drain's end
    } else if (!grace) {
      c.set_timeout(lim.idle_timeout);
    }
  }
  // After a read between requests that returned `n` (nullopt: the deadline passed): false
  // when the connection is done (and closed).
  static bool still_idle(connection& c, std::optional<std::size_t> n, bool grace) noexcept {
    if (!n) {
      log(log_level::debug, conn_name(c), "idle keep-alive connection timed out");
      c.close();
      return false;
    }
    if (*n == 0 && c.at_eof()) {  // the client is done: what was answered still goes out
      c.close();
      return false;
    }
    if (*n == 0 && grace) {  // the grace is over
      if (c.input_pending()) {
        c.clear_deadline();  // read it: no later than the drain's deadline
        return true;
      }
      log(log_level::debug, conn_name(c), "idle at the drain: closed");
      c.close();
      return false;
    }
    return true;
  }

  // Reads the rest of a request's header into `req` (which parse() may have started):
  // parses what is buffered, reads more while the header is incomplete (`header_timeout`,
  // then 408), and answers a bad one. Returns whether a request is ready for its handler.
  static task<bool> read_header(connection& c, request& req, const limits& lim) {
    c.set_timeout(lim.header_timeout);
    for (;;) {
      const beast::error_code ec = parse(c, req, lim);
      if (!ec) co_return true;
      if (ec != beast::http::error::need_more) {
        co_await reject(c, req, ec);
        co_return false;
      }
      if (req.line_size_ == 0 && c.buffered().empty()) {
        // Only empty lines so far (a client ending a body with a stray CRLF): still between
        // requests, so the idle wait (or a drain's grace) applies, not the header timeout.
        const bool more = co_await wait_between(c, lim);
        if (!more) co_return false;
        c.set_timeout(lim.header_timeout);
        continue;
      }
      const std::optional<std::size_t> n = co_await read_unless_expired(c);
      if (!n) {
        log(log_level::info, conn_name(c), "request header not received in time (408)");
        co_await reject_timeout(c, req);
        co_return false;
      }
      if (*n == 0 && c.at_eof()) {
        log(log_level::info, conn_name(c), "peer closed in the middle of a request header");
        c.close();
        co_return false;
      }
    }
  }

  // Starts reading a fresh request from what is buffered, without a coroutine frame.
  static beast::error_code begin(connection& c, request& req, const limits& lim) {
    req.start(c);
    return parse(c, req, lim);
  }

  static task<bool> wait(connection& c, request& req, const limits& lim) {
    if (!co_await finish_previous(c, req, lim)) {
      c.close();
      co_return false;
    }
    req.reset();
    req.conn_ = &c;
    if (c.buffered().empty()) {
      const bool more = co_await wait_between(c, lim);
      if (!more) co_return false;
    }
    req.start(c);
    co_return co_await read_header(c, req, lim);
  }

  static task<> reject_timeout(connection& c, request& req) {
    if (req.answered_) {  // as in reject(): the answer that has begun is cut
      req.keep_alive_ = false;
      c.abort(std::make_error_code(std::errc::timed_out));
      co_return;
    }
    write_head(c, 11, 408, "text/plain", framing::length, 16, true, {});
    c.write("Request Timeout\n");
    req.keep_alive_ = false;
    req.answered_ = true;
    req.status_ = 408;
    req.bytes_sent_ = 16;
    try {
      co_await c.flush();
    } catch (const std::system_error&) {
    }
    c.close();
  }

  static task<> send_continue(connection& c, request& req) {
    if (!req.continue_expected_) co_return;
    req.continue_expected_ = false;
    c.write("HTTP/1.1 100 Continue\r\n\r\n");
    co_await c.flush();
  }

  // The whole fixed body, left in place behind the header: no copy.
  static task<std::optional<std::string_view>> fixed_body(connection& c, request& req,
                                                          const limits& lim) {
    if (req.body_done_) co_return req.body();
    if (req.body_started_) throw std::logic_error("lancer::http: body already read in pieces");
    req.body_started_ = true;
    const std::size_t need = req.header_size_ + req.body_left_;
    if (c.buffered().size() < need) co_await send_continue(c, req);
    while (c.buffered().size() < need) {
      if (!co_await read_more(c, req, lim)) co_return std::nullopt;
    }
    req.body_in_buffer_ = req.body_left_;
    req.body_left_ = 0;
    req.body_done_ = true;
    co_return req.body();
  }

  // The next piece of a fixed body (at most `max` bytes); "" once it is all read. The piece
  // handed out last time is erased from behind the header first.
  static task<std::optional<std::string_view>> fixed_piece(connection& c, request& req,
                                                           const limits& lim, std::size_t max) {
    c.erase(req.header_size_, req.body_in_buffer_);
    req.body_in_buffer_ = 0;
    if (req.body_left_ == 0) {
      req.body_done_ = true;
      co_return std::string_view{};
    }
    if (!req.body_started_) {
      req.body_started_ = true;
      if (c.buffered().size() == req.header_size_) co_await send_continue(c, req);
    }
    while (c.buffered().size() == req.header_size_) {
      if (!co_await read_more(c, req, lim)) co_return std::nullopt;
    }
    const std::size_t n = std::min<std::uint64_t>(
        {c.buffered().size() - req.header_size_, req.body_left_, std::max<std::size_t>(max, 1)});
    req.body_left_ -= n;
    req.body_in_buffer_ = n;
    co_return c.buffered().substr(req.header_size_, n);
  }

  // Decodes chunks: raw bytes behind the header go through Beast's parser and are erased;
  // the decoded bytes gather in the parser. `whole`: until the end; otherwise until some
  // arrive (what was handed out last time is dropped first). "" once it is all read.
  static task<std::optional<std::string_view>> chunked(connection& c, request& req,
                                                       const limits& lim, bool whole) {
    detail::request_parser& p = *req.parser_;
    if (req.body_done_) co_return whole ? req.body() : std::string_view{};
    if (whole && req.body_started_) {
      throw std::logic_error("lancer::http: body already read in pieces");
    }
    if (!whole) p.chunked_body().clear();
    p.eager(true);
    if (!req.body_started_) {
      req.body_started_ = true;
      if (c.buffered().size() == req.header_size_) co_await send_continue(c, req);
    }
    // Bytes behind the header that Beast has seen and asked more for (0: none pending).
    std::size_t stalled = 0;
    for (;;) {
      const std::string_view in = c.buffered();
      const std::string_view raw = in.substr(req.header_size_);
      // Workaround: after need_more, feed Beast again only once a new line end has come.
      // Beast 1.81's parse_chunk_header asserts (n >= 5) when a body whose first chunk is
      // the last one ("0\r\n") is fed a byte at a time; release builds parse it right, but
      // builds with asserts abort. Beast cannot get further before a line end anyway.
      const bool fresh_line =
          raw.substr(std::min(stalled, raw.size())).find('\n') != std::string_view::npos;
      if (!raw.empty() && (stalled == 0 || fresh_line)) {
        beast::error_code ec;
        const std::size_t used = p.feed(in.data(), req.header_size_, raw, ec);
        c.erase(req.header_size_, used);
        stalled = ec == beast::http::error::need_more ? raw.size() - used : 0;
        if (p.is_done()) {
          req.body_done_ = true;
          co_return std::string_view(p.chunked_body());
        }
        if (ec && ec != beast::http::error::need_more) {
          co_await reject(c, req, ec);
          co_return std::nullopt;
        }
        if (!whole && !p.chunked_body().empty()) co_return std::string_view(p.chunked_body());
      }
      if (!co_await read_more(c, req, lim)) co_return std::nullopt;
    }
  }

  // Whether the connection must close after this response: asked for, or a body that was
  // not read and cannot be skipped, or the server drains. A drain lets requests already
  // buffered behind this one be answered first: then the last answer closes.
  static bool must_close(connection& c, const request& req, bool asked) {
    const bool unread = req.has_body() && !req.body_done_ &&
                        (req.chunked_ || (req.continue_expected_ && !req.body_started_));
    if (asked || !req.keep_alive_ || unread) return true;
    if (!c.draining()) return false;
    const bool whole = !req.has_body() || req.body_done_;
    if (!whole) return true;
    const std::string_view rest =
        c.buffered().substr(std::min(c.buffered().size(), req.header_size_ + req.body_in_buffer_));
    return rest.find_first_not_of("\r\n") == std::string_view::npos;  // empty lines: none
  }

  // Starts a response whose body follows in pieces: chunked on HTTP/1.1; on HTTP/1.0 the
  // body runs until the connection closes.
  static void start_chunked(connection& c, request& req, unsigned status,
                            std::string_view content_type, std::span<const headers::field> fields,
                            std::string_view wire) {
    const bool old = req.version_ == 10;
    const bool close = must_close(c, req, old);
    write_head(c, req.version_, status, content_type, old ? framing::close : framing::chunked, 0,
               close, fields, wire);
    req.answered_ = true;
    req.status_ = status;
    req.streaming_ = !req.is_head() && status_has_body(status);
    if (close) req.keep_alive_ = false;
  }

  // Starts a response whose body of `length` bytes follows in pieces, with Content-Length.
  static void start_fixed(connection& c, request& req, unsigned status,
                          std::string_view content_type, std::uint64_t length,
                          std::span<const headers::field> fields, std::string_view wire) {
    const bool close = must_close(c, req, false);
    write_head(c, req.version_, status, content_type, framing::length, length, close, fields, wire);
    req.answered_ = true;
    req.status_ = status;
    req.streaming_ = !req.is_head() && status_has_body(status);
    req.streaming_fixed_ = true;
    if (close) req.keep_alive_ = false;
  }

  static task<> send_chunk(connection& c, request& req, std::string_view piece) {
    if (!req.streaming_ || piece.empty()) co_return;
    req.bytes_sent_ += piece.size();
    if (req.version_ == 10 || req.streaming_fixed_) {
      co_await c.send(piece);
      co_return;
    }
    char size[20];
    const auto end = fmt::format_to(size, "{:x}\r\n", piece.size());
    c.write({size, static_cast<std::size_t>(end - size)});
    c.write(piece);
    co_await c.send("\r\n");  // waits above the high-water mark: the core's backpressure
  }

  static void write_body(connection& c, request& req, std::string_view piece) {
    if (!req.streaming_ || piece.empty()) return;
    req.bytes_sent_ += piece.size();
    if (req.version_ == 10 || req.streaming_fixed_) {
      c.write(piece);
      return;
    }
    write_chunk_size(c, piece.size());
    c.write(piece);
    c.write("\r\n");
  }

  static task<> send_file(connection& c, request& req, int fd, std::uint64_t offset,
                          std::uint64_t length) {
    if (!req.streaming_ || length == 0) co_return;
    req.bytes_sent_ += length;
    const bool framed = req.version_ != 10 && !req.streaming_fixed_;
    if (framed) write_chunk_size(c, length);
    co_await c.send_file(fd, offset, length);
    if (framed) c.write("\r\n");
  }

  static void write_chunk_size(connection& c, std::uint64_t n) {
    char size[24];
    const auto end = fmt::format_to(size, "{:x}\r\n", n);
    c.write({size, static_cast<std::size_t>(end - size)});
  }

  static task<> end_chunked(connection& c, request& req) {
    if (req.streaming_ && req.version_ != 10 && !req.streaming_fixed_) c.write("0\r\n\r\n");
    req.streaming_ = req.streaming_fixed_ = false;
    if (!req.keep_alive_) {
      co_await c.flush();
      c.close();
    }
  }

  // Writes a whole response; true if the connection is to close after it.
  static bool write_response(connection& c, request& req, unsigned status,
                             std::string_view content_type, std::string_view body,
                             std::string_view wire, bool close_after) {
    const bool close = must_close(c, req, close_after);
    write_head(c, req.version_, status, content_type, framing::length, body.size(), close, {},
               wire);
    if (status_has_body(status) && !req.is_head()) {
      c.write(body);
      req.bytes_sent_ = body.size();
    }
    req.answered_ = true;
    req.status_ = status;
    if (close) req.keep_alive_ = false;
    return close;
  }

  static task<> close_after(connection& c) {
    co_await c.flush();
    c.close();
  }
};

task<bool> wait_for_headers(connection& c, request& req, const limits& lim) {
  return io::wait(c, req, lim);
}

task<bool> wait_for_request(connection& c, request& req, const limits& lim) {
  if (!co_await io::wait(c, req, lim)) co_return false;
  if (!req.has_body()) co_return true;
  // co_await as a statement of its own: GCC 12 miscompiles it inside && and ||.
  const auto body = co_await read_body(c, req, lim);
  co_return body.has_value();
}

task<std::optional<std::string_view>> read_fixed_body(connection& c, request& req,
                                                      const limits& lim) {
  if (req.chunked()) {
    co_await io::reject(c, req, make_error_code(error::bad_transfer_encoding));
    co_return std::nullopt;
  }
  co_return co_await io::fixed_body(c, req, lim);
}

task<std::optional<std::string_view>> read_chunked_body(connection& c, request& req,
                                                        const limits& lim) {
  if (!req.chunked()) {
    co_await io::reject(c, req, make_error_code(error::bad_transfer_encoding));
    co_return std::nullopt;
  }
  co_return co_await io::chunked(c, req, lim, true);
}

task<std::optional<std::string_view>> read_body(connection& c, request& req, const limits& lim) {
  if (req.chunked()) co_return co_await io::chunked(c, req, lim, true);
  co_return co_await io::fixed_body(c, req, lim);
}

task<std::optional<std::string_view>> read_body_some(connection& c, request& req, std::size_t max,
                                                     const limits& lim) {
  if (req.chunked()) co_return co_await io::chunked(c, req, lim, false);
  co_return co_await io::fixed_piece(c, req, lim, max);
}

void start_chunked(connection& c, request& req, unsigned status, std::string_view content_type,
                   std::span<const headers::field> fields) {
  io::start_chunked(c, req, status, content_type, fields, {});
}

void start_chunked(connection& c, request& req, unsigned status, std::string_view content_type,
                   const http::fields& fields) {
  io::start_chunked(c, req, status, content_type, {}, checked(fields).wire());
}

void start_response(connection& c, request& req, unsigned status, std::string_view content_type,
                    std::uint64_t length, std::span<const headers::field> fields) {
  io::start_fixed(c, req, status, content_type, length, fields, {});
}

void start_response(connection& c, request& req, unsigned status, std::string_view content_type,
                    std::uint64_t length, const http::fields& fields) {
  io::start_fixed(c, req, status, content_type, length, {}, checked(fields).wire());
}

task<> send_chunk(connection& c, request& req, std::string_view piece) {
  return io::send_chunk(c, req, piece);
}

task<> end_chunked(connection& c, request& req) {
  return io::end_chunked(c, req);
}

void write_body(connection& c, request& req, std::string_view piece) {
  io::write_body(c, req, piece);
}

task<> send_file(connection& c, request& req, int fd, std::uint64_t offset, std::uint64_t length) {
  return io::send_file(c, req, fd, offset, length);
}

// Not coroutines: the response is written before they return, so `r` and `extra` need only
// last that long; a coroutine frame is made only when the connection is to close.
task<> respond(connection& c, request& req, const response& r) {
  if (io::write_response(c, req, r.status, r.content_type, r.body, checked(r.fields).wire(),
                         r.close))
    return io::close_after(c);
  return done();
}

task<> respond(connection& c, request& req, unsigned status, std::string_view content_type,
               std::string_view body, const http::fields& extra) {
  if (io::write_response(c, req, status, content_type, body, checked(extra).wire(), false))
    return io::close_after(c);
  return done();
}

task<> redirect(connection& c, request& req, unsigned status, std::string_view location) {
  if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
    throw std::invalid_argument(
        fmt::format("lancer::http::redirect: {} is not a redirect", status));
  if (!valid_field_value(location) || location.empty())
    throw std::invalid_argument("lancer::http::redirect: a Location with CR, LF or NUL, or none");
  char wire[2048];
  const auto head = fmt::format_to_n(wire, sizeof wire, "Location: {}\r\n", location);
  std::string spill;  // a location longer than the stack buffer
  std::string_view w{wire, std::min(head.size, sizeof wire)};
  if (head.size > sizeof wire) {
    spill = fmt::format("Location: {}\r\n", location);
    w = spill;
  }
  if (io::write_response(c, req, status, "text/plain", "Redirecting\n", w, false))
    return io::close_after(c);
  return done();
}

namespace {

// One request: its header, the handler, an answer if the handler gave none, the access log
// line, then its bytes (and a body the handler left unread) are dropped. The request lives in
// this frame, which ends with it: an idle connection holds no request and no header index.
// Returns false when the connection is done.
task<bool> serve_one(const request_handler& h, const limits& lim, const access_hook& log_to,
                     const upgrades& up, connection& c, frame& f, pubframe& p) {
  request req;  // its body is read when the handler asks
  // The common case costs no frame: the whole header is buffered already.
  const beast::error_code ec = io::begin(c, req, lim);
  if (ec == beast::http::error::need_more) {
    const bool ok = co_await io::read_header(c, req, lim);
    if (!ok) {
      if (log_to && req.answered()) log_to(c, req);  // refused (400, 408, 413, 431, ...)
      co_return false;
    }
  } else if (ec) {
    co_await io::reject(c, req, ec);
    if (log_to && req.answered()) log_to(c, req);
    co_return false;
  }
  std::exception_ptr error;
  io::on_switch(req, log_to);
  const upgrade_handler* upgrade = up.find(req);
  try {
    if (upgrade != nullptr) {
      co_await (*upgrade)(c, req, f, p);
    } else {
      co_await h(c, req, f, p);
    }
  } catch (const cancelled&) {
    throw;  // a stop: the server closes the connection
  } catch (...) {
    error = std::current_exception();
  }
  const bool failed = static_cast<bool>(error);
  if (failed) {
    const failure why = classify_failure(error);  // the peer's doing, or ours: one policy
    if (why.peer) {
      log(why.level, conn_name(c), "{} {}: {}", req.method(), req.target(), why.what);
    } else {
      log(why.level, conn_name(c), "handler failed on {} {}: {}", req.method(), req.target(),
          why.what);
    }
  }
  if (req.switched()) {  // another protocol had the connection: it never comes back to HTTP
    c.close();
    co_return false;
  }
  const bool unanswered = !req.answered() && !c.closed() && !c.error();
  if (unanswered) co_await io::after_handler(c, req, failed);
  if (log_to) log_to(c, req);
  bool more = false;
  if (!failed) {
    const std::optional<bool> done = io::finish_read_request(c, req);
    if (done) {
      more = *done;
    } else {
      more = co_await io::finish_previous(c, req, lim);  // skips an unread body
    }
  }
  if (!more) c.close();
  co_return more;
}

task<> serve_connection(const request_handler& h, const limits& lim, const access_hook& log_to,
                        const upgrades& up, connection& c, frame& f, pubframe& p) {
  for (;;) {
    // Between requests the wait is here, in this small frame (memory per idle connection):
    // wait_between's loop, written out.
    bool grace = false;
    while (c.buffered().empty()) {
      io::arm_idle(c, lim, grace);
      const std::optional<std::size_t> n = co_await read_unless_expired(c);
      if (!io::still_idle(c, n, grace)) co_return;
    }
    const bool more = co_await serve_one(h, lim, log_to, up, c, f, p);
    if (!more) co_return;
  }
}

// serve_connection for a service_slot: each request takes the current service, and holds it
// until it is answered; the wait between requests holds none (it reads the limits it needs).
task<> serve_slot_connection(const std::shared_ptr<service_slot>& slot, connection& c, frame& f,
                             pubframe& p) {
  for (;;) {
    bool grace = false;
    while (c.buffered().empty()) {
      io::arm_idle(c, slot->current()->lim, grace);
      const std::optional<std::size_t> n = co_await read_unless_expired(c);
      if (!io::still_idle(c, n, grace)) co_return;
    }
    std::shared_ptr<const service> s = slot->current();
    const bool more = co_await serve_one(s->handler, s->lim, s->log_to, s->up, c, f, p);
    if (!more) co_return;
  }
}

}  // namespace

server::handler serve(std::shared_ptr<service_slot> slot) {
  if (!slot || !slot->current()) throw std::invalid_argument("lancer::http::serve: no service");
  return [slot = std::move(slot)](connection& c, frame& f, pubframe& p) {
    return serve_slot_connection(slot, c, f, p);
  };
}

server::handler serve(request_handler h, limits lim, access_hook log_to, upgrades up) {
  return [h = std::move(h), lim, log_to = std::move(log_to), up = std::move(up)](
             connection& c, frame& f, pubframe& p) {
    return serve_connection(h, lim, log_to, up, c, f, p);
  };
}

}  // namespace lancer::http
