// lancer::forward: a connection handler that sends each connection on to an upstream.
//
//   lancer::server fwd{sched, lancer::forward(lancer::parse_address("tcp/10.0.0.2:8080", true))};
//   fwd.attach_source(tcp9000);      // tcp/$4:9000 -> 10.0.0.2:8080, byte for byte
//
// For each connection it opens a stream to the upstream, then moves bytes both ways at once
// (one thread per direction): what one side sends, the other receives, with the streams'
// backpressure (a slow reader on either side slows the writer on the other; memory stays
// bounded, whatever goes through) and half-close passed on (a side's EOF becomes a FIN to the
// other, and the other direction goes on). A reset on one side resets the other.
//
// An upstream that cannot be reached closes the client at once, with a WARN line naming the
// upstream and why ("upstream tcp/10.0.0.2:8080: Connection refused"). A connection with no
// byte moving either way for `idle_timeout` is closed.
#pragma once

#include <chrono>

#include "lancer/core/server.hpp"
#include "lancer/io/address.hpp"
#include "lancer/io/connect.hpp"

namespace lancer {

struct forward_options {
  clock::duration connect_timeout = std::chrono::seconds(10);  // reaching the upstream
  clock::duration idle_timeout = std::chrono::minutes(5);      // no byte either way: close
  network* net = nullptr;  // where upstreams are reached; null: real_network()
};

// A connection handler that forwards every connection to `upstream`.
server::handler forward(address upstream, forward_options options = {});

}  // namespace lancer
