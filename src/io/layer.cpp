#include "lancer/io/layer.hpp"

#include <utility>

namespace lancer {

layer::layer(std::unique_ptr<transport> below) noexcept : below_(std::move(below)) {}

layer::~layer() {
  close();
}

void layer::start_read(sink& above, std::size_t limit) {
  reader_ = &above;
  read_limit_ = limit;
  if (!raw_in_.empty() && deliver({})) return;
  below_->start_read(*this, limit);
}

bool layer::deliver(std::error_code below_ec) noexcept {
  sink* above = reader_;
  const std::size_t before = above->inbound().size();
  const std::error_code bad = decode(raw_in_, above->inbound());
  if (raw_in_.empty()) raw_in_.release();
  if (bad) {
    reader_ = nullptr;
    above->on_read(bad);
    return true;
  }
  if (above->inbound().size() > before) {
    reader_ = nullptr;
    above->on_read({});  // a below error, if any, shows at the next read
    return true;
  }
  if (below_ec) {  // nothing more will come: an EOF with half a unit is the peer's error
    reader_ = nullptr;
    above->on_read(raw_in_.empty() || below_ec != eof_error()
                       ? below_ec
                       : std::make_error_code(std::errc::protocol_error));
    return true;
  }
  return false;
}

void layer::on_read(std::error_code ec) noexcept {
  if (reader_ == nullptr) return;
  if (deliver(ec)) return;
  below_->start_read(*this, read_limit_);  // half a unit so far: more raw bytes
}

void layer::start_write(sink& above) {
  writer_ = &above;
  encode(above.outbound(), raw_out_);
  if (raw_out_.empty()) {
    writer_ = nullptr;
    above.on_written({});
    return;
  }
  below_->start_write(*this);
}

void layer::on_written(std::error_code ec) noexcept {
  if (!ec && !raw_out_.empty()) {
    below_->start_write(*this);  // the rest of the encoded bytes
    return;
  }
  raw_out_.release();
  sink* above = std::exchange(writer_, nullptr);
  if (!ec && shut_after_write_) {
    shut_after_write_ = false;
    below_->shutdown_write();
  }
  if (above != nullptr) above->on_written(ec);
}

void layer::shutdown_write() noexcept {
  if (writer_ != nullptr) {
    shut_after_write_ = true;  // after the encoded bytes in flight
    return;
  }
  below_->shutdown_write();
}

void layer::close() noexcept {
  reader_ = writer_ = nullptr;
  if (below_) below_->close();
}

void layer::reset() noexcept {
  reader_ = writer_ = nullptr;
  if (below_) below_->reset();
}

bool layer::input_pending() noexcept {
  return !raw_in_.empty() || below_->input_pending();
}

std::string_view layer::peer_address() const {
  return below_->peer_address();
}
std::string_view layer::local_address() const {
  return below_->local_address();
}

}  // namespace lancer
