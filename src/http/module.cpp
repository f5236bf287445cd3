// Handler modules: a private copy of the file in a memfd, checked whole, then dlopen'ed.
#include "lancer/http/module.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "lancer/log.hpp"

namespace lancer::http {

namespace {

constexpr const char* k_entry_name = "lancer_module_entry";

file_state state_from(const struct stat& st) noexcept {
  return {st.st_dev, st.st_ino, st.st_size,
          std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
}

// A descriptor closed when it goes.
class owned_fd {
 public:
  explicit owned_fd(int fd) noexcept : fd_(fd) {}
  ~owned_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

[[noreturn]] void fail(const std::filesystem::path& file, std::string_view why) {
  throw module_error(fmt::format("module {}: {}", file.string(), why));
}

[[noreturn]] void fail_errno(const std::filesystem::path& file, std::string_view what) {
  fail(file, fmt::format("{}: {}", what, std::strerror(errno)));
}

// Reads the whole of `fd` (a regular file of `expected` bytes, more or fewer if it is being
// written).
std::vector<unsigned char> read_all(const std::filesystem::path& file, int fd, off_t expected) {
  std::vector<unsigned char> bytes(static_cast<std::size_t>(expected) + 1);
  std::size_t used = 0;
  for (;;) {
    if (used == bytes.size()) bytes.resize(bytes.size() * 2);
    const ssize_t n = ::read(fd, bytes.data() + used, bytes.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno(file, "cannot read");
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  bytes.resize(used);
  return bytes;
}

// Whether `n` bytes at `offset` lie inside an image of `size` bytes.
bool inside(std::uint64_t offset, std::uint64_t n, std::uint64_t size) noexcept {
  return offset <= size && n <= size - offset;
}

// Whether `image` is a whole ELF shared object for this machine: its headers, every loaded
// segment and the section header table (written last by linkers) within its bytes. dlopen
// maps segments without checking the file's length, and a mapping past the end of a file
// faults (SIGBUS) when touched: a truncated file must be refused before it gets there.
std::string_view check_elf(const std::vector<unsigned char>& image) {
  using ehdr = ElfW(Ehdr);
  using phdr = ElfW(Phdr);
  const std::uint64_t size = image.size();
  if (size < sizeof(ehdr) || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0)
    return "not an ELF file";
  ehdr eh;
  std::memcpy(&eh, image.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != (sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32))
    return "an ELF file of another word size";
  if (eh.e_type != ET_DYN) return "not an ELF shared object";
  if (eh.e_phentsize != sizeof(phdr) ||
      !inside(eh.e_phoff, std::uint64_t{eh.e_phnum} * sizeof(phdr), size))
    return "an incomplete ELF file (its program headers are cut)";
  for (std::size_t i = 0; i < eh.e_phnum; ++i) {
    phdr ph;
    std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof(phdr), sizeof ph);
    if (ph.p_type == PT_LOAD && !inside(ph.p_offset, ph.p_filesz, size))
      return "an incomplete ELF file (a segment is cut)";
  }
  if (eh.e_shoff != 0 && !inside(eh.e_shoff, std::uint64_t{eh.e_shnum} * eh.e_shentsize, size))
    return "an incomplete ELF file (its section headers are cut)";
  return {};
}

// The copy's memfd name: the file's name, shortened to what memfd_create takes.
std::string memfd_name(const std::filesystem::path& file) {
  std::string name = "lancer-module:" + file.filename().string();
  if (name.size() > 240) name.resize(240);
  return name;
}

void write_all(const std::filesystem::path& file, int fd, const std::vector<unsigned char>& b) {
  std::size_t done = 0;
  while (done < b.size()) {
    const ssize_t n = ::write(fd, b.data() + done, b.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno(file, "cannot copy into memory");
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::optional<file_state> file_state_of(const std::filesystem::path& file) noexcept {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return std::nullopt;
  return state_from(st);
}

loaded_module::loaded_module(std::filesystem::path path, file_state state, int fd, void* handle,
                             const module_entry* entry) noexcept
    : path_(std::move(path)), state_(state), fd_(fd), handle_(handle), entry_(entry) {}

loaded_module::~loaded_module() {
  if (::dlclose(handle_) != 0)
    log(log_level::warn, "module", "{}: unloading failed: {}", path_.string(), ::dlerror());
  else
    log(log_level::debug, "module", "{}: unloaded", path_.string());
  ::close(fd_);  // only now: while it is open, no other copy can have its /proc/self/fd name
}

void loaded_module::register_into(module_registry& reg) const {
  try {
    entry_->register_routes(reg);
  } catch (const std::exception& e) {
    fail(path_, fmt::format("registration failed: {}", e.what()));
  } catch (...) {
    fail(path_, "registration failed: an exception not derived from std::exception");
  }
}

std::shared_ptr<const loaded_module> load_module(const std::filesystem::path& file) {
  const owned_fd in{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.get() < 0) fail_errno(file, "cannot open");
  struct stat before {};
  if (::fstat(in.get(), &before) != 0) fail_errno(file, "cannot stat");
  if (!S_ISREG(before.st_mode)) fail(file, "not a regular file");
  const std::vector<unsigned char> image = read_all(file, in.get(), before.st_size);
  struct stat after {};
  if (::fstat(in.get(), &after) != 0) fail_errno(file, "cannot stat");
  const file_state state = state_from(before);
  if (state_from(after) != state || image.size() != static_cast<std::size_t>(before.st_size))
    fail(file, "the file changed while it was read (being written?)");
  if (const std::string_view bad = check_elf(image); !bad.empty()) fail(file, bad);

  // The copy: a file of its own (its own inode and /proc/self/fd name), so that dlopen never
  // takes it for a version it loaded before.
  owned_fd copy{::memfd_create(memfd_name(file).c_str(), MFD_CLOEXEC)};
  if (copy.get() < 0) fail_errno(file, "memfd_create");
  write_all(file, copy.get(), image);
  const std::string copy_path = fmt::format("/proc/self/fd/{}", copy.get());
  void* handle = ::dlopen(copy_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    // dlerror() names the copy ("/proc/self/fd/7: undefined symbol: x"): the reason is after.
    std::string_view why = ::dlerror();
    if (why.starts_with(copy_path + ": ")) why.remove_prefix(copy_path.size() + 2);
    fail(file, fmt::format("cannot load: {}", why));
  }
  // From here the module owns the handle and the copy (dlclose on every way out).
  const auto* entry = static_cast<const module_entry*>(::dlsym(handle, k_entry_name));
  std::shared_ptr<const loaded_module> m{
      new loaded_module(file, state, copy.release(), handle, entry)};
  if (entry == nullptr)
    fail(file, fmt::format("no entry point ({}): not built with LANCER_MODULE", k_entry_name));
  if (entry->abi != module_abi)
    fail(file,
         fmt::format("built for module ABI {}, this program has ABI {}", entry->abi, module_abi));
  {
    router trial;  // goes before `m` may: it holds the module's handlers
    module_registry reg{trial, trial.any()};
    m->register_into(reg);
  }
  log(log_level::debug, "module", "{}: loaded ({} bytes)", file.string(), image.size());
  return m;
}

}  // namespace lancer::http
