// The transport for file descriptors in the poll set: stream sockets (TCP and Unix) and
// pipes. Private to src/.
//
// The descriptor is non-blocking and sits in the io_context's poll_set, edge-triggered: the
// transport remembers whether input may be waiting and whether the descriptor may take
// output, and makes a system call only when it can succeed or tell something. A read that
// comes back short means the kernel had nothing more, so the next read waits for the edge
// (unless the peer has half-closed: then the EOF is still to be read); nothing is armed per
// read. A stream waiting for input holds no buffer: only its descriptor and this object.
//
// A socket also sends its sink's outbound_file() region, once the outbound bytes are gone,
// with sendfile(2): the file's bytes go from the page cache to the socket, and a full socket
// waits for the output edge as a send does.
//
// A socket being connected (connect() gave EINPROGRESS) counts as not writable: its first
// output edge ends the connect, and a write waiting for it fails with the connect's error.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "io/detail/poll_set.hpp"
#include "lancer/io/transport.hpp"
#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer::detail {

class fd_transport final : public transport, public poll_target {
 public:
  enum class kind : std::uint8_t {
    socket,  // recv/send; shutdown(SHUT_WR) half-closes
    pipe,    // read/write; one direction only, and shutting the write side closes it
  };

  // Takes `fd` (non-blocking) and adds it to `set`. A socket's `peer`, as accept or connect
  // gave it, names the other end in logs (an AF_UNIX peer is "unix"). Throws
  // std::system_error if the descriptor cannot be watched; `fd` is closed then.
  fd_transport(int fd, poll_set& set, const sockaddr* peer, socklen_t peer_len);
  // A pipe end, or a socket named by `name`. `connecting`: a socket whose connect is under way.
  fd_transport(int fd, poll_set& set, kind k, std::string_view name, bool connecting = false);
  ~fd_transport() override;
  fd_transport(const fd_transport&) = delete;
  fd_transport& operator=(const fd_transport&) = delete;

  // Transports come and go with connections: recycle their memory like coroutine frames.
  static void* operator new(std::size_t n) { return frame_pool::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_pool::deallocate(p, n); }

  void start_read(sink& s, std::size_t limit) override;
  void start_write(sink& s) override;
  void shutdown_write() noexcept override;
  void close() noexcept override;
  void reset() noexcept override;
  bool input_pending() noexcept override;
  bool sends_files() const noexcept override { return socket(); }
  std::string_view peer_address() const override { return {peer_, peer_len_}; }
  std::string_view local_address() const override;

  void on_ready(std::uint32_t events) noexcept override;
  int fd() const noexcept { return fd_; }

 private:
  void read_now(std::size_t limit);
  void write_now();
  void send_file_now(sink::file_region& f);
  void init(std::string_view name);
  bool socket() const noexcept { return !pipe_; }

  poll_set& set_;
  sink* sink_ = nullptr;  // the sink it reports to, once it asked for something
  // getsockname's answer, formatted on first use (most connections never ask: a pointer, not
  // a string, keeps the transport in a smaller frame-pool class).
  mutable std::unique_ptr<std::string> local_;
  int fd_;                       // -1 once closed
  std::uint32_t want_read_ = 0;  // a read waits for input: its limit in bytes (0: none)
  // Flags in bits: the transport stays within 104 bytes, one frame-pool class smaller.
  bool pipe_ : 1 = false;        // a pipe end (read/write), not a socket (recv/send)
  bool readable_ : 1 = true;     // input may be waiting: an edge since the last short read
  bool writable_ : 1 = true;     // output may be taken: an edge since the last EAGAIN
  bool want_write_ : 1 = false;  // a write waits for the descriptor to take output
  bool connecting_ : 1 = false;  // a socket's connect is under way: its first output edge ends it
  // The peer half-closed or the descriptor failed (EPOLLRDHUP, EPOLLHUP, EPOLLERR): a short
  // read no longer means "nothing more", as the EOF or the error is still to be read.
  bool peer_done_ : 1 = false;
  std::uint8_t read_grow_ : 3 = 0;  // reads ask for 4 KiB << this: grows while they fill up
  std::uint8_t peer_len_ = 0;
  char peer_[53];  // "[v6 address]:port" at most
};

// "1.2.3.4:80", "[::1]:80", "unix"; what fits in `out` (53 bytes is enough for any).
std::size_t format_address(const sockaddr* a, socklen_t len, char* out, std::size_t room);

}  // namespace lancer::detail
