// Static files for httputil: answers GET and HEAD from a directory.
//
// The target's path is percent-decoded and split into segments; a path that would leave the
// root (`..`, `%2e%2e`, a NUL, a symlink pointing outside) is answered 404, exactly as a
// missing file is, so nothing about the outside is revealed. A directory is served by its
// `index.html`. Other methods get 405 with `Allow: GET, HEAD`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "lancer/core/connection.hpp"
#include "lancer/http/request.hpp"
#include "lancer/sched/task.hpp"

namespace lancer::http {

// The Content-Type for a file name, by its extension ("index.html" -> "text/html;
// charset=utf-8"); "application/octet-stream" when unknown.
std::string_view mime_type(std::string_view file_name) noexcept;

// Decodes %XX escapes in a URL path (not '+'): url.hpp's percent_decode into a new string.
// Returns nullopt for a malformed escape or a NUL, encoded or raw.
std::optional<std::string> percent_decode(std::string_view path);

// The file under `root` that `target` names, or nullopt if there is none or it would leave
// the root. `root` must be an absolute, canonical path (see std::filesystem::canonical).
std::optional<std::filesystem::path> resolve_under(const std::filesystem::path& root,
                                                   std::string_view target);

// Answers `req` from the files under `root` (canonical): 200 with the file, 404, or 405.
task<> respond_file(connection& c, request& req, const std::filesystem::path& root);

}  // namespace lancer::http
