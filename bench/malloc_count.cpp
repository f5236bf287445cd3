// LD_PRELOAD module for bench/http: counts the server's heap allocations over real sockets.
//
//   LD_PRELOAD=build/release/bench/libmalloc_count.so MALLOC_COUNT_OUT=/tmp/n lancer-serve ...
//   kill -URG <pid>       writes the number of allocations so far to $MALLOC_COUNT_OUT
//
// Every malloc, calloc, realloc and aligned allocation is counted (operator new ends in
// malloc). The signal handler uses only async-signal-safe calls.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {

std::atomic<unsigned long long> g_allocations{0};
const char* g_out = nullptr;

void count() noexcept { g_allocations.fetch_add(1, std::memory_order_relaxed); }

void report(int) {
  if (g_out == nullptr) return;
  char text[32];
  char* p = text + sizeof text;
  *--p = '\n';
  unsigned long long n = g_allocations.load(std::memory_order_relaxed);
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  const int fd = ::open(g_out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  const ssize_t written = ::write(fd, p, static_cast<std::size_t>(text + sizeof text - p));
  (void)written;
  ::close(fd);
}

__attribute__((constructor)) void install() {
  g_out = std::getenv("MALLOC_COUNT_OUT");
  struct sigaction sa {};
  sa.sa_handler = report;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGURG, &sa, nullptr);
}

}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(std::size_t k, std::size_t n) {
  count();
  return __libc_calloc(k, n);
}
void* realloc(void* p, std::size_t n) {
  count();
  return __libc_realloc(p, n);
}
void* memalign(std::size_t a, std::size_t n) {
  count();
  return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  count();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  count();
  void* p = __libc_memalign(a, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
}
