#include "lancer/source/fake.hpp"

#include <system_error>

#include "lancer/core/connection.hpp"
#include "lancer/io/error.hpp"

namespace lancer {

fake_source::~fake_source() {
  stop();
}

void fake_source::start(server& srv) {
  server_ = &srv;
  accepting_ = true;
}

void fake_source::stop() noexcept {
  accepting_ = false;
}

fake_client fake_source::connect() {
  return connect("fake/" + std::to_string(next_++));
}

fake_client fake_source::connect(std::string peer_address) {
  // A stopped source's server may be gone already: look at it only while accepting.
  const bool open = accepting_ && server_ != nullptr;
  auto [t, end] = make_fake_link(std::move(peer_address), open ? &server_->sched() : nullptr);
  if (!open) {
    t->close();  // refused: the client sees a closed connection
    return fake_client{std::move(end), 0};
  }
  const connection* c = server_->add_connection(std::move(t));
  return fake_client{std::move(end), c != nullptr ? c->id() : 0};
}

fake_network::dialer fake_source::dialer() {
  return [this](std::string client_name) -> std::unique_ptr<transport> {
    if (!accepting_ || server_ == nullptr) {
      throw connection_error(std::make_error_code(std::errc::connection_refused), "fake");
    }
    auto [ours, theirs] = make_fake_pair(std::move(client_name), "fake");
    server_->add_connection(std::move(ours));
    return std::move(theirs);
  };
}

}  // namespace lancer
