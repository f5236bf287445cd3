// lancer::unix_source: accepts connections on a Unix stream socket at a path.
//
//   lancer::unix_source local{lancer::parse_address("unix//run/lancer.sock")};
//
// Before binding, a file already at the path is examined: a socket nobody listens on (left
// by a process that died) is removed; a socket a live server listens on is left alone and
// start() refuses with a clear message; anything that is not a socket is never touched.
// The socket file gets `mode` and is removed again by stop(), unless keep_path() was called
// (the listening socket was handed to another process, which goes on accepting on it).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "lancer/core/source.hpp"
#include "lancer/io/address.hpp"

namespace lancer {

struct unix_options {
  int backlog = 1024;
  mode_t mode = 0660;  // the socket file's permissions
};

class unix_source final : public source {
 public:
  // `where` must be a unix address. Nothing is created until start().
  explicit unix_source(address where, unix_options options = {});
  ~unix_source() override;

  // Binds and listens. Throws std::system_error if the path holds a live server, is not a
  // socket, or cannot be bound.
  void start(server& srv) override;
  // Stops accepting and removes the socket file this source created (unless keep_path()).
  void stop() noexcept override;
  void accept_pending() override;
  std::string name() const override;

  // From now on, stop() leaves the socket file in place: another process holds the listening
  // socket (handed over with native_handle()) and accepts on it at that path.
  void keep_path() noexcept;
  // The listening socket's descriptor while started, -1 otherwise. The source still owns it.
  int native_handle() const noexcept;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace lancer
