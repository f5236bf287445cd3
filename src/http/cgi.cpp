#include "lancer/http/cgi.hpp"

#include <signal.h>
#include <unistd.h>

#include <cctype>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lancer/io/child_process.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/joined_thread.hpp"

namespace lancer::http {

namespace fs = std::filesystem;

namespace {

bool token_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  return std::string_view("()<>@,;:\\\"/[]?={}").find(c) == std::string_view::npos;
}

std::string_view trim(std::string_view v) noexcept {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r'))
    v.remove_suffix(1);
  return v;
}

// "%2F" and the like decoded (PATH_INFO is not URL-encoded, RFC 3875 4.1.5); a malformed
// escape is kept as it is.
std::string percent_decoded(std::string_view in) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

// "host:port" -> host, "[::1]:80" -> "::1"; and the port ("" if none).
std::pair<std::string, std::string> split_host(std::string_view hostport) {
  std::string_view host = hostport, port;
  if (!hostport.empty() && hostport.front() == '[') {
    const std::size_t close = hostport.find(']');
    host = hostport.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1);
    if (close != std::string_view::npos && close + 1 < hostport.size()) {
      port = hostport.substr(close + 2);
    }
  } else if (const std::size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  return {std::string(host), std::string(port)};
}

// The meta-variables of RFC 3875 section 4.1 for `req`.
std::vector<std::string> meta_variables(const connection& c, const request& req,
                                        std::string_view script_name, std::string_view path_info,
                                        std::optional<std::uint64_t> content_length,
                                        const cgi_options& o) {
  std::vector<std::string> env{
      "GATEWAY_INTERFACE=CGI/1.1",
      "SERVER_SOFTWARE=lancer",
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "REQUEST_METHOD=" + std::string(req.method()),
      "SCRIPT_NAME=" + std::string(script_name),
      "SERVER_PROTOCOL=HTTP/" + std::to_string(req.version() / 10) + "." +
          std::to_string(req.version() % 10),
  };
  const std::string_view target = req.target();
  const std::size_t q = target.find('?');
  env.push_back("QUERY_STRING=" +
                std::string(q == std::string_view::npos ? "" : target.substr(q + 1)));
  if (!path_info.empty()) env.push_back("PATH_INFO=" + percent_decoded(path_info));
  if (content_length) env.push_back("CONTENT_LENGTH=" + std::to_string(*content_length));
  if (const std::string_view type = req.headers().get("Content-Type"); !type.empty()) {
    env.push_back("CONTENT_TYPE=" + std::string(type));
  }
  const auto [peer_host, peer_port] = split_host(c.peer_address());
  env.push_back("REMOTE_ADDR=" + peer_host);
  if (!peer_port.empty()) env.push_back("REMOTE_PORT=" + peer_port);
  const auto [server_host, server_port] = split_host(req.host());
  const auto [local_host, local_port] = split_host(c.local_address());
  env.push_back("SERVER_NAME=" + (server_host.empty() ? local_host : server_host));
  env.push_back("SERVER_PORT=" + (local_port.empty() ? server_port : local_port));
  // HTTP_* for the fields, repeated names joined with ", " (RFC 3875 4.1.18).
  std::vector<std::pair<std::string, std::string>> fields;
  for (const headers::field f : req.headers()) {
    if (iequals(f.name, "Content-Length") || iequals(f.name, "Content-Type") ||
        iequals(f.name, "Authorization") || iequals(f.name, "Proxy")) {
      continue;  // given above, a credential, or the "httpoxy" hole
    }
    std::string name = "HTTP_";
    for (const char ch : f.name)
      name += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    bool joined = false;
    for (auto& [n, v] : fields) {
      if (n == name) {
        v.append(", ").append(f.value);
        joined = true;
      }
    }
    if (!joined) fields.emplace_back(std::move(name), std::string(f.value));
  }
  for (auto& [n, v] : fields)
    env.push_back(n + "=" + v);
  for (const std::string& e : o.env)
    env.push_back(e);
  return env;
}

// What the script's header lines said.
struct cgi_answer {
  unsigned status = 200;
  std::string content_type = "application/octet-stream";
  std::vector<std::pair<std::string, std::string>> fields;
};

// Reads the script's header lines from `text` (without the empty line ending them). Returns
// nullopt, and why in `why`, if they are not what CGI allows.
std::optional<cgi_answer> parse_answer(std::string_view text, std::string& why) {
  cgi_answer a;
  bool status_given = false, location = false, type_given = false;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      why = "a header line without a name: '" + std::string(line.substr(0, 60)) + "'";
      return std::nullopt;
    }
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    for (const char ch : name) {
      if (!token_char(ch)) {
        why = "a bad header name: '" + std::string(name.substr(0, 60)) + "'";
        return std::nullopt;
      }
    }
    for (const char ch : value) {
      if ((static_cast<unsigned char>(ch) < 0x20 && ch != '\t') || ch == 0x7f) {
        why = "a control character in the value of " + std::string(name);
        return std::nullopt;
      }
    }
    if (iequals(name, "Status")) {
      unsigned code = 0;
      std::size_t i = 0;
      while (i < value.size() && i < 3 && value[i] >= '0' && value[i] <= '9')
        code = code * 10 + static_cast<unsigned>(value[i++] - '0');
      if (i != 3 || code < 200 || code > 599 || (value.size() > 3 && value[3] != ' ')) {
        why = "a bad Status: '" + std::string(value.substr(0, 60)) + "'";
        return std::nullopt;
      }
      a.status = code;
      status_given = true;
    } else if (iequals(name, "Content-Type")) {
      a.content_type = std::string(value);
      type_given = true;
    } else if (iequals(name, "Connection") || iequals(name, "Transfer-Encoding") ||
               iequals(name, "Content-Length") || iequals(name, "Keep-Alive") ||
               iequals(name, "Upgrade") || iequals(name, "TE") || iequals(name, "Trailer")) {
      continue;  // framing and hop-by-hop fields are the server's to write
    } else {
      if (iequals(name, "Location")) location = true;
      a.fields.emplace_back(std::string(name), std::string(value));
    }
  }
  if (location && !status_given) a.status = 302;  // a client redirect (RFC 3875 6.2.4)
  if (!type_given && !location && a.status != 204 && a.status != 304) {
    why = "no Content-Type";
    return std::nullopt;
  }
  return a;
}

// Sends the request's body to the script's stdin as it arrives, then closes it. A script
// that stops reading ends this early; what is left of the body is skipped with the request.
task<> feed_stdin(connection& c, request& req, stream& in, const std::string* whole,
                  const limits& lim) {
  try {
    if (whole != nullptr) {
      co_await in.send(*whole);
    } else if (req.has_body()) {
      for (;;) {
        const auto piece = co_await read_body_some(c, req, 64 * 1024, lim);
        if (!piece || piece->empty()) break;
        co_await in.send(*piece);
      }
    }
    co_await in.flush();
  } catch (const connection_error&) {
    // the script closed its stdin (or exited): it wants no more
  }
  in.close();
}

// Logs what the script writes to stderr, a line at a time.
task<> log_stderr(stream& err, std::string who) {
  try {
    for (;;) {
      const std::size_t n = co_await err.read();
      std::string_view in = err.buffered();
      std::size_t used = 0;
      for (std::size_t eol = in.find('\n'); eol != std::string_view::npos;
           eol = in.find('\n', used)) {
        log(log_level::warn, who, "{}", in.substr(used, eol - used));
        used = eol + 1;
      }
      if ((n == 0 && err.at_eof()) || in.size() - used > 4096) {
        if (used < in.size()) log(log_level::warn, who, "{}", in.substr(used));
        used = in.size();
      }
      err.consume(used);
      if (n == 0 && err.at_eof()) co_return;
    }
  } catch (const std::exception&) {
  }
}

std::string conn_log_name(const connection& c) {
  return c.name();
}

task<> run_script(connection& c, request& req, fs::path script, std::string script_name,
                  std::string path_info, const cgi_options& o) {
  const std::string who = "cgi " + script.filename().string();
  const clock::time_point deadline = c.now() + o.timeout;
  c.set_deadline(deadline + std::chrono::seconds(1));  // the script's own deadline comes first

  // A chunked body is read whole first: the script is told its length (CONTENT_LENGTH).
  std::string whole;
  bool have_whole = false;
  std::optional<std::uint64_t> length = req.content_length();
  if (req.chunked()) {
    const auto body = co_await read_body(c, req, o.request_limits);
    if (!body) co_return;  // answered (400, 408, 413) already
    whole = std::string(*body);
    have_whole = true;
    length = whole.size();
  }

  std::optional<child_process> p;
  std::string failure;
  try {
    child_options co;
    co.env = meta_variables(c, req, script_name, path_info, length, o);
    co.cwd = script.parent_path().string();
    p.emplace(child_process::spawn({script.string()}, co));
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!p) {
    log(log_level::warn, conn_log_name(c), "{}: {}", who, failure);
    co_await respond(c, req, 502, "text/plain", "Bad Gateway\n");
    co_return;
  }
  stream& out = p->out();
  out.set_deadline(deadline);
  p->err().set_deadline(deadline);
  p->in().set_deadline(deadline);
  joined_thread feeder{
      feed_stdin(c, req, p->in(), have_whole ? &whole : nullptr, o.request_limits)};
  joined_thread errors{log_stderr(p->err(), who)};

  // The header lines, up to the empty line.
  std::string head;
  std::string bad;
  bool timed_out_now = false;
  try {
    for (;;) {
      const std::size_t n = co_await out.read();
      const std::string_view in = out.buffered();
      std::size_t end = in.find("\n\n"), skip = 2;
      if (const std::size_t crlf = in.find("\r\n\r\n"); crlf < end) {
        end = crlf;
        skip = 4;
      }
      if (end != std::string_view::npos && end <= o.max_header) {
        head = std::string(in.substr(0, end));
        out.consume(end + skip);
        break;
      }
      if (in.size() > o.max_header) {
        bad = "a header over " + std::to_string(o.max_header) + " bytes";
        break;
      }
      if (n == 0 && out.at_eof()) {
        bad = in.empty() ? "no output" : "output that ends before its header does";
        break;
      }
    }
  } catch (const timed_out&) {
    timed_out_now = true;
  }
  std::optional<cgi_answer> answer;
  if (!timed_out_now && bad.empty()) answer = parse_answer(head, bad);
  if (!answer) {
    p->kill(SIGKILL);
    if (timed_out_now) {
      log(log_level::warn, conn_log_name(c), "{}: no answer within {} s: killed", who,
          std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count());
      co_await respond(c, req, 504, "text/plain", "Gateway Timeout\n");
    } else {
      log(log_level::warn, conn_log_name(c), "{}: bad output: {}", who, bad);
      co_await respond(c, req, 502, "text/plain", "Bad Gateway\n");
    }
    co_await feeder.join();
    co_await errors.join();
    co_return;
  }

  if (req.answered() || c.closed()) {  // the body's reading failed and answered already
    p->kill(SIGKILL);
    co_await feeder.join();
    co_await errors.join();
    co_return;
  }
  // The body, streamed as it comes.
  std::vector<headers::field> fields;
  for (const auto& [n, v] : answer->fields)
    fields.push_back({n, v});
  start_chunked(c, req, answer->status, answer->content_type, fields);
  try {
    for (;;) {
      if (!out.buffered().empty()) {
        co_await send_chunk(c, req, out.buffered());
        out.consume(out.buffered().size());
      }
      const std::size_t n = co_await out.read();
      if (n == 0 && out.at_eof()) break;
    }
  } catch (const timed_out&) {
    timed_out_now = true;
  }
  if (timed_out_now) {
    p->kill(SIGKILL);
    log(log_level::warn, conn_log_name(c), "{}: still writing after {} s: killed, answer cut", who,
        std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count());
    c.abort(std::make_error_code(std::errc::timed_out));
  } else {
    co_await end_chunked(c, req);
  }
  co_await feeder.join();
  const int status = co_await p->wait();
  if (status != 0) log(log_level::info, conn_log_name(c), "{} exited with {}", who, status);
  co_await errors.join();
}

}  // namespace

request_handler cgi(fs::path script, cgi_options options) {
  return [script = std::move(script), o = std::move(options)](connection& c, request& req, frame&,
                                                              pubframe&) -> task<> {
    const std::string_view target = req.target();
    return run_script(c, req, script, std::string(target.substr(0, target.find('?'))), "", o);
  };
}

request_handler cgi_dir(std::string prefix, fs::path dir, cgi_options options) {
  return [prefix = std::move(prefix), dir = std::move(dir), o = std::move(options)](
             connection& c, request& req, frame&, pubframe&) -> task<> {
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    std::string_view rest = path.substr(std::min(path.size(), prefix.size()));
    const std::size_t slash = rest.find('/');
    const std::string_view name = rest.substr(0, slash);
    const std::string_view info = slash == std::string_view::npos ? "" : rest.substr(slash);
    const fs::path script = dir / std::string(name);
    std::error_code ec;
    const bool runnable = path.substr(0, prefix.size()) == prefix && !name.empty() &&
                          name.front() != '.' && name.find('%') == std::string_view::npos &&
                          fs::is_regular_file(script, ec) && ::access(script.c_str(), X_OK) == 0;
    if (!runnable) return respond(c, req, 404, "text/plain", "Not Found\n");
    return run_script(c, req, script, std::string(path.substr(0, prefix.size() + name.size())),
                      std::string(info), o);
  };
}

}  // namespace lancer::http
