#include "lancer/http/files.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

#include <fmt/format.h>

#include "lancer/http/headers.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/url.hpp"
#include "lancer/io/error.hpp"
#include "lancer/log.hpp"

namespace lancer::http {

namespace fs = std::filesystem;

// --- mime types -----------------------------------------------------------------------------

namespace {

struct mime_entry {
  std::string_view ext, type;
};
constexpr mime_entry k_mime_defaults[] = {
    {".html", "text/html; charset=utf-8"},
    {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".md", "text/markdown; charset=utf-8"},
    {".csv", "text/csv; charset=utf-8"},
    {".xml", "application/xml"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".ico", "image/x-icon"},
    {".webp", "image/webp"},
    {".avif", "image/avif"},
    {".wasm", "application/wasm"},
    {".pdf", "application/pdf"},
    {".zip", "application/zip"},
    {".gz", "application/gzip"},
    {".tar", "application/x-tar"},
    {".woff", "font/woff"},
    {".woff2", "font/woff2"},
    {".ttf", "font/ttf"},
    {".otf", "font/otf"},
    {".mp3", "audio/mpeg"},
    {".ogg", "audio/ogg"},
    {".wav", "audio/wav"},
    {".mp4", "video/mp4"},
    {".webm", "video/webm"},
    {".m3u8", "application/vnd.apple.mpegurl"},
    {".ts", "video/mp2t"},
};
constexpr std::string_view k_octets = "application/octet-stream";

std::string_view extension_of(std::string_view name) noexcept {
  const std::size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  const std::size_t dot = name.rfind('.');
  return dot == std::string_view::npos || dot == 0 ? std::string_view{} : name.substr(dot);
}

}  // namespace

mime_types::mime_types() {
  for (const mime_entry& e : k_mime_defaults)
    table_.emplace_back(e.ext, e.type);
}

void mime_types::add(std::string_view ext, std::string_view type) {
  if (!ext.empty() && ext.front() == '.') ext.remove_prefix(1);
  if (ext.empty() || ext.find_first_of("./") != std::string_view::npos) {
    throw std::invalid_argument("mime_types::add: bad extension \"" + std::string(ext) + "\"");
  }
  const bool bad = type.empty() || std::any_of(type.begin(), type.end(), [](char ch) {
                     return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f;
                   });
  if (bad) throw std::invalid_argument("mime_types::add: bad type for ." + std::string(ext));
  std::string key = ".";
  for (const char ch : ext)
    key += static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  for (auto& [k, v] : table_) {
    if (k == key) {
      v = type;
      return;
    }
  }
  table_.emplace_back(std::move(key), type);
}

std::string_view mime_types::find(std::string_view name) const noexcept {
  const std::string_view ext = extension_of(name);
  if (ext.empty()) return k_octets;
  for (const auto& [k, v] : table_) {
    if (iequals(ext, k)) return v;
  }
  return k_octets;
}

std::string_view mime_type(std::string_view name) noexcept {
  const std::string_view ext = extension_of(name);
  for (const mime_entry& e : k_mime_defaults) {
    if (!ext.empty() && iequals(ext, e.ext)) return e.type;
  }
  return k_octets;
}

std::optional<std::string> percent_decode(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  if (!percent_decode(path, out)) return std::nullopt;  // url.hpp's: bad escapes, NUL
  return out;
}

// --- dates, validators, ranges -------------------------------------------------------------

namespace {

constexpr std::string_view k_days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::string_view k_long_days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                            "Thursday", "Friday", "Saturday"};
constexpr std::string_view k_months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Reads exactly `width` digits at `s[at]`.
bool digits(std::string_view s, std::size_t at, std::size_t width, int& out) noexcept {
  if (at + width > s.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < width; ++i) {
    const char ch = s[at + i];
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + (ch - '0');
  }
  out = v;
  return true;
}

int month_of(std::string_view s) noexcept {
  for (int i = 0; i < 12; ++i) {
    if (s == k_months[i]) return i;
  }
  return -1;
}

// "HH:MM:SS" at s[at].
bool clock_time(std::string_view s, std::size_t at, std::tm& tm) noexcept {
  return at + 8 <= s.size() && digits(s, at, 2, tm.tm_hour) && s[at + 2] == ':' &&
         digits(s, at + 3, 2, tm.tm_min) && s[at + 5] == ':' && digits(s, at + 6, 2, tm.tm_sec);
}

std::optional<std::time_t> to_time(std::tm& tm) noexcept {
  if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  const std::time_t t = ::timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return t;
}

}  // namespace

std::optional<std::time_t> parse_http_date(std::string_view s) noexcept {
  std::tm tm{};
  if (s.size() == 29 && s[3] == ',') {  // Sun, 06 Nov 1994 08:49:37 GMT
    if (std::find(std::begin(k_days), std::end(k_days), s.substr(0, 3)) == std::end(k_days) ||
        s[4] != ' ' || !digits(s, 5, 2, tm.tm_mday) || s[7] != ' ' || s[11] != ' ' ||
        !digits(s, 12, 4, tm.tm_year) || s[16] != ' ' || !clock_time(s, 17, tm) ||
        s.substr(25) != " GMT") {
      return std::nullopt;
    }
    tm.tm_mon = month_of(s.substr(8, 3));
    tm.tm_year -= 1900;
    return to_time(tm);
  }
  if (s.size() == 24 && s[3] == ' ') {  // Sun Nov  6 08:49:37 1994
    if (std::find(std::begin(k_days), std::end(k_days), s.substr(0, 3)) == std::end(k_days) ||
        s[7] != ' ' || s[10] != ' ' || !clock_time(s, 11, tm) || s[19] != ' ' ||
        !digits(s, 20, 4, tm.tm_year)) {
      return std::nullopt;
    }
    tm.tm_mon = month_of(s.substr(4, 3));
    if (s[8] == ' ') {
      if (!digits(s, 9, 1, tm.tm_mday)) return std::nullopt;
    } else if (!digits(s, 8, 2, tm.tm_mday)) {
      return std::nullopt;
    }
    tm.tm_year -= 1900;
    return to_time(tm);
  }
  // Sunday, 06-Nov-94 08:49:37 GMT
  const std::size_t comma = s.find(',');
  if (comma == std::string_view::npos || std::find(std::begin(k_long_days), std::end(k_long_days),
                                                   s.substr(0, comma)) == std::end(k_long_days)) {
    return std::nullopt;
  }
  const std::string_view r = s.substr(comma + 1);  // " 06-Nov-94 08:49:37 GMT"
  if (r.size() != 23 || r[0] != ' ' || !digits(r, 1, 2, tm.tm_mday) || r[3] != '-' || r[7] != '-' ||
      !digits(r, 8, 2, tm.tm_year) || r[10] != ' ' || !clock_time(r, 11, tm) ||
      r.substr(19) != " GMT") {
    return std::nullopt;
  }
  tm.tm_mon = month_of(r.substr(4, 3));
  // RFC 9110 5.6.7: a two-digit year more than 50 years ahead is in the past century.
  std::time_t now = std::time(nullptr);
  std::tm today{};
  ::gmtime_r(&now, &today);
  tm.tm_year += (today.tm_year / 100) * 100;
  if (tm.tm_year > today.tm_year + 50) tm.tm_year -= 100;
  return to_time(tm);
}

std::string_view format_http_date(std::time_t t, std::span<char, 29> out) noexcept {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  const std::string_view day = k_days[tm.tm_wday % 7];
  const std::string_view month = k_months[tm.tm_mon % 12];
  fmt::format_to_n(out.data(), out.size(), "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", day,
                   tm.tm_mday, month, tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return {out.data(), out.size()};
}

bool etag_matches(std::string_view list, std::string_view etag, bool weak) noexcept {
  const bool etag_weak = etag.substr(0, 2) == "W/";
  if (!weak && etag_weak) return false;
  const std::string_view opaque = etag_weak ? etag.substr(2) : etag;
  std::size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
      ++i;
    if (i >= list.size()) break;
    if (list[i] == '*') return true;
    bool is_weak = false;
    if (list.substr(i, 2) == "W/") {
      is_weak = true;
      i += 2;
    }
    if (i >= list.size() || list[i] != '"') return false;  // malformed: nothing matches
    const std::size_t end = list.find('"', i + 1);
    if (end == std::string_view::npos) return false;
    const std::string_view tag = list.substr(i, end - i + 1);
    if (tag == opaque && (weak || !is_weak)) return true;
    i = end + 1;
  }
  return false;
}

namespace {

// Reads a decimal number at s[i] (at most 19 digits), advancing i.
bool number(std::string_view s, std::size_t& i, std::uint64_t& out) noexcept {
  const char* begin = s.data() + i;
  const char* end = s.data() + s.size();
  if (begin == end || *begin < '0' || *begin > '9') return false;
  const auto [p, ec] = std::from_chars(begin, end, out);
  if (ec != std::errc{}) return false;
  i += static_cast<std::size_t>(p - begin);
  return true;
}

}  // namespace

range_request parse_range(std::string_view s, std::uint64_t size,
                          std::span<byte_range> out) noexcept {
  range_request whole;
  std::size_t i = 0;
  if (s.size() < 6 || !iequals(s.substr(0, 6), "bytes=")) return whole;
  i = 6;
  std::size_t n = 0;
  bool any = false;  // at least one range spec, satisfiable or not
  for (;;) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
      ++i;
    if (i < s.size() && s[i] == ',') {  // empty list elements are allowed (RFC 9110 5.6.1)
      ++i;
      continue;
    }
    if (i >= s.size()) break;
    std::uint64_t first = 0, last = 0;
    bool satisfiable = false;
    if (s[i] == '-') {  // a suffix: the last N bytes
      ++i;
      std::uint64_t suffix = 0;
      if (!number(s, i, suffix)) return whole;
      if (suffix > 0 && size > 0) {
        first = size - std::min(suffix, size);
        last = size - 1;
        satisfiable = true;
      }
    } else {
      if (!number(s, i, first)) return whole;
      if (i >= s.size() || s[i] != '-') return whole;
      ++i;
      last = UINT64_MAX;
      if (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (!number(s, i, last)) return whole;
        if (last < first) return whole;  // invalid: the whole field is ignored
      }
      if (first < size) {
        last = std::min(last, size - 1);
        satisfiable = true;
      }
    }
    any = true;
    if (satisfiable) {
      if (n == out.size()) return whole;  // too many ranges: serve it all
      out[n++] = {first, last};
    }
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
      ++i;
    if (i < s.size() && s[i] != ',') return whole;
  }
  if (!any) return whole;
  if (n == 0) return {range_request::outcome::unsatisfiable, 0};
  // Merge overlapping and adjacent ranges (in ascending order then).
  std::sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n),
            [](const byte_range& a, const byte_range& b) { return a.first < b.first; });
  std::size_t m = 0;
  for (std::size_t k = 1; k < n; ++k) {
    if (out[k].first <= out[m].last + 1) {
      out[m].last = std::max(out[m].last, out[k].last);
    } else {
      out[++m] = out[k];
    }
  }
  return {range_request::outcome::ranges, m + 1};
}

// --- resolving a path under the root ------------------------------------------------------

namespace {

enum class found : std::uint8_t { file, redirect, listing, missing, forbidden, exhausted };

bool under(const fs::path& root, const fs::path& real) {
  const auto [r, _] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  return r == root.end();
}

bool out_of_descriptors(int err) noexcept {
  return err == EMFILE || err == ENFILE;
}

// Descriptors a file open leaves free, as the listeners leave some (they stop accepting
// earlier still): a log file, a sanitizer's runtime, a signal pipe still find one.
constexpr rlim_t k_fd_reserve = 4;

// Whether `fd`, just opened, eats into that reserve.
bool in_reserve(int fd) noexcept {
  rlimit r{};
  return ::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY &&
         static_cast<rlim_t>(fd) + k_fd_reserve >= r.rlim_cur;
}

found from_errno(int err) noexcept {
  if (err == EACCES || err == EPERM) return found::forbidden;
  if (out_of_descriptors(err)) return found::exhausted;
  return found::missing;
}

struct resolution {
  found what = found::missing;
  fs::path real;  // the file, or the directory to list
  int err = 0;    // for forbidden and exhausted
};

// What `key` (a decoded path under the root, starting with '/') names. Never climbs out of
// the root, whatever symlinks say.
resolution resolve(const fs::path& root, std::string_view key, std::string_view index,
                   bool autoindex, bool index_without_slash) {
  resolution r;
  if (key.empty() || key.front() != '/' || key.find('\0') != std::string_view::npos) return r;
  fs::path p = root;
  std::string_view rest = key.substr(1);
  while (!rest.empty()) {
    const std::size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (seg == ".." || seg.find('\\') != std::string_view::npos) return r;  // never climb
    if (!seg.empty() && seg != ".") p /= seg;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  std::error_code ec;
  fs::path real = fs::canonical(p, ec);
  if (ec) {
    r.what = from_errno(ec.value());
    if (r.what == found::forbidden) r.real = p;
    r.err = ec.value();
    return r;
  }
  if (!under(root, real)) return r;
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0) {
    r.err = errno;
    r.what = from_errno(r.err);
    r.real = real;
    return r;
  }
  const bool slash = key.back() == '/';
  if (S_ISDIR(st.st_mode)) {
    if (!slash && !index_without_slash) {
      r.what = found::redirect;
      return r;
    }
    if (!index.empty()) {
      fs::path page = fs::canonical(real / index, ec);
      struct stat ist {};
      if (!ec && under(root, page) && ::stat(page.c_str(), &ist) == 0 && S_ISREG(ist.st_mode)) {
        r.what = found::file;
        r.real = std::move(page);
        return r;
      }
    }
    if (autoindex) {
      r.what = found::listing;
      r.real = std::move(real);
    }
    return r;
  }
  // A regular file; never a FIFO, a device or a socket (opening one could block the thread).
  if (!S_ISREG(st.st_mode) || slash) return r;
  r.what = found::file;
  r.real = std::move(real);
  return r;
}

}  // namespace

std::optional<fs::path> resolve_under(const fs::path& root, std::string_view target) {
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  const std::optional<std::string> decoded = percent_decode(path);
  if (!decoded) return std::nullopt;
  resolution r = resolve(root, *decoded, "index.html", false, true);
  if (r.what != found::file) return std::nullopt;
  return std::move(r.real);
}

// --- the open-file cache ------------------------------------------------------------------

namespace {

// One file as the cache holds it: open (or read whole), with its validators. Shared with the
// requests sending it, so that it stays open until the last of them is done.
struct representation {
  int fd = -1;  // -1 once its bytes are in memory
  std::uint64_t size = 0;
  std::string bytes;  // the whole file, when it is small
  bool in_memory = false;
  std::time_t mtime = 0;
  // What identifies this version of the file on disk.
  dev_t dev = 0;
  ino_t ino = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::string path;  // for log lines
  std::string mime;  // Content-Type (the plain file's, for a precompressed sibling)
  std::array<char, 48> etag_text{};
  std::uint8_t etag_len = 0;
  std::array<char, 29> modified{};

  representation() = default;
  representation(const representation&) = delete;
  representation& operator=(const representation&) = delete;
  ~representation() {
    if (fd >= 0) ::close(fd);
  }
  std::string_view etag() const noexcept { return {etag_text.data(), etag_len}; }
  std::string_view last_modified() const noexcept { return {modified.data(), modified.size()}; }
  bool same_as(const struct stat& st) const noexcept {
    return st.st_dev == dev && st.st_ino == ino && static_cast<std::uint64_t>(st.st_size) == size &&
           ns_of(st.st_mtim) == mtime_ns && ns_of(st.st_ctim) == ctime_ns;
  }
  static std::int64_t ns_of(const timespec& t) noexcept {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  }
};
using rep_ptr = std::shared_ptr<const representation>;

struct entry {
  found what = found::missing;
  fs::path real;  // the file, or the directory to list
  rep_ptr plain, br, gz;
  clock::time_point checked{};
  std::uint64_t used = 0;
};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

struct file_cache {
  std::unordered_map<std::string, entry, string_hash, std::equal_to<>> entries;
  std::uint64_t tick = 0;
};

// The caches of one scheduler thread, one per static_files state.
struct file_caches {
  std::vector<std::pair<std::uint64_t, std::unique_ptr<file_cache>>> by_owner;
  file_cache& of(std::uint64_t owner) {
    for (auto& [id, cache] : by_owner) {
      if (id == owner) return *cache;
    }
    by_owner.emplace_back(owner, std::make_unique<file_cache>());
    return *by_owner.back().second;
  }
};

std::atomic<std::uint64_t> g_next_owner{1};

}  // namespace

struct static_files::state {
  fs::path root;
  static_options o;
  std::uint64_t id = g_next_owner.fetch_add(1);
};

namespace {

using state = static_files::state;

// Opens `path` (whose stat was `st`) as a representation, or reuses `old` if the file is the
// same. Returns nullptr with `err` set when it cannot be opened.
rep_ptr load(const state& s, const fs::path& path, const struct stat& st, const rep_ptr& old,
             std::string_view mime, std::string_view tag_suffix, int& err) {
  if (old && old->same_as(st)) return old;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    err = errno;
    return nullptr;
  }
  if (in_reserve(fd)) {
    ::close(fd);
    err = EMFILE;
    return nullptr;
  }
  auto rep = std::make_shared<representation>();
  rep->fd = fd;
  struct stat fst {};
  if (::fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
    err = ENOENT;
    return nullptr;
  }
  rep->size = static_cast<std::uint64_t>(fst.st_size);
  rep->dev = fst.st_dev;
  rep->ino = fst.st_ino;
  rep->mtime_ns = representation::ns_of(fst.st_mtim);
  rep->ctime_ns = representation::ns_of(fst.st_ctim);
  rep->mtime = fst.st_mtim.tv_sec;
  rep->path = path.string();
  rep->mime = mime;
  const auto tag = fmt::format_to_n(rep->etag_text.data(), rep->etag_text.size(), "\"{:x}-{:x}{}\"",
                                    rep->mtime_ns, rep->size, tag_suffix);
  rep->etag_len = static_cast<std::uint8_t>(std::min(tag.size, rep->etag_text.size()));
  format_http_date(rep->mtime, rep->modified);
  if (rep->size <= s.o.in_memory) {
    rep->bytes.resize(rep->size);
    std::size_t got = 0;
    while (got < rep->size) {
      const ssize_t n =
          ::pread(fd, rep->bytes.data() + got, rep->size - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    rep->bytes.resize(got);  // a file that shrank meanwhile: what was there
    rep->size = got;
    rep->in_memory = true;
    ::close(rep->fd);
    rep->fd = -1;
  }
  return rep;
}

// A precompressed sibling of `plain` (`.br`, `.gz`), if there is one under the root.
rep_ptr sibling(const state& s, const fs::path& plain, std::string_view ext, const rep_ptr& old,
                std::string_view mime, std::string_view tag_suffix) {
  fs::path p = plain;
  p += ext;
  std::error_code ec;
  const fs::path real = fs::canonical(p, ec);
  if (ec || !under(s.root, real)) return nullptr;
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  int err = 0;
  return load(s, real, st, old, mime, tag_suffix, err);
}

void log_fault(const state&, std::string_view path, int err, unsigned status) {
  log(log_level::warn, "static", "{}: {} ({})", path, std::generic_category().message(err), status);
}

// Brings the entry for `key` up to date (made, checked again, or dropped). Returns null when
// the answer is not to be cached (out of descriptors): then `what` says so.
entry* refresh(const state& s, file_cache& cache, std::string_view key, entry* e,
               clock::time_point now, found& what, int& err) {
  resolution r = resolve(s.root, key, s.o.index, s.o.autoindex, false);
  what = r.what;
  err = r.err;
  rep_ptr plain, br, gz;
  if (r.what == found::file) {
    struct stat st {};
    if (::stat(r.real.c_str(), &st) != 0) {
      err = errno;
      what = from_errno(err);
    } else {
      const std::string_view mime = s.o.mime.find(r.real.native());
      plain = load(s, r.real, st, e != nullptr ? e->plain : nullptr, mime, "", err);
      if (!plain) {
        what = from_errno(err);
      } else if (s.o.precompressed) {
        br = sibling(s, r.real, ".br", e != nullptr ? e->br : nullptr, mime, "-br");
        gz = sibling(s, r.real, ".gz", e != nullptr ? e->gz : nullptr, mime, "-gz");
      }
    }
  }
  if (what == found::forbidden || what == found::exhausted) {
    log_fault(s, (r.real.empty() ? fs::path(key) : r.real).native(), err,
              what == found::forbidden ? 403 : 503);
  }
  if (what == found::exhausted) return nullptr;  // try again at the next request
  if (e == nullptr) {
    if (cache.entries.size() >= std::max<std::size_t>(s.o.cache_entries, 1)) {
      // Full: the least recently used quarter goes in one pass, so a stream of misses (a
      // client asking for random paths) costs O(1) per miss, not a scan of the cache each.
      std::vector<std::uint64_t> used;
      used.reserve(cache.entries.size());
      for (const auto& [k, v] : cache.entries)
        used.push_back(v.used);
      const auto cut = used.begin() + static_cast<std::ptrdiff_t>(used.size() / 4);
      std::nth_element(used.begin(), cut, used.end());
      const std::uint64_t oldest_kept = *cut;
      std::erase_if(cache.entries, [&](const auto& kv) { return kv.second.used <= oldest_kept; });
    }
    e = &cache.entries.emplace(std::string(key), entry{}).first->second;
  }
  e->what = what;
  e->real = std::move(r.real);
  e->plain = std::move(plain);
  e->br = std::move(br);
  e->gz = std::move(gz);
  e->checked = now;
  return e;
}

// How much `accept` (an Accept-Encoding value) wants `coding`, in thousandths; -1 if it does
// not say (neither the coding nor "*").
int wanted(std::string_view accept, std::string_view coding) noexcept {
  int star = -1;
  std::size_t i = 0;
  while (i < accept.size()) {
    std::size_t end = accept.find(',', i);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view item = accept.substr(i, end - i);
    i = end + 1;
    std::string_view params;
    if (const std::size_t semi = item.find(';'); semi != std::string_view::npos) {
      params = item.substr(semi + 1);
      item = item.substr(0, semi);
    }
    const auto trim = [](std::string_view v) {
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
      return v;
    };
    item = trim(item);
    int q = 1000;
    params = trim(params);
    if (params.size() >= 2 && (params[0] == 'q' || params[0] == 'Q') && params[1] == '=') {
      const std::string_view v = trim(params.substr(2));
      q = 0;
      if (!v.empty() && v[0] == '1') {
        q = 1000;
      } else if (v.size() >= 2 && v[0] == '0' && v[1] == '.') {
        int scale = 100;
        for (std::size_t k = 2; k < v.size() && k < 5 && v[k] >= '0' && v[k] <= '9'; ++k) {
          q += (v[k] - '0') * scale;
          scale /= 10;
        }
      }
    }
    if (iequals(item, coding)) return q;
    if (item == "*") star = q;
  }
  return star;
}

struct chosen {
  const rep_ptr* rep = nullptr;
  std::string_view encoding;  // "" for the plain file
};

chosen choose(const entry& e, const request& req) {
  chosen c{&e.plain, {}};
  if (!e.br && !e.gz) return c;
  const std::string_view accept = req.headers().get("Accept-Encoding");
  if (accept.empty()) return c;
  const int br = e.br ? wanted(accept, "br") : -1;
  const int gz = e.gz ? wanted(accept, "gzip") : -1;
  if (br > 0 && br >= gz) return {&e.br, "br"};
  if (gz > 0) return {&e.gz, "gzip"};
  return c;
}

std::string_view cache_control_for(const state& s, std::string_view path) noexcept {
  for (const auto& [prefix, value] : s.o.cache_control) {  // longest prefix first
    if (path.substr(0, prefix.size()) == prefix) return value;
  }
  return {};
}

// --- answers -------------------------------------------------------------------------------

task<> plain_answer(connection& c, request& req, unsigned status, std::string_view text) {
  co_await respond(c, req, status, "text/plain; charset=utf-8", text);
}

// A 403 or a 404: left to the caller when it asked for that (a non-null `deferred`, from
// static_files::answer_or_error), else a plain one.
task<> refuse(connection& c, request& req, unsigned status, std::string_view text,
              unsigned* deferred) {
  if (deferred != nullptr) {
    *deferred = status;
    co_return;
  }
  co_await plain_answer(c, req, status, text);
}

void html_escape(std::string& out, std::string_view s) {
  for (const char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
}

// An HTML listing of `dir`; false (with errno's value in err) if it cannot be read.
bool listing(const fs::path& dir, std::string_view shown, std::string& out, int& err) {
  struct item {
    std::string name;
    bool directory = false;
    std::uintmax_t size = 0;
    std::time_t mtime = 0;
  };
  std::vector<item> items;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    err = ec.value();
    return false;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    if (name.empty() || name.front() == '.') continue;  // hidden files stay hidden
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) continue;  // a dangling symlink
    items.push_back({std::move(name), S_ISDIR(st.st_mode), static_cast<std::uintmax_t>(st.st_size),
                     st.st_mtim.tv_sec});
  }
  if (ec) {
    err = ec.value();
    return false;
  }
  std::sort(items.begin(), items.end(), [](const item& a, const item& b) {
    return a.directory != b.directory ? a.directory : a.name < b.name;
  });
  out = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ";
  html_escape(out, shown);
  out += "</title></head>\n<body><h1>Index of ";
  html_escape(out, shown);
  out += "</h1>\n<table>\n<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n";
  std::array<char, 29> when{};
  for (const item& i : items) {
    std::string href;
    percent_encode(i.name, href);
    if (i.directory) href += '/';
    out += "<tr><td><a href=\"";
    out += href;
    out += "\">";
    html_escape(out, i.name);
    if (i.directory) out += '/';
    out += "</a></td><td>";
    out += i.directory ? std::string("-") : std::to_string(i.size);
    out += "</td><td>";
    out += format_http_date(i.mtime, when);
    out += "</td></tr>\n";
  }
  out += "</table>\n</body></html>\n";
  return true;
}

// Sends bytes [first, first + n) of `rep` as the next piece of the body.
task<bool> send_part(const state& s, connection& c, request& req, const representation& rep,
                     std::uint64_t first, std::uint64_t n) {
  if (rep.in_memory) {
    write_body(c, req, std::string_view(rep.bytes).substr(first, n));
    co_return true;
  }
  if (s.o.sendfile) {
    try {
      co_await send_file(c, req, rep.fd, first, n);
    } catch (const file_error& e) {
      log(log_level::warn, "static", "{}: {}; the connection was closed mid-body", rep.path,
          e.what());
      co_return false;
    }
    co_return true;
  }
  // Through the outbound buffer, a piece at a time.
  constexpr std::size_t k_piece = 64 * 1024;
  thread_local std::string scratch;
  if (scratch.size() < k_piece) scratch.resize(k_piece);
  while (n > 0) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, k_piece));
    const ssize_t got = ::pread(rep.fd, scratch.data(), want, static_cast<off_t>(first));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const int err = got < 0 ? errno : EIO;
      log(log_level::warn, "static", "{}: {}; the connection was closed mid-body", rep.path,
          got < 0 ? std::generic_category().message(err) : "the file shrank while being sent");
      c.abort(std::make_error_code(std::errc::io_error));
      co_return false;
    }
    co_await send_chunk(c, req, std::string_view(scratch.data(), static_cast<std::size_t>(got)));
    first += static_cast<std::uint64_t>(got);
    n -= static_cast<std::uint64_t>(got);
  }
  co_return true;
}

task<> serve_file(std::shared_ptr<const state> sp, connection& c, request& req,
                  unsigned* deferred) {
  const state& s = *sp;
  if (req.method() != "GET" && req.method() != "HEAD") {
    const headers::field allow[] = {{"Allow", "GET, HEAD"}};
    start_response(c, req, 405, "text/plain; charset=utf-8", 19, allow);
    write_body(c, req, "Method Not Allowed\n");
    co_await end_chunked(c, req);
    co_return;
  }
  const std::string_view target = req.target();
  const std::size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  if (path.substr(0, s.o.prefix.size()) != s.o.prefix) {
    co_await refuse(c, req, 404, "Not Found\n", deferred);
    co_return;
  }
  thread_local std::string key;  // its capacity stays: no malloc per request
  key.clear();
  if (!percent_decode(path.substr(s.o.prefix.size() - 1), key)) {
    co_await refuse(c, req, 404, "Not Found\n", deferred);
    co_return;
  }
  file_cache& cache = c.sched().local<file_caches>().of(s.id);
  const clock::time_point now = c.now();
  auto it = cache.entries.find(std::string_view(key));
  entry* e = it == cache.entries.end() ? nullptr : &it->second;
  found what = e != nullptr ? e->what : found::missing;
  if (e == nullptr || now - e->checked >= s.o.cache_valid) {
    int err = 0;
    e = refresh(s, cache, key, e, now, what, err);
  }
  if (e != nullptr) e->used = ++cache.tick;

  switch (what) {
    case found::missing:
      co_await refuse(c, req, 404, "Not Found\n", deferred);
      co_return;
    case found::forbidden:
      co_await refuse(c, req, 403, "Forbidden\n", deferred);
      co_return;
    case found::exhausted: {
      const http::fields retry{{"Retry-After", "1"}};
      co_await respond(c, req, 503, "text/plain; charset=utf-8", "Service Unavailable\n", retry);
      co_return;
    }
    case found::redirect: {
      std::string location(path);
      location += '/';
      if (q != std::string_view::npos) location += target.substr(q);
      co_await redirect(c, req, 301, location);
      co_return;
    }
    case found::listing: {
      std::string page;
      int err = 0;
      const fs::path dir = e->real;
      if (!listing(dir, path, page, err)) {
        const found why = from_errno(err);
        log_fault(s, dir.native(), err, why == found::exhausted ? 503 : 403);
        if (why == found::exhausted) {
          const http::fields retry{{"Retry-After", "1"}};
          co_await respond(c, req, 503, "text/plain; charset=utf-8", "Service Unavailable\n",
                           retry);
        } else {
          co_await refuse(c, req, 403, "Forbidden\n", deferred);
        }
        co_return;
      }
      co_await respond(c, req, 200, "text/html; charset=utf-8", page);
      co_return;
    }
    case found::file:
      break;
  }

  const chosen pick = choose(*e, req);
  const rep_ptr rep = *pick.rep;  // held until the body is sent
  const bool vary = e->br || e->gz;
  const std::string_view cache_control = cache_control_for(s, path);
  std::array<headers::field, 8> fields;
  std::size_t nf = 0;
  fields[nf++] = {"ETag", rep->etag()};
  fields[nf++] = {"Last-Modified", rep->last_modified()};
  if (!cache_control.empty()) fields[nf++] = {"Cache-Control", cache_control};
  if (vary) fields[nf++] = {"Vary", "Accept-Encoding"};
  if (!pick.encoding.empty()) fields[nf++] = {"Content-Encoding", pick.encoding};
  const std::size_t validators = nf;  // what a 304 carries

  // Preconditions (RFC 9110 13.2.2).
  const headers& h = req.headers();
  const std::string_view if_match = h.get("If-Match");
  if (!if_match.empty()) {
    if (!etag_matches(if_match, rep->etag(), false)) {
      co_await plain_answer(c, req, 412, "Precondition Failed\n");
      co_return;
    }
  } else if (const std::string_view ius = h.get("If-Unmodified-Since"); !ius.empty()) {
    const std::optional<std::time_t> t = parse_http_date(ius);
    if (t && rep->mtime > *t) {
      co_await plain_answer(c, req, 412, "Precondition Failed\n");
      co_return;
    }
  }
  bool not_modified = false;
  const std::string_view if_none_match = h.get("If-None-Match");
  if (!if_none_match.empty()) {
    not_modified = etag_matches(if_none_match, rep->etag(), true);
  } else if (const std::string_view ims = h.get("If-Modified-Since"); !ims.empty()) {
    const std::optional<std::time_t> t = parse_http_date(ims);
    not_modified = t && rep->mtime <= *t;
  }
  if (not_modified) {
    start_response(c, req, 304, {}, 0, std::span(fields.data(), validators));
    co_await end_chunked(c, req);
    co_return;
  }

  // Ranges.
  const std::uint64_t size = rep->size;
  std::array<byte_range, 64> ranges;
  range_request rr;
  if (const std::string_view range = h.get("Range"); !range.empty()) {
    bool applies = true;
    if (const std::string_view if_range = h.get("If-Range"); !if_range.empty()) {
      if (if_range.front() == '"' || if_range.substr(0, 2) == "W/") {
        applies = etag_matches(if_range, rep->etag(), false) && if_range.find(',') == if_range.npos;
      } else {
        const std::optional<std::time_t> t = parse_http_date(if_range);
        applies = t && *t == rep->mtime;
      }
    }
    if (applies) {
      const std::size_t most = std::min(ranges.size(), std::max<std::size_t>(s.o.max_ranges, 1));
      rr = parse_range(range, size, std::span(ranges.data(), most));
    }
  }
  if (rr.result == range_request::outcome::unsatisfiable) {
    std::array<char, 48> cr{};
    const auto end = fmt::format_to_n(cr.data(), cr.size(), "bytes */{}", size);
    fields[nf++] = {"Content-Range", std::string_view(cr.data(), end.size)};
    constexpr std::string_view text = "Range Not Satisfiable\n";
    start_response(c, req, 416, "text/plain; charset=utf-8", text.size(),
                   std::span(fields.data(), nf));
    write_body(c, req, text);
    co_await end_chunked(c, req);
    co_return;
  }
  fields[nf++] = {"Accept-Ranges", "bytes"};

  if (rr.result == range_request::outcome::whole) {
    start_response(c, req, 200, rep->mime, size, std::span(fields.data(), nf));
    const bool ok = co_await send_part(s, c, req, *rep, 0, size);
    if (ok) co_await end_chunked(c, req);
    co_return;
  }
  if (rr.count == 1) {
    const byte_range r = ranges[0];
    std::array<char, 64> cr{};
    const auto end =
        fmt::format_to_n(cr.data(), cr.size(), "bytes {}-{}/{}", r.first, r.last, size);
    fields[nf++] = {"Content-Range", std::string_view(cr.data(), end.size)};
    start_response(c, req, 206, rep->mime, r.last - r.first + 1, std::span(fields.data(), nf));
    const bool ok = co_await send_part(s, c, req, *rep, r.first, r.last - r.first + 1);
    if (ok) co_await end_chunked(c, req);
    co_return;
  }
  // Several ranges: multipart/byteranges (RFC 9110 14.6).
  // The boundary follows the version sent (the same request gets the same bytes).
  std::array<char, 24> boundary_text{};
  const auto bend = fmt::format_to_n(boundary_text.data(), boundary_text.size(), "lancer{:016x}",
                                     std::hash<std::string_view>{}(rep->etag()));
  const std::string_view boundary(boundary_text.data(), bend.size);
  const auto part_head = [&](std::span<char> out, const byte_range& r) {
    const auto end =
        fmt::format_to_n(out.data(), out.size(),
                         "\r\n--{}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                         boundary, rep->mime, r.first, r.last, size);
    return end.size;
  };
  std::array<char, 512> head{};
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < rr.count; ++i)
    total += part_head(head, ranges[i]) + (ranges[i].last - ranges[i].first + 1);
  const std::string closing = fmt::format("\r\n--{}--\r\n", boundary);
  total += closing.size();
  const std::string type = fmt::format("multipart/byteranges; boundary={}", boundary);
  start_response(c, req, 206, type, total, std::span(fields.data(), nf));
  for (std::size_t i = 0; i < rr.count; ++i) {
    const std::size_t n = std::min(part_head(head, ranges[i]), head.size());
    write_body(c, req, std::string_view(head.data(), n));
    const bool ok =
        co_await send_part(s, c, req, *rep, ranges[i].first, ranges[i].last - ranges[i].first + 1);
    if (!ok) co_return;
  }
  write_body(c, req, closing);
  co_await end_chunked(c, req);
}

// serve_file for answer_or_error: a 403 or 404 is returned, not sent.
task<unsigned> serve_or_defer(std::shared_ptr<const state> sp, connection& c, request& req) {
  unsigned deferred = 0;
  co_await serve_file(std::move(sp), c, req, &deferred);
  co_return deferred;
}

}  // namespace

static_files::static_files(const fs::path& root, static_options options) {
  auto s = std::make_shared<state>();
  std::error_code ec;
  s->root = fs::canonical(root, ec);
  if (ec || !fs::is_directory(s->root, ec)) {
    throw std::system_error(ec ? ec : std::make_error_code(std::errc::not_a_directory),
                            "static_files: " + root.string());
  }
  if (options.prefix.empty() || options.prefix.front() != '/' || options.prefix.back() != '/') {
    throw std::invalid_argument("static_files: the prefix must start and end with '/': \"" +
                                options.prefix + "\"");
  }
  for (const auto& [prefix, value] : options.cache_control) {
    http::fields check;
    check.add("Cache-Control", value);  // throws std::invalid_argument for a bad value
  }
  std::stable_sort(options.cache_control.begin(), options.cache_control.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  s->o = std::move(options);
  state_ = std::move(s);
}

task<> static_files::operator()(connection& c, request& req) const {
  return serve_file(state_, c, req, nullptr);
}

task<unsigned> static_files::answer_or_error(connection& c, request& req) const {
  return serve_or_defer(state_, c, req);  // the state by value: `*this` may go meanwhile
}

const fs::path& static_files::root() const noexcept {
  return state_->root;
}

const static_options& static_files::options() const noexcept {
  return state_->o;
}

}  // namespace lancer::http
