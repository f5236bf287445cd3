// Handler modules: loading, reloading a changed file while a request runs on the old code,
// unloading after the last reference, and the errors (a throwing registration, another ABI,
// no entry point, a truncated file, a missing one), with the test modules of http/modules/
// served over the fake source.
#include <doctest/doctest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lancer/http/module.hpp"
#include "lancer/http/test_client.hpp"

namespace http = lancer::http;
namespace fs = std::filesystem;
using lancer::task;

namespace {

// The built test modules, copied into a directory of the test's own (removed at its end).
struct module_dir {
  fs::path dir;
  module_dir() {
    dir = fs::temp_directory_path() / ("lancer_module_tests." + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~module_dir() { fs::remove_all(dir); }
  module_dir(const module_dir&) = delete;
  module_dir& operator=(const module_dir&) = delete;

  static fs::path built(std::string_view name) {
    return fs::path(LANCER_TEST_MODULES_DIR) / ("lib" + std::string(name) + ".so");
  }
  // Puts the built module `name` at `as` in the directory the way a deployment should: written
  // beside it, then renamed over it.
  fs::path install(std::string_view name, std::string_view as) const {
    const fs::path to = dir / as;
    const fs::path tmp = dir / (std::string(as) + ".new");
    fs::copy_file(built(name), tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, to);
    return to;
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// How many copies of a module loaded from a file called `file_name` are mapped now: the
// distinct memfds named after it in /proc/self/maps.
std::size_t copies_mapped(std::string_view file_name) {
  const std::string needle = "/memfd:lancer-module:" + std::string(file_name) + " ";
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> inodes;
  for (std::string line; std::getline(maps, line);) {
    if (line.find(needle) == std::string::npos) continue;
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode;
    fields >> range >> perms >> offset >> device >> inode;
    inodes.insert(device + ":" + inode);
  }
  return inodes.size();
}

// Routes built with some modules, as a server swaps them: the handler goes before the modules
// (members are destroyed in reverse order), since the handler holds their code.
struct generation {
  std::vector<std::shared_ptr<const http::loaded_module>> modules;
  lancer::server::handler handler;
};

std::shared_ptr<generation> make_generation(
    std::vector<std::shared_ptr<const http::loaded_module>> modules) {
  auto g = std::make_shared<generation>();
  http::router app;
  app.get("/own", [](http::context& x) { return x.respond(200, "text/plain", "own\n"); });
  for (const auto& m : modules) {
    http::module_registry reg{app, app.any()};
    m->register_into(reg);
  }
  g->modules = std::move(modules);
  g->handler = app.handler();
  return g;
}

// A connection keeps the generation it started on until it ends.
task<> serve_on(std::shared_ptr<generation> g, lancer::connection& c, lancer::frame& f,
                lancer::pubframe& p) {
  co_await g->handler(c, f, p);
}

// A server on the current generation; each request closes its connection, so the next one
// starts on the generation current then.
struct swapping_server {
  std::shared_ptr<generation> current;
  http::test_client client{[this](lancer::connection& c, lancer::frame& f, lancer::pubframe& p) {
    return serve_on(current, c, f, p);
  }};

  http::test_response get(std::string_view target) {
    http::fields close;
    close.add("Connection", "close");
    return client.get(target, close);
  }
};

std::string error_of(const fs::path& file) {
  try {
    (void)http::load_module(file);
  } catch (const http::module_error& e) {
    return e.what();
  }
  return "(loaded)";
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace

TEST_CASE("a module's routes and middleware serve through the router it registered into") {
  const module_dir d;
  const fs::path file = d.install("greeter_v1", "greeter.so");
  const auto m = http::load_module(file);
  CHECK(m->path() == file);
  CHECK(!m->changed_on_disk());
  CHECK(m->state() == http::file_state_of(file));
  swapping_server s;
  s.current = make_generation({m});
  const auto r = s.get("/greet");
  CHECK(r.status == 200);
  CHECK(r.body == "greeter v1\n");
  CHECK(r.header("X-Greeter") == "v1");
  CHECK(s.get("/own").header("X-Greeter") == "v1");  // its use() wraps the program's routes too
  CHECK(s.get("/own").body == "own\n");
}

TEST_CASE("a module mounted on a named host serves that host only") {
  const module_dir d;
  const auto m = http::load_module(d.install("greeter_v1", "greeter.so"));
  http::router app;
  app.get("/", [](http::context& x) { return x.respond(200, "text/plain", "any\n"); });
  http::module_registry reg{app, app.host("mod.test")};
  m->register_into(reg);
  http::test_client t{app.handler()};
  http::fields host;
  host.add("Host", "mod.test");
  CHECK(t.get("/greet", host).body == "greeter v1\n");
  CHECK(t.get("/greet").status == 404);
}

TEST_CASE(
    "a changed file loads as new code; a request in flight finishes on the old, which "
    "is unloaded after it") {
  const module_dir d;
  const fs::path file = d.install("greeter_v1", "greeter.so");
  swapping_server s;
  s.current = make_generation({http::load_module(file)});
  CHECK(s.get("/greet").body == "greeter v1\n");
  CHECK(copies_mapped("greeter.so") == 1);

  // A request on v1 whose handler waits for the rest of its body.
  lancer::fake_client slow = s.client.source().connect();
  CHECK(slow.exchange("POST /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Content-Length: 5\r\n\r\nab")
            .empty());

  // v2 replaces the file; the server loads it and swaps its routes.
  auto v1 = s.current->modules.front();
  CHECK(!v1->changed_on_disk());
  d.install("greeter_v2", "greeter.so");
  CHECK(v1->changed_on_disk());
  const auto v2 = http::load_module(file);
  CHECK(!v2->changed_on_disk());
  s.current = make_generation({v2});
  const auto r = s.get("/greet");
  CHECK(r.body == "greeter v2\n");
  CHECK(r.header("X-Greeter") == "v2");
  CHECK(copies_mapped("greeter.so") == 2);

  // The test's reference to v1 goes: the request in flight still holds it.
  const std::weak_ptr<const http::loaded_module> v1_weak = v1;
  v1.reset();
  CHECK(!v1_weak.expired());
  CHECK(copies_mapped("greeter.so") == 2);
  const std::string answer = slow.exchange("cde");
  CHECK(contains(answer, "\r\nX-Greeter: v1\r\n"));
  CHECK(answer.substr(answer.find("\r\n\r\n") + 4) == "v1 got abcde");
  CHECK(v1_weak.expired());
  CHECK(copies_mapped("greeter.so") == 1);  // v1's copy is unloaded
  CHECK(s.get("/greet").body == "greeter v2\n");
}

TEST_CASE("a module that throws at registration is refused, and the previous version serves on") {
  const module_dir d;
  const fs::path file = d.install("greeter_v1", "app.so");
  swapping_server s;
  s.current = make_generation({http::load_module(file)});

  d.install("throws_always", "app.so");
  const std::string e = error_of(file);
  CHECK(contains(e, file.string()));
  CHECK(contains(e, "registration failed: refusing to register, as told"));
  CHECK(copies_mapped("app.so") == 1);  // the refused copy is unloaded again
  CHECK(s.get("/greet").body == "greeter v1\n");
  s.current = make_generation({s.current->modules});  // rebuilt with the version it had
  CHECK(s.get("/greet").body == "greeter v1\n");

  // One that throws only when registered again: register_into gives the module_error.
  d.install("throws_later", "app.so");
  const auto later = http::load_module(file);
  http::router app;
  http::module_registry reg{app, app.any()};
  try {
    later->register_into(reg);
    FAIL("register_into did not throw");
  } catch (const http::module_error& x) {
    CHECK(contains(x.what(), file.string()));
    CHECK(contains(x.what(), "refusing to register, as told"));
  }
}

TEST_CASE(
    "a module built for another ABI, without an entry point or with a symbol missing is refused") {
  const module_dir d;
  const std::string abi = error_of(d.install("bad_abi", "bad_abi.so"));
  CHECK(contains(abi, "bad_abi.so"));
  CHECK(contains(abi, "built for module ABI " + std::to_string(http::module_abi + 1000) +
                          ", this program has ABI " + std::to_string(http::module_abi)));
  const std::string none = error_of(d.install("no_entry", "no_entry.so"));
  CHECK(contains(none, "no entry point (lancer_module_entry)"));
  const std::string undefined = error_of(d.install("undefined", "undefined.so"));
  CHECK(contains(undefined,
                 "undefined.so: cannot load: undefined symbol: lancer_test_defined_nowhere"));
  CHECK(!contains(undefined, "/proc/self/fd"));
  CHECK(copies_mapped("bad_abi.so") == 0);
  CHECK(copies_mapped("no_entry.so") == 0);
}

TEST_CASE("a truncated file, a file that is no ELF, a directory and a missing file are refused") {
  const module_dir d;
  const std::string whole = read_file(module_dir::built("greeter_v1"));
  REQUIRE(whole.size() > 4096);
  const fs::path cut = d.dir / "cut.so";
  // Cut everywhere from the ELF header to the last byte: every one is refused, none crashes.
  std::vector<std::size_t> sizes{0, 1, 4, 16, 63, 64, 65, 200, whole.size() - 1};
  for (std::size_t n = 128; n < whole.size(); n += whole.size() / 53)
    sizes.push_back(n);
  for (const std::size_t n : sizes) {
    CAPTURE(n);
    write_file(cut, std::string_view(whole).substr(0, n));
    const std::string e = error_of(cut);
    CHECK(contains(e, "cut.so"));
    CHECK((contains(e, "incomplete ELF file") || contains(e, "not an ELF file")));
  }
  CHECK(copies_mapped("cut.so") == 0);
  write_file(cut, whole);  // written whole in place: it loads
  CHECK(http::load_module(cut) != nullptr);

  write_file(d.dir / "text.so", "not a shared object\n");
  CHECK(contains(error_of(d.dir / "text.so"), "not an ELF file"));
  CHECK(contains(error_of(d.dir), "not a regular file"));
  const std::string missing = error_of(d.dir / "absent.so");
  CHECK(contains(missing, "absent.so: cannot open: No such file or directory"));
  CHECK(!http::file_state_of(d.dir / "absent.so"));
}

TEST_CASE("changed_on_disk: a rewrite in place, a replacement and a removal") {
  const module_dir d;
  const fs::path file = d.install("greeter_v1", "m.so");
  const auto m = http::load_module(file);
  CHECK(!m->changed_on_disk());
  fs::remove(file);
  CHECK(m->changed_on_disk());
  d.install("greeter_v1", "m.so");  // the same bytes, another file
  CHECK(m->changed_on_disk());
  const auto again = http::load_module(file);
  CHECK(!again->changed_on_disk());
  write_file(file, read_file(module_dir::built("greeter_v2")) + "x");  // in place, longer
  CHECK(again->changed_on_disk());
  CHECK(m->state() != again->state());
}
