#include "lancer/http/httputil.hpp"

#include <boost/beast/http/error.hpp>

#include <fmt/format.h>
#include <ctime>

#include "lancer/http/detail/request_parser.hpp"
#include "lancer/log.hpp"

namespace lancer::http {

namespace beast = boost::beast;

namespace {

// The Date header value, formatted at most once a second per OS thread.
std::string_view http_date() {
  thread_local std::time_t cached_at = 0;
  thread_local char text[64] = {};
  thread_local std::size_t len = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_at) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    len = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_at = now;
  }
  return {text, len};
}

bool status_has_body(unsigned status) noexcept {
  return status >= 200 && status != 204 && status != 304;
}

std::string conn_name(const connection& c) {
  return fmt::format("conn/{}", c.id());
}

// Appends a status line and header block to the connection's output. No allocation: the
// text is formatted into a stack buffer, then appended.
void write_head(connection& c, unsigned version, unsigned status, std::string_view content_type,
                std::size_t content_length, bool close, std::span<const headers::field> fields,
                bool length_field) {
  fmt::memory_buffer head;  // 500 bytes inline
  auto out = std::back_inserter(head);
  fmt::format_to(out, "HTTP/1.1 {} {}\r\nServer: lancer\r\nDate: {}\r\n", status,
                 code2status(status), http_date());
  if (!content_type.empty()) fmt::format_to(out, "Content-Type: {}\r\n", content_type);
  if (length_field) fmt::format_to(out, "Content-Length: {}\r\n", content_length);
  if (close) {
    fmt::format_to(out, "Connection: close\r\n");
  } else if (version == 10) {
    fmt::format_to(out, "Connection: keep-alive\r\n");
  }
  for (const headers::field& f : fields)
    fmt::format_to(out, "{}: {}\r\n", f.name, f.value);
  fmt::format_to(out, "\r\n");
  c.write({head.data(), head.size()});
}

}  // namespace

// Reaches into request; declared its friend.
struct io {
  // Answers a request that could not be read with the status `ec` calls for, then closes.
  static task<> reject(connection& c, request& req, boost::system::error_code ec) {
    const unsigned status = status_for(ec);
    log(log_level::info, conn_name(c), "bad request: {} ({})", ec.message(), status);
    if (!c.closed() && !c.error()) {
      const std::string_view reason = code2status(status);
      write_head(c, 11, status, "text/plain", reason.size() + 1, true, {}, true);
      c.write(reason);
      c.write("\n");
      try {
        co_await c.flush();
      } catch (const std::system_error&) {
        // The peer is gone already: nothing more to tell it.
      }
    }
    req.keep_alive_ = false;
    req.answered_ = true;
    c.close();
  }

  // Drops what the previous request left in the buffer. Returns false if the connection
  // cannot carry another request.
  static task<bool> finish_previous(connection& c, request& req, const limits& lim) {
    if (req.conn_ != &c || req.header_size_ == 0) co_return true;
    if (!req.keep_alive_ || c.closed()) co_return false;
    if (req.has_body() && req.body_size_ == 0) {
      // The handler answered without reading the body. A chunked one cannot be skipped
      // cheaply, and a client waiting for 100 Continue may never send it: close instead.
      if (req.chunked_ || req.continue_expected_) co_return false;
      const std::size_t need = req.header_size_ + *req.content_length_;
      while (c.buffered().size() < need) {
        const std::size_t n = co_await c.read();
        if (n == 0 && c.at_eof()) co_return false;
      }
      req.body_size_ = *req.content_length_;
    }
    c.consume(req.header_size_ + req.body_size_);
    (void)lim;
    co_return true;
  }

  static task<bool> wait(connection& c, request& req, const limits& lim) {
    if (!co_await finish_previous(c, req, lim)) {
      c.close();
      co_return false;
    }
    req.reset();
    req.conn_ = &c;
    bool started = false;
    c.set_timeout(lim.idle_timeout);
    for (;;) {
      const std::string_view in = c.buffered();
      if (!in.empty()) {
        if (!started) {
          started = true;
          c.set_timeout(lim.header_timeout);
        }
        if (req.parser_ == nullptr) req.parser_ = new detail::request_parser(req, lim);
        beast::error_code ec;
        req.parser_->feed(in.data(), 0, in, ec);
        if (!ec) {
          c.set_timeout(lim.body_timeout);
          co_return true;
        }
        if (ec != beast::http::error::need_more) {
          co_await reject(c, req, ec);
          co_return false;
        }
      } else if (c.draining()) {
        c.close();  // between requests: a good moment to leave
        co_return false;
      }
      std::size_t n = 0;
      bool expired = false;
      try {
        n = co_await c.read();
      } catch (const timed_out&) {
        expired = true;  // answered below: no co_await inside a handler
      }
      if (expired) {
        if (!started) {
          log(log_level::debug, conn_name(c), "idle keep-alive connection timed out");
          c.close();
          co_return false;
        }
        log(log_level::info, conn_name(c), "request header not received in time (408)");
        co_await reject_timeout(c, req);
        co_return false;
      }
      if (n == 0 && c.at_eof()) {
        if (started) {
          log(log_level::info, conn_name(c), "peer closed in the middle of a request header");
        }
        c.close();
        co_return false;
      }
    }
  }

  static task<> reject_timeout(connection& c, request& req) {
    write_head(c, 11, 408, "text/plain", 16, true, {}, true);
    c.write("Request Timeout\n");
    try {
      co_await c.flush();
    } catch (const std::system_error&) {
    }
    req.keep_alive_ = false;
    c.close();
  }

  static task<> send_continue(connection& c, request& req) {
    if (!req.continue_expected_) co_return;
    req.continue_expected_ = false;
    c.write("HTTP/1.1 100 Continue\r\n\r\n");
    co_await c.flush();
  }

  static task<std::optional<std::string_view>> fixed_body(connection& c, request& req) {
    const std::uint64_t length = req.content_length_.value_or(0);
    const std::size_t need = req.header_size_ + length;
    if (c.buffered().size() < need) co_await send_continue(c, req);
    while (c.buffered().size() < need) {
      const std::size_t n = co_await c.read();
      if (n == 0 && c.at_eof()) {
        co_await reject(c, req, make_error_code(error::incomplete));
        co_return std::nullopt;
      }
    }
    req.body_size_ = length;
    co_return c.buffered().substr(req.header_size_, length);
  }

  static task<std::optional<std::string_view>> chunked_body(connection& c, request& req) {
    detail::request_parser& p = *req.parser_;
    p.eager(true);
    bool asked = false;
    for (;;) {
      const std::string_view in = c.buffered();
      const std::size_t at = req.header_size_ + req.seen_;
      if (in.size() > at) {
        beast::error_code ec;
        req.seen_ += p.feed(in.data(), at, in.substr(at), ec);
        if (p.is_done()) {
          req.body_size_ = req.seen_;
          co_return std::string_view(p.chunked_body());
        }
        if (ec && ec != beast::http::error::need_more) {
          co_await reject(c, req, ec);
          co_return std::nullopt;
        }
      }
      if (!asked) {
        asked = true;
        co_await send_continue(c, req);
      }
      const std::size_t n = co_await c.read();
      if (n == 0 && c.at_eof()) {
        co_await reject(c, req, make_error_code(error::incomplete));
        co_return std::nullopt;
      }
    }
  }

  static task<> respond(connection& c, request& req, const response& r) {
    // An unread body that cannot be skipped means this connection cannot go on.
    const bool unread =
        req.has_body() && req.body_size_ == 0 && (req.chunked_ || req.continue_expected_);
    const bool close = r.close || !req.keep_alive_ || unread || c.draining();
    const bool body = status_has_body(r.status) && !req.is_head();
    write_head(c, req.version_, r.status, r.content_type, r.body.size(), close, r.fields,
               status_has_body(r.status));
    if (body) c.write(r.body);
    req.answered_ = true;
    if (close) {
      req.keep_alive_ = false;
      co_await c.flush();
      c.close();
    }
  }
};

task<bool> wait_for_request(connection& c, request& req, const limits& lim) {
  return io::wait(c, req, lim);
}

task<std::optional<std::string_view>> read_fixed_body(connection& c, request& req, const limits&) {
  if (req.chunked()) {
    co_await io::reject(c, req, make_error_code(error::bad_transfer_encoding));
    co_return std::nullopt;
  }
  co_return co_await io::fixed_body(c, req);
}

task<std::optional<std::string_view>> read_chunked_body(connection& c, request& req,
                                                        const limits&) {
  if (!req.chunked()) {
    co_await io::reject(c, req, make_error_code(error::bad_transfer_encoding));
    co_return std::nullopt;
  }
  co_return co_await io::chunked_body(c, req);
}

task<std::optional<std::string_view>> read_body(connection& c, request& req, const limits&) {
  if (req.chunked()) co_return co_await io::chunked_body(c, req);
  co_return co_await io::fixed_body(c, req);
}

task<> respond(connection& c, request& req, const response& r) {
  return io::respond(c, req, r);
}

task<> respond_on(connection& c, request& req, unsigned status, std::string_view content_type,
                  std::string_view body) {
  response r;
  r.status = status;
  r.content_type = content_type;
  r.body = body;
  co_await io::respond(c, req, r);
}

namespace {

task<> serve_connection(const request_handler& h, const limits& lim, connection& c, frame& f,
                        pubframe& p) {
  request req;
  while (co_await wait_for_request(c, req, lim)) {
    bool failed = false;
    try {
      co_await h(c, req, f, p);
    } catch (const cancelled&) {
      throw;  // a deadline or a stop: the server closes the connection
    } catch (const std::exception& e) {
      log(log_level::error, conn_name(c), "handler failed on {} {}: {}", req.method(), req.target(),
          e.what());
      failed = true;
    }
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
    if (failed) {
      c.close();
      co_return;
    }
  }
}

}  // namespace

server::handler serve(request_handler h, limits lim) {
  return [h = std::move(h), lim](connection& c, frame& f, pubframe& p) {
    return serve_connection(h, lim, c, f, p);
  };
}

}  // namespace lancer::http
