#include "lancer/core/connection.hpp"

#include <string>

#include "lancer/core/detail/descriptor.hpp"
#include "lancer/core/server.hpp"

namespace lancer {

connection::connection(server& srv, detail::descriptor& desc, std::uint64_t id,
                       std::unique_ptr<transport> t) noexcept
    : stream(srv.sched(), std::move(t), srv.options()), server_(srv), desc_(desc), id_(id) {}

std::string connection::name() const {
  return "conn/" + std::to_string(id_);
}

void connection::on_event() noexcept {
  server_.flag(desc_);
}

bool connection::draining() const noexcept {
  return server_.draining();
}

void connection::set_deadline(clock::time_point t) noexcept {
  server_.set_deadline(desc_, t);
}
void connection::clear_deadline() noexcept {
  server_.clear_deadline(desc_);
}
clock::time_point connection::deadline() const noexcept {
  return desc_.due;
}
void connection::wake_at(clock::time_point t) noexcept {
  server_.set_deadline(desc_, t, true);
}

}  // namespace lancer
