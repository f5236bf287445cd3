// libFuzzer target, differential: any bytes, sent to a server running httputil whole, in the
// fragments the input chooses, and cut at a point it chooses, must get byte-identical answers
// (Date values and interim 100 Continue aside: see lancer_test::comparable). Every answer
// must also be well formed, and no connection may outlive its deadlines. ASan and UBSan
// watch for the rest.
//
//   scripts/test runs it for a fixed number of inputs; by hand:
//   build/fuzz/test/fuzz/http_fuzz -max_total_time=60 test/fuzz/corpus/http
//
// Besides lancer_test::http_app, paths under /s/ are static files (http::static_files, with
// a directory listing, a precompressed sibling and a file above the in-memory size), so the
// Range, If-* and Accept-Encoding parsing gets the fuzzer's bytes too; the corpus has seeds
// for them.
//
// Input: byte 0 picks the fragment size (1..32 bytes, or 0 for no fragments); bytes 1 and 2
// pick a cut point; the rest is what the client sends, after which it half-closes.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "http_app.hpp"
#include "lancer/http/files.hpp"
#include "lancer/log.hpp"

namespace http = lancer::http;

namespace {

[[noreturn]] void fail(const char* what, const std::string& a, const std::string& b) {
  std::fprintf(stderr, "http_fuzz: %s\n--- whole (%zu bytes):\n%s\n--- other (%zu bytes):\n%s\n",
               what, a.size(), a.c_str(), b.size(), b.c_str());
  __builtin_trap();
}

// Checks that `out` is a sequence of whole HTTP/1.1 responses, each with a status line, a
// header block and Content-Length body bytes (none for HEAD; the app sends no other framing).
void check_well_formed(const std::string& out) {
  std::string_view rest = out;
  while (!rest.empty()) {
    if (rest.substr(0, 9) != "HTTP/1.1 " || rest.size() < 12) fail("bad status line", out, "");
    const std::size_t end = rest.find("\r\n\r\n");
    if (end == std::string_view::npos) fail("unterminated response head", out, "");
    const std::string_view head = rest.substr(0, end + 2);
    const std::size_t cl = head.find("\r\nContent-Length: ");
    std::uint64_t length = 0;
    if (cl != std::string_view::npos) {
      for (std::size_t i = cl + 18; i < head.size() && head[i] != '\r'; ++i)
        length = length * 10 + static_cast<std::uint64_t>(head[i] - '0');
    }
    rest.remove_prefix(end + 4);
    // An answer to HEAD has a Content-Length and no body: then the next response (or the
    // end) follows the head at once.
    const bool next_at_once = rest.empty() || rest.substr(0, 9) == "HTTP/1.1 ";
    if (rest.size() >= length && (rest.size() == length || rest.substr(length, 9) == "HTTP/1.1 ")) {
      rest.remove_prefix(length);
    } else if (!next_at_once) {
      fail("a body that does not match its Content-Length", out, "");
    }
  }
}

// A small tree of files with fixed times, made once per process and removed at its exit.
struct static_tree {
  std::filesystem::path root;
  std::unique_ptr<http::static_files> files;
  static_tree() {
    namespace fs = std::filesystem;
    root = fs::temp_directory_path() / ("lancer-http-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "dir");
    const auto put = [&](const fs::path& p, const std::string& bytes) {
      std::ofstream(p, std::ios::binary) << bytes;
      const timespec times[2] = {{784111777, 0}, {784111777, 0}};
      ::utimensat(AT_FDCWD, p.c_str(), times, 0);
    };
    put(root / "a.txt", "0123456789");
    put(root / "app.js", "plain();");
    put(root / "app.js.gz", "GZ");
    put(root / "dir" / "x y.txt", "x");
    std::string big(20000, 'b');
    for (std::size_t i = 0; i < big.size(); i += 97)
      big[i] = static_cast<char>('a' + i % 26);
    put(root / "big.bin", big);
    http::static_options o;
    o.prefix = "/s/";
    o.autoindex = true;
    o.in_memory = 4096;  // big.bin is sent from its descriptor
    o.cache_control = {{"/s/dir/", "no-cache"}};
    files = std::make_unique<http::static_files>(root, o);
  }
  ~static_tree() { std::filesystem::remove_all(root); }
};

lancer::task<> fuzz_app(lancer::connection& c, http::request& req, lancer::frame& f,
                        lancer::pubframe& p) {
  static const static_tree tree;
  if (req.target().substr(0, 3) == "/s/") return (*tree.files)(c, req);
  return lancer_test::http_app(c, req, f, p);
}

// The whole input through a server, checking that no connection outlives its deadlines.
std::string run_whole_checked(std::string_view input, const http::limits& lim) {
  return lancer_test::run_server_split(
      http::serve(fuzz_app, lim), input, {}, [](lancer::scheduler& sched, lancer::server& srv) {
        sched.advance(std::chrono::minutes(5));        // past every timeout, grace and linger
        if (srv.connections() != 0) __builtin_trap();  // a connection outlived every deadline
      });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  lancer::set_log_level(lancer::log_level::off);
  if (size < 3) return 0;
  const std::size_t fragment = data[0] % 33;
  const std::size_t cut_at = static_cast<std::size_t>(data[1]) << 8 | data[2];
  const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);
  http::limits lim;
  lim.body = 4096;

  const std::string whole = run_whole_checked(input, lim);
  check_well_formed(whole);
  if (fragment != 0) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = fragment; at < input.size(); at += fragment)
      cuts.push_back(at);
    const std::string pieces = lancer_test::run_app_split(fuzz_app, input, cuts, lim);
    if (pieces != whole) fail("fragments answered differently", whole, pieces);
  }
  if (!input.empty()) {
    const std::size_t cut[] = {cut_at % input.size()};
    const std::string two = lancer_test::run_app_split(fuzz_app, input, cut, lim);
    if (two != whole) fail("two pieces answered differently", whole, two);
  }
  return 0;
}
