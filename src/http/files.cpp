#include "lancer/http/files.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <system_error>

#include "lancer/http/headers.hpp"
#include "lancer/http/httputil.hpp"
#include "lancer/http/url.hpp"

namespace lancer::http {

namespace fs = std::filesystem;

std::string_view mime_type(std::string_view name) noexcept {
  struct entry {
    std::string_view ext, type;
  };
  static constexpr entry k_types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css"},
      {".js", "text/javascript"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".ico", "image/x-icon"},
      {".webp", "image/webp"},
      {".wasm", "application/wasm"},
      {".pdf", "application/pdf"},
      {".xml", "application/xml"},
  };
  const std::size_t dot = name.rfind('.');
  if (dot != std::string_view::npos) {
    for (const entry& e : k_types) {
      if (iequals(name.substr(dot), e.ext)) return e.type;
    }
  }
  return "application/octet-stream";
}

std::optional<std::string> percent_decode(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  if (!percent_decode(path, out)) return std::nullopt;  // url.hpp's: bad escapes, NUL
  return out;
}

std::optional<fs::path> resolve_under(const fs::path& root, std::string_view target) {
  std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (path.empty() || path.front() != '/') return std::nullopt;
  const std::optional<std::string> decoded = percent_decode(path);
  if (!decoded || decoded->find('\0') != std::string::npos) return std::nullopt;
  fs::path p = root;
  std::string_view rest = *decoded;
  while (!rest.empty()) {
    const std::size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (seg == "..") return std::nullopt;  // never climb, even where it would stay inside
    if (!seg.empty() && seg != "." && seg.find('\\') == std::string_view::npos) p /= seg;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "index.html";
  // Symlinks are followed, then the real path must still be under the root.
  const fs::path real = fs::canonical(p, ec);
  if (ec || !fs::is_regular_file(real, ec)) return std::nullopt;
  const auto [r, _] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (r != root.end()) return std::nullopt;
  return real;
}

task<> respond_file(connection& c, request& req, const fs::path& root) {
  if (req.method() != "GET" && req.method() != "HEAD") {
    const http::fields allow{{"Allow", "GET, HEAD"}};
    co_await respond(c, req, 405, "text/plain", "Method Not Allowed\n", allow);
    co_return;
  }
  const std::optional<fs::path> file = resolve_under(root, req.target());
  std::string body;
  bool found = false;
  if (file) {
    std::ifstream in(*file, std::ios::binary);
    if (in) {
      body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      found = !in.bad();
    }
  }
  if (!found) {
    co_await respond(c, req, 404, "text/plain", "Not Found\n");
    co_return;
  }
  co_await respond(c, req, 200, mime_type(file->filename().string()), body);
}

}  // namespace lancer::http
