// CGI/1.1 (RFC 3875): request handlers that run a script per request.
//
//   http::request_handler h = http::cgi_dir("/cgi-bin/", "/srv/cgi-bin");
//   // GET /cgi-bin/hello.py/extra?x=1 runs /srv/cgi-bin/hello.py with PATH_INFO=/extra
//
// For each request the script runs as a child process (io/child_process.hpp) in its own
// directory, with the meta-variables of RFC 3875 section 4.1 (GATEWAY_INTERFACE,
// REQUEST_METHOD, SCRIPT_NAME, PATH_INFO, QUERY_STRING, CONTENT_LENGTH, CONTENT_TYPE,
// REMOTE_ADDR, REMOTE_PORT, SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, SERVER_SOFTWARE) and an
// HTTP_* variable per request field (not Proxy: the "httpoxy" hole; nor Authorization).
// The request body goes to its stdin as it arrives, while its stdout is read: the header
// lines (`Status:`, `Location:` (302 without a Status), `Content-Type:`, and any other field
// passed on), then the body, streamed to the client as it comes (chunked on HTTP/1.1). Its
// stderr goes to the log, a WARN line per line.
//
// Failures: a script that cannot start, writes a malformed or oversized header, or ends
// before its header, gets the client a 502; one that outlives `timeout` is killed and gets a
// 504 (or, if its answer had begun, the connection is cut). Each is logged with the script.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "lancer/http/httputil.hpp"

namespace lancer::http {

struct cgi_options {
  clock::duration timeout = std::chrono::seconds(30);  // the script's whole run
  std::size_t max_header = 16 * 1024;                  // its header lines; more: 502
  std::vector<std::string> env;                        // more variables, "NAME=value"
  limits request_limits;                               // reading the request's body
};

// Runs the executable `script` for every request.
request_handler cgi(std::filesystem::path script, cgi_options options = {});

// Runs the executable under `dir` that the target names after `prefix` (the first path
// segment; the rest is PATH_INFO). A name that is not a regular executable file directly
// under `dir` (no "..", no hidden files, no subdirectories) gets 404.
request_handler cgi_dir(std::string prefix, std::filesystem::path dir, cgi_options options = {});

}  // namespace lancer::http
