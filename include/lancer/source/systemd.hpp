// systemd integration: socket activation (LISTEN_FDS) and readiness notices (NOTIFY_SOCKET).
//
//   for (int fd : lancer::systemd::listen_fds()) srv.attach_source(*sources.emplace_back(
//       std::make_unique<lancer::fd_source>(fd)));
//   srv.run();
//   lancer::systemd::notify("READY=1");
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lancer/core/source.hpp"

namespace lancer {

namespace systemd {

// The listening sockets passed by socket activation: fds 3 .. 3+LISTEN_FDS-1, if LISTEN_PID is
// this process. Clears LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES so children do not take them.
// Empty when the process was not socket-activated.
std::vector<int> listen_fds();

// Sends `state` ("READY=1", "STOPPING=1", "STATUS=...") to the socket named by NOTIFY_SOCKET
// (a path, or '@' for the abstract namespace). Returns false if there is none or sending fails.
bool notify(std::string_view state);

}  // namespace systemd

// A source over a listening socket someone else opened (socket activation): TCP (IPv4 or
// IPv6) or Unix stream, told apart with getsockname. The source owns the fd from now on.
class fd_source final : public source {
 public:
  explicit fd_source(int fd);
  ~fd_source() override;

  // Adopts the fd and accepts for `srv`. Throws std::system_error if it is not a listening
  // stream socket of a known family.
  void start(server& srv) override;
  void stop() noexcept override;
  void accept_pending() override;
  // "fd/3 (tcp/127.0.0.1:8080)".
  std::string name() const override;
  // The descriptor while started, -1 before start() and after stop(); the source owns it.
  int native_handle() const noexcept;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace lancer
