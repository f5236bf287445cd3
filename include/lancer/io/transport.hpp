// lancer::transport and lancer::sink: how a stream's bytes reach the outside, in layers.
//
// A transport moves bytes between a sink and the outside (a socket in the epoll set, a pipe,
// an in-memory peer). The sink drives it and it reports back, possibly synchronously from
// inside the call, possibly later (from a reactor completion or a fake peer):
//
//   start_read(sink)  -> appends to sink.inbound(), then sink.on_read(error)
//   start_write(sink) -> takes bytes from the front of sink.outbound(), then
//                        sink.on_written(error); a transport that sends_files() then sends
//                        the sink's outbound_file() region too (sendfile(2), zero copy)
//
// A stream is the usual sink. A layer (lancer/io/layer.hpp) is both: a transport to the sink
// above it and a sink to the transport below, so TLS or WebSocket framing can sit between a
// socket and a stream on every source, the fake one included:
//
//   stream  <-  layer (a transport, and a sink of ...)  <-  socket transport
//
// At most one read and one write are outstanding at a time; the sink guarantees it. After
// close() the transport reports nothing more and never touches the sink again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "lancer/io/buffer.hpp"

namespace lancer {

// What a transport delivers to and takes from.
class sink {
 public:
  // Where read bytes are appended.
  virtual buffer& inbound() noexcept = 0;
  // Where bytes to send are taken from (the transport consumes what it sent).
  virtual buffer& outbound() noexcept = 0;
  // A read ended: bytes were appended (ec empty), the peer finished sending (eof_error()),
  // or the transport failed.
  virtual void on_read(std::error_code ec) noexcept = 0;
  // A write ended: bytes were consumed from outbound() (ec empty; perhaps not all of them),
  // or the transport failed.
  virtual void on_written(std::error_code ec) noexcept = 0;

  // A region of an open file to send after the outbound bytes, without copying it through
  // user space (stream::send_file).
  struct file_region {
    int fd = -1;               // the file; the sink keeps it open while the region is set
    std::uint64_t offset = 0;  // where the next byte comes from
    std::uint64_t left = 0;    // bytes still to send
    // Set by the transport when it stops sending the region: ENODATA if the file ended before
    // offset + left, EINVAL if this file cannot be sent zero-copy (the sink then sends the
    // rest itself), else the errno of the failed read (EIO). Reported with on_written({}).
    int error = 0;
  };
  // The file region to send once outbound() is empty, or null. A transport that sends files
  // advances it by what it sent (sending part of it is fine: the sink asks again).
  virtual file_region* outbound_file() noexcept { return nullptr; }

 protected:
  ~sink() = default;
};

class transport {
 public:
  virtual ~transport() = default;

  // Reads some bytes into s.inbound() (at most `limit` more), then calls s.on_read(ec):
  // ec is empty when bytes arrived, `eof` when the peer finished sending, or the error.
  virtual void start_read(sink& s, std::size_t limit) = 0;

  // Sends bytes from the front of s.outbound() (consuming what was sent), then calls
  // s.on_written(ec). Sending only part of it is fine: the sink asks again.
  virtual void start_write(sink& s) = 0;

  // Stops sending after what was written (half-close). Reading goes on.
  virtual void shutdown_write() noexcept = 0;

  // Closes both directions at once. Idempotent.
  virtual void close() noexcept = 0;

  // Closes both directions at once and tells the peer with a reset where the transport has
  // one (TCP's RST): the peer's reads and writes fail instead of ending. Default: close().
  virtual void reset() noexcept { close(); }

  // True if input has arrived that no read has taken yet (bytes, or the peer's EOF, or an
  // error: whatever the next read would report at once). A look without waiting, for the
  // moment before a close: a server that is about to hang up on an idle connection reads a
  // request that just came instead. A read already outstanding may complete at once with
  // it (reporting through on_read as usual); otherwise the next start_read finds it. The
  // default says false; sockets and pipes ask the kernel.
  virtual bool input_pending() noexcept { return false; }

  // True if start_write also sends the sink's outbound_file() (sendfile(2): a TCP or Unix
  // socket); false for layers, in-memory peers and pipes, whose sinks copy a file's bytes into
  // outbound() instead.
  virtual bool sends_files() const noexcept { return false; }

  // "address:port", a socket path, "pipe", or "fake/N"; valid as long as the transport.
  virtual std::string_view peer_address() const = 0;
  virtual std::string_view local_address() const = 0;
};

// The error a transport gives for "the peer finished sending".
inline std::error_code eof_error() noexcept {
  return std::make_error_code(std::errc::no_message_available);
}

}  // namespace lancer
