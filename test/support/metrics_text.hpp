// Reads Prometheus text exposition format 0.0.4 back, checking it as it goes: what a scrape
// of http::metrics must parse as.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lancer_test {

struct exposition {
  std::map<std::string, std::string> types;    // family -> counter, gauge, histogram, ...
  std::map<std::string, std::string> samples;  // "name{labels}" -> the value as written
  std::vector<std::string> order;              // the samples' series, in order

  // The value of `series` ("name" or "name{labels}"); fails the test if it is not there.
  double value(const std::string& series) const {
    const auto it = samples.find(series);
    if (it == samples.end()) {
      FAIL_CHECK("no sample " << series);
      return -1;
    }
    return std::strtod(it->second.c_str(), nullptr);
  }
  std::string text(const std::string& series) const {
    const auto it = samples.find(series);
    return it == samples.end() ? "" : it->second;
  }
};

namespace detail {

inline bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

inline bool valid_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    if (!name_char(n[i], i == 0)) return false;
  }
  return true;
}

// Checks `{a="x",b="y"}` (no escapes are needed by lancer's labels); returns le's value.
inline bool valid_labels(std::string_view l, std::string& le) {
  if (l.size() < 2 || l.front() != '{' || l.back() != '}') return false;
  l = l.substr(1, l.size() - 2);
  while (!l.empty()) {
    const std::size_t eq = l.find('=');
    if (eq == std::string_view::npos || !valid_name(l.substr(0, eq))) return false;
    if (eq + 1 >= l.size() || l[eq + 1] != '"') return false;
    const std::size_t close = l.find('"', eq + 2);
    if (close == std::string_view::npos) return false;
    if (l.substr(0, eq) == "le") le = std::string(l.substr(eq + 2, close - eq - 2));
    l.remove_prefix(close + 1);
    if (!l.empty()) {
      if (l.front() != ',') return false;
      l.remove_prefix(1);
    }
  }
  return true;
}

inline bool valid_value(const std::string& v) {
  if (v == "+Inf" || v == "-Inf" || v == "NaN") return true;
  char* end = nullptr;
  std::strtod(v.c_str(), &end);
  return !v.empty() && end == v.c_str() + v.size();
}

}  // namespace detail

// Parses `text`, checking: each line is a HELP, a TYPE or a sample `name{labels} value`; a
// family's HELP and TYPE come once each, before its samples, which are contiguous; the names
// and labels are well formed; a histogram's buckets have ascending bounds ending in +Inf,
// cumulative counts, and +Inf equal to _count; the text ends with a newline.
inline exposition parse_exposition(std::string_view text) {
  exposition e;
  CHECK((text.empty() || text.back() == '\n'));
  std::set<std::string> helped, done;
  std::string current;  // the family whose samples are being read
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // family -> (le, n)
  std::size_t from = 0;
  while (from < text.size()) {
    const std::size_t nl = text.find('\n', from);
    const std::string line(text.substr(from, nl - from));
    from = nl == std::string_view::npos ? text.size() : nl + 1;
    CAPTURE(line);
    if (line.starts_with("# HELP ")) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      CHECK(detail::valid_name(name));
      CHECK(helped.insert(name).second);
      CHECK(line.size() > 8 + name.size());  // some help text
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      const std::size_t sp = line.find(' ', 7);
      REQUIRE(sp != std::string::npos);
      const std::string name = line.substr(7, sp - 7);
      const std::string type = line.substr(sp + 1);
      CHECK(helped.count(name) == 1);  // HELP first
      CHECK(e.types.count(name) == 0);
      CHECK((type == "counter" || type == "gauge" || type == "histogram" || type == "summary" ||
             type == "untyped"));
      e.types[name] = type;
      if (!current.empty()) done.insert(current);
      current = name;
      continue;
    }
    REQUIRE_MESSAGE(!line.starts_with("#"), "a comment that is neither HELP nor TYPE");
    const std::size_t sp = line.rfind(' ');
    REQUIRE(sp != std::string::npos);
    const std::string series = line.substr(0, sp);
    const std::string value = line.substr(sp + 1);
    CHECK(detail::valid_value(value));
    const std::size_t brace = series.find('{');
    const std::string name = series.substr(0, brace);
    CHECK(detail::valid_name(name));
    std::string le;
    if (brace != std::string::npos) CHECK(detail::valid_labels(series.substr(brace), le));
    // The family: the name itself, or a histogram's name before _bucket, _sum or _count.
    std::string fam = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (!e.types.count(fam) && name.ends_with(s) &&
          e.types.count(name.substr(0, name.size() - s.size())))
        fam = name.substr(0, name.size() - s.size());
    }
    REQUIRE_MESSAGE(e.types.count(fam) == 1, "a sample before its family's TYPE");
    CHECK(fam == current);  // contiguous, under its own TYPE
    CHECK(done.count(fam) == 0);
    CHECK(e.samples.count(series) == 0);
    e.samples[series] = value;
    e.order.push_back(series);
    if (e.types[fam] == "histogram" && name == fam + "_bucket") {
      REQUIRE(!le.empty());
      const double bound = le == "+Inf" ? 1e308 : std::strtod(le.c_str(), nullptr);
      buckets[fam].emplace_back(bound, std::strtod(value.c_str(), nullptr));
    }
  }
  for (const auto& [fam, list] : buckets) {
    CAPTURE(fam);
    REQUIRE(!list.empty());
    for (std::size_t i = 1; i < list.size(); ++i) {
      CHECK(list[i].first > list[i - 1].first);     // ascending bounds
      CHECK(list[i].second >= list[i - 1].second);  // cumulative
    }
    CHECK(list.back().first == 1e308);  // +Inf last
    CHECK(e.text(fam + "_bucket{le=\"+Inf\"}") == e.text(fam + "_count"));
    CHECK(e.samples.count(fam + "_sum") == 1);
  }
  return e;
}

}  // namespace lancer_test
