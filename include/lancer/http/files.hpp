// Static files for httputil: GET and HEAD from a directory, with validators, conditional
// requests, ranges, precompressed siblings, directory listings, zero copy and an open-file
// cache.
//
//   http::static_options o;
//   o.cache_control = {{"/assets/", "public, max-age=31536000, immutable"}};
//   http::static_files files("/srv/www", o);              // the root must be a directory
//   router.get("/*", [files](connection& c, request& req, frame&, pubframe&) {
//     return files(c, req);
//   });
//
// What a request gets (RFC 9110):
// - 200 with `ETag` (strong: the file's modification time in nanoseconds and its size),
//   `Last-Modified`, `Accept-Ranges: bytes`, the Content-Type from the mime table, and
//   `Cache-Control` when a prefix of `cache_control` matches the path (the longest wins).
// - Preconditions, in RFC 9110 13.2.2's order: `If-Match` (strong comparison) or else
//   `If-Unmodified-Since` fail with 412; `If-None-Match` (weak comparison) or else
//   `If-Modified-Since` give 304 (with the validators, no body).
// - `Range: bytes=...` on GET and HEAD: one range gives 206 with `Content-Range`; several give
//   206 `multipart/byteranges` (overlapping and adjacent ranges are merged, in order); none
//   satisfiable gives 416 with `Content-Range: bytes */length`. A malformed Range, another
//   unit, or more than `max_ranges` ranges is ignored (200, the whole file). `If-Range` with
//   the current ETag (strong) or the exact Last-Modified date lets the Range apply;
//   otherwise the whole file is sent.
// - Precompressed siblings: beside `app.js`, an `app.js.br` or `app.js.gz` is sent instead
//   when `Accept-Encoding` allows it (`br` first at equal q; `q=0` refuses), with
//   `Content-Encoding`, its own ETag, the Content-Type of `app.js`, and `Vary:
//   Accept-Encoding` (on the plain file's answers too).
// - A directory: without its trailing slash, 301 to the path with it (the query kept); with
//   it, its index file, else a listing if `autoindex` is on, else 404.
// - No way out of the root: `..`, `%2e%2e`, a NUL, a backslash and a symlink pointing outside
//   all get 404, exactly as a missing file does.
// - Faults: a file the server may not read gets 403, running out of file descriptors
//   (EMFILE, ENFILE) gets 503 with `Retry-After: 1`, each with a log line naming the file. A
//   file that shrinks while it is being sent ends the connection mid-body (the client sees
//   fewer bytes than Content-Length) with a log line; a file removed while it is being sent
//   is sent whole (its descriptor keeps it).
// - Other methods get 405 with `Allow: GET, HEAD`.
//
// Zero copy: a body goes from the page cache to the socket (stream::send_file: sendfile(2))
// where the connection is a plain TCP or Unix socket, and through the outbound buffer where
// a layer sits on it or on the fake source; files up to `in_memory` bytes are kept in memory
// by the cache and written with the response head in one write, so a pipelined batch of small
// files still leaves in one write.
//
// The open-file cache is per scheduler thread (no lock on the request path): for each path
// asked for it keeps the resolved file, its open descriptor (or its bytes), its validators
// and its precompressed siblings, and answers a request without a system call. An entry is
// trusted for `cache_valid`, then checked again (resolved and stat'ed): a file changed,
// replaced or removed is seen then. A file being sent keeps its descriptor until it is done,
// even if the cache drops it meanwhile. A request served from the cache allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lancer/core/connection.hpp"
#include "lancer/http/request.hpp"
#include "lancer/sched/clock.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

// File name extensions to Content-Types. Starts with the common web types; add() extends or
// replaces them.
class mime_types {
 public:
  mime_types();
  // Sets the type of files ending in `ext` (".md" or "md"; compared without case). Throws
  // std::invalid_argument for an empty extension, or a type that is empty or holds a control
  // character (it goes into a header).
  void add(std::string_view ext, std::string_view type);
  // The type for `file_name` by its last extension; "application/octet-stream" if unknown.
  std::string_view find(std::string_view file_name) const noexcept;

 private:
  std::vector<std::pair<std::string, std::string>> table_;  // ".ext" in lower case, type
};

// The Content-Type for a file name from the built-in table ("index.html" -> "text/html;
// charset=utf-8"); "application/octet-stream" when unknown.
std::string_view mime_type(std::string_view file_name) noexcept;

// Decodes %XX escapes in a URL path (not '+'): url.hpp's percent_decode into a new string.
// Returns nullopt for a malformed escape or a NUL, encoded or raw.
std::optional<std::string> percent_decode(std::string_view path);

// The file under `root` that `target` names, or nullopt if there is none or it would leave
// the root. A directory names its index.html. `root` must be an absolute, canonical path
// (see std::filesystem::canonical).
std::optional<std::filesystem::path> resolve_under(const std::filesystem::path& root,
                                                   std::string_view target);

// An HTTP date (RFC 9110 5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms a
// recipient must accept. nullopt for anything else.
std::optional<std::time_t> parse_http_date(std::string_view text) noexcept;
// Writes `t` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 characters) into `out`.
std::string_view format_http_date(std::time_t t, std::span<char, 29> out) noexcept;

// Whether the list in an If-Match / If-None-Match field matches `etag` (quoted, perhaps
// "W/"-prefixed): "*" matches anything; a strong comparison never matches a weak tag.
bool etag_matches(std::string_view list, std::string_view etag, bool weak) noexcept;

// One satisfiable range: bytes first..last, both included.
struct byte_range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};
// What a Range field asks of a representation of `size` bytes.
struct range_request {
  enum class outcome {
    whole,          // no usable Range (absent, malformed, another unit, too many): send all
    unsatisfiable,  // 416
    ranges,         // 206 with `count` ranges in the caller's array
  };
  outcome result = outcome::whole;
  std::size_t count = 0;
};
// Parses `field` (the Range value) into `out`, merging overlapping and adjacent ranges (they
// are then in ascending order). More ranges than out.size() are treated as no Range at all.
range_request parse_range(std::string_view field, std::uint64_t size,
                          std::span<byte_range> out) noexcept;

struct static_options {
  // Where the root is mounted in the URL space: a path that starts and ends with '/'. A
  // request outside it gets 404; the rest of its path names the file under the root.
  std::string prefix = "/";
  std::string index = "index.html";  // a directory's own page ("" for none)
  bool autoindex = false;            // list a directory that has no index file
  // Cache-Control values by path prefix ("/assets/" -> "max-age=31536000"); longest wins.
  std::vector<std::pair<std::string, std::string>> cache_control;
  bool precompressed = true;  // look for `.br` and `.gz` siblings
  http::mime_types mime;
  bool sendfile = true;  // false: bodies always go through the outbound buffer
  // How long an open-file cache entry is trusted before the file is checked again (0: at
  // every request), and how many entries each scheduler thread keeps.
  clock::duration cache_valid = std::chrono::seconds(1);
  std::size_t cache_entries = 4096;
  // Files up to this size are kept in memory by the cache (and sent with the head).
  std::size_t in_memory = 16 * 1024;
  std::size_t max_ranges = 32;  // more ranges than this in one request: the whole file
};

// A directory served as static files. Cheap to copy (copies share the options and the
// caches); the object it was copied from may go while copies live.
class static_files {
 public:
  // Throws std::system_error if `root` is not a directory, std::invalid_argument for a bad
  // prefix or Cache-Control value.
  explicit static_files(const std::filesystem::path& root, static_options options = {});

  // Answers `req`.
  task<> operator()(connection& c, request& req) const;
  // Answers `req`, unless the answer would be a 403 or a 404: then sends nothing and returns
  // that status, for the caller's own page (a router route's context::error(), which serves
  // the router's error_page). Returns 0 once it has answered.
  task<unsigned> answer_or_error(connection& c, request& req) const;

  const std::filesystem::path& root() const noexcept;
  const static_options& options() const noexcept;

  struct state;

 private:
  std::shared_ptr<const state> state_;
};

}  // namespace lancer::http
