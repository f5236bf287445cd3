// lancer::layer: a transport that sits on another transport and transforms the bytes: TLS,
// WebSocket framing, or a test's own encoding.
//
//   stream  <->  layer  <->  the transport below (a socket, a pipe, a fake link)
//
// To the sink above (a stream, or another layer) it is a transport; to the transport below it
// is a sink. A server puts one on every connection of every source, the fake one included,
// with server::set_layer(); a program puts one on a stream it opens before making the stream.
//
// A layer implements two functions: decode() turns raw bytes from below into bytes for the
// sink above, encode() the other way. One read or write of the sink above is in flight at a
// time, and a write is reported done only when its encoded bytes have left below, so the
// stream's backpressure holds through the layer.
#pragma once

#include <cstddef>
#include <memory>

#include "lancer/io/buffer.hpp"
#include "lancer/io/transport.hpp"

namespace lancer {

class layer : public transport, private sink {
 public:
  explicit layer(std::unique_ptr<transport> below) noexcept;
  ~layer() override;

  void start_read(sink& above, std::size_t limit) override;
  void start_write(sink& above) override;
  void shutdown_write() noexcept override;
  void close() noexcept override;
  void reset() noexcept override;
  bool input_pending() noexcept override;
  std::string_view peer_address() const override;
  std::string_view local_address() const override;

 protected:
  // Moves what it can from `raw` (bytes from below; consume what was used) to `plain` (bytes
  // for above; append). Leaves an incomplete unit in `raw` for the next call. Returns an
  // error to fail the read with (the bytes below were not what the layer speaks), or {}.
  virtual std::error_code decode(buffer& raw, buffer& plain) = 0;
  // Moves all of `plain` (bytes from above; consume it) to `raw` (bytes for below; append).
  virtual void encode(buffer& plain, buffer& raw) = 0;

 private:
  // The sink below reports here.
  buffer& inbound() noexcept override { return raw_in_; }
  buffer& outbound() noexcept override { return raw_out_; }
  void on_read(std::error_code ec) noexcept override;
  void on_written(std::error_code ec) noexcept override;
  // Decodes what is there for the waiting read; true if it ended (bytes, or an error).
  bool deliver(std::error_code below_ec) noexcept;

  std::unique_ptr<transport> below_;
  sink* reader_ = nullptr;  // the sink above whose read is in flight
  sink* writer_ = nullptr;  // the sink above whose write is in flight
  std::size_t read_limit_ = 0;
  buffer raw_in_;                  // from below, not decoded yet
  buffer raw_out_;                 // encoded, not taken by below yet
  bool shut_after_write_ = false;  // shutdown_write() came while a write was in flight
};

}  // namespace lancer
