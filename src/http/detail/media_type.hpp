// The media type of a Content-Type value, for the body readers (json, form). Private to src/.
#pragma once

#include <string_view>

#include "lancer/http/headers.hpp"

namespace lancer::http::detail {

// `type/subtype` of a Content-Type value, its parameters (`; charset=utf-8`) and the
// whitespace around it dropped: "Application/JSON; charset=utf-8" -> "Application/JSON".
inline std::string_view media_type_of(std::string_view content_type) noexcept {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t'))
    t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t'))
    t.remove_suffix(1);
  return t;
}

// Whether `content_type` names the media type `type` (case-insensitively), with any parameters.
inline bool media_type_is(std::string_view content_type, std::string_view type) noexcept {
  return iequals(media_type_of(content_type), type);
}

}  // namespace lancer::http::detail
