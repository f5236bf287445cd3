#include "lancer/io/connect.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "io/detail/fd_transport.hpp"
#include "io/detail/poll_set.hpp"
#include "lancer/io/asio.hpp"
#include "lancer/sched/detail/timer_heap.hpp"

namespace lancer {

namespace asio = boost::asio;

namespace {

// The end of a socket's connect: a sink whose empty write the transport ends at the socket's
// first output edge (with the connect's error, if any), and an awaitable that waits for it
// until a deadline.
class connect_wait final : public sink {
 public:
  explicit connect_wait(clock::time_point deadline) noexcept { timer_.deadline = deadline; }
  connect_wait(const connect_wait&) = delete;
  connect_wait& operator=(const connect_wait&) = delete;
  ~connect_wait() {
    if (sched_ != nullptr) sched_->remove_timer(timer_);
  }

  // --- sink ---
  buffer& inbound() noexcept override { return unused_; }
  buffer& outbound() noexcept override { return unused_; }
  void on_read(std::error_code) noexcept override {}
  void on_written(std::error_code ec) noexcept override {
    done_ = true;
    error_ = ec;
    if (parked_) sched_->push(signal{thread_, signal_kind::wakeback, wait_, 0, {}});
  }

  // --- awaitable ---
  bool await_ready() const noexcept { return done_; }
  void await_suspend(std::coroutine_handle<> h) {
    sched_ = scheduler::current();
    thread_ = sched_->current_thread();
    wait_ = sched_->park(h, mask_of(signal_kind::wakeback) | mask_of(signal_kind::resume));
    parked_ = true;
    timer_.fire = signal{thread_, signal_kind::resume, wait_, 1, thread_};
    sched_->add_timer(timer_);
  }
  void await_resume() {
    if (parked_) {
      parked_ = false;
      sched_->remove_timer(timer_);
      sched_->take_signal();  // throws if cancelled meanwhile
    }
  }

  bool done() const noexcept { return done_; }
  std::error_code error() const noexcept { return error_; }

 private:
  buffer unused_;
  detail::timer_node timer_;
  scheduler* sched_ = nullptr;
  thread_id thread_;
  std::uint32_t wait_ = 0;
  std::error_code error_;
  bool parked_ = false;
  bool done_ = false;
};

[[noreturn]] void fail(std::error_code ec, const std::string& name, const char* what = nullptr) {
  throw connection_error(ec, what != nullptr ? name + ": " + what : name);
}

// Connects a new socket to `to`; the stream is named `name`.
task<std::unique_ptr<stream>> connect_socket(const sockaddr* to, socklen_t len, std::string name,
                                             clock::time_point deadline,
                                             const stream_options& options) {
  scheduler& sched = *scheduler::current();
  const int fd = ::socket(to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail({errno, std::system_category()}, name);
  if (to->sa_family != AF_UNIX) {
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  bool connecting = false;
  if (::connect(fd, to, len) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      const int e = errno;
      ::close(fd);
      fail({e, std::system_category()}, name);
    }
    connecting = true;
  }
  auto& set = asio::use_service<detail::poll_set>(sched.reactor());
  auto t = std::make_unique<detail::fd_transport>(fd, set, detail::fd_transport::kind::socket, name,
                                                  connecting);
  if (connecting) {
    connect_wait w(deadline);
    t->start_write(w);  // nothing to send: it ends when the connect does
    if (!w.done()) co_await w;
    if (!w.done()) fail(std::make_error_code(std::errc::timed_out), name, "connect timed out");
    if (w.error()) fail(w.error(), name);
  }
  co_return make_stream(std::move(t), std::move(name), options);
}

class real_net final : public network {
 public:
  task<std::unique_ptr<stream>> connect(const address& where, clock::duration timeout,
                                        const stream_options& options) override {
    scheduler* sched = scheduler::current();
    if (sched == nullptr) throw std::logic_error("lancer::connect: no scheduler runs here");
    const clock::time_point deadline = sched->now() + timeout;
    const std::string name = where.to_string();
    if (where.connector == address::kind::unix_socket) {
      sockaddr_un un{};
      un.sun_family = AF_UNIX;
      if (where.path.size() >= sizeof un.sun_path) {
        fail(std::make_error_code(std::errc::filename_too_long), name);
      }
      std::memcpy(un.sun_path, where.path.data(), where.path.size());
      co_return co_await connect_socket(reinterpret_cast<const sockaddr*>(&un), sizeof un, name,
                                        deadline, options);
    }
    // A literal address connects at once; a name is resolved first, then each of its
    // addresses is tried in turn until one connects or the time is up.
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(where.host, ec);
    if (!ec) {
      const asio::ip::tcp::endpoint at{ip, where.port};
      co_return co_await connect_socket(at.data(), static_cast<socklen_t>(at.size()), name,
                                        deadline, options);
    }
    asio::ip::tcp::resolver resolver(sched->reactor());
    auto [rec, results] =
        co_await resolver.async_resolve(where.host, std::to_string(where.port), lancer::use_signal);
    if (rec) fail(std::make_error_code(std::errc::host_unreachable), name, "no such host");
    std::error_code last = std::make_error_code(std::errc::host_unreachable);
    for (const auto& entry : results) {
      if (scheduler::current()->now() >= deadline) break;
      const asio::ip::tcp::endpoint at = entry.endpoint();
      try {
        co_return co_await connect_socket(at.data(), static_cast<socklen_t>(at.size()), name,
                                          deadline, options);
      } catch (const connection_error& e) {
        last = e.code();
      }
    }
    fail(last, name);
  }
};

}  // namespace

network& real_network() noexcept {
  static real_net net;
  return net;
}

task<std::unique_ptr<stream>> connect(const address& where, clock::duration timeout,
                                      const stream_options& options) {
  return real_network().connect(where, timeout, options);
}

}  // namespace lancer
