// lancer::source: where connections come from (fake, TCP, Unix). A source knows nothing of
// handlers: it accepts connections and hands each to server::add_connection with a transport.
#pragma once

#include <string>

namespace lancer {

class server;

class source {
 public:
  source() = default;
  source(const source&) = delete;
  source& operator=(const source&) = delete;
  // Detaches from its server, so either may be destroyed first.
  virtual ~source();
  // Starts accepting; each new connection goes to srv.add_connection(). Called by server::run.
  virtual void start(server& srv) = 0;
  // Stops accepting. Connections already handed over are the server's. Idempotent.
  virtual void stop() noexcept = 0;
  // Hands the server every connection already waiting to be accepted (a listening socket's
  // queue), without waiting for more. A drain calls it just before stop(), so that no
  // connection the kernel accepted for us is reset unanswered. Default: nothing waits.
  virtual void accept_pending() {}
  // What it listens on, for logs: "tcp/127.0.0.1:8080", "fake".
  virtual std::string name() const = 0;
  // True for a source with no socket behind it (the fake one, for tests): the server logs
  // its "listening on" line at DEBUG instead of INFO.
  virtual bool in_memory() const noexcept { return false; }

 private:
  friend class server;
  server* attached_ = nullptr;  // the server this source is attached to, if any
};

}  // namespace lancer
