// Upgrades: the registry, and handing a connection over to another protocol.
#include "lancer/http/upgrade.hpp"

#include <stdexcept>

#include "lancer/http/headers.hpp"
#include "lancer/http/request.hpp"

namespace lancer::http {

namespace {

// Whether the listed protocol `item` ("websocket", "foo/2") is the registered `token`: the
// name alone unless the token names a version too.
bool same_protocol(std::string_view item, std::string_view token) noexcept {
  if (token.find('/') == std::string_view::npos) item = item.substr(0, item.find('/'));
  return iequals(item, token);
}

// Calls `f(protocol)` for each protocol of each Upgrade field; stops when `f` returns true.
template <class F>
bool any_listed(const request& req, F&& f) {
  for (const headers::field fld : req.headers()) {
    if (!iequals(fld.name, "Upgrade")) continue;
    const bool found = !for_each_list_item(
        fld.value, [&](std::string_view item) { return item.empty() || !f(item); });
    if (found) return true;
  }
  return false;
}

bool asks_any_upgrade(const request& req) noexcept {
  return req.version() >= 11 && req.headers().has_token("Connection", "upgrade");
}

}  // namespace

upgrades& upgrades::add(std::string_view token, upgrade_handler h) {
  const std::size_t slash = token.find('/');
  const bool valid = valid_field_name(token.substr(0, slash)) &&
                     (slash == std::string_view::npos || valid_field_name(token.substr(slash + 1)));
  if (!valid)
    throw std::invalid_argument("http::upgrades: not a protocol token: " + std::string(token));
  if (same_protocol(token, "h2c")) {
    throw std::invalid_argument("http::upgrades: h2c is not served (HTTP/2 over cleartext)");
  }
  for (const auto& [have, _] : entries_) {
    if (same_protocol(have, token) || same_protocol(token, have)) {
      throw std::invalid_argument("http::upgrades: " + std::string(token) + " registered twice");
    }
  }
  entries_.emplace_back(std::string(token), std::move(h));
  return *this;
}

const upgrade_handler* upgrades::find(const request& req) const noexcept {
  if (entries_.empty() || !asks_any_upgrade(req)) return nullptr;
  const upgrade_handler* found = nullptr;
  any_listed(req, [&](std::string_view item) {
    for (const auto& [token, h] : entries_) {
      if (same_protocol(item, token)) {
        found = &h;
        return true;
      }
    }
    return false;
  });
  return found;
}

bool asks_upgrade(const request& req, std::string_view protocol) noexcept {
  if (!asks_any_upgrade(req)) return false;
  return any_listed(req, [&](std::string_view item) { return same_protocol(item, protocol); });
}

void switched_protocols(connection& c, request& req) {
  if (req.has_body() && !req.body_done_) {
    throw std::logic_error("http::switched_protocols: the request's body was not read");
  }
  req.status_ = 101;
  req.answered_ = true;
  if (req.on_switch_ != nullptr && *req.on_switch_) (*req.on_switch_)(c, req);
  c.consume(req.header_size_ + req.body_in_buffer_);  // what follows is the new protocol's
  req.reset();
  req.headers_.release();  // the connection may live long: its request's table goes now
  req.status_ = 101;
  req.answered_ = true;
  req.switched_ = true;
  req.keep_alive_ = false;
  c.clear_deadline();
}

}  // namespace lancer::http
