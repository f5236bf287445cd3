#include "lancer/io/fake_network.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "lancer/io/error.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/awaitables.hpp"

namespace lancer {
namespace detail {

namespace {

struct fake_fault {
  std::error_code error;  // empty: none
  bool always = false;

  // Returns the error to report now, if any, and disarms a one-shot fault.
  std::error_code take() noexcept {
    std::error_code e = error;
    if (!always) error.clear();
    return e;
  }
};

// The bytes one side sent, not read by the other yet.
struct fake_dir {
  std::string bytes;
  std::size_t pos = 0;                                           // read up to here
  std::size_t window = std::numeric_limits<std::size_t>::max();  // most unread bytes allowed
  bool shut = false;                                             // the sender finished (FIN)

  std::size_t unread() const noexcept { return bytes.size() - pos; }
  std::string_view take(std::size_t n) noexcept {
    const std::string_view out = std::string_view(bytes).substr(pos, n);
    pos += out.size();
    return out;
  }
  void compact() noexcept {
    if (pos == bytes.size()) {
      bytes.clear();  // keeps its capacity
      pos = 0;
    }
  }
};

// What one side's transport is doing.
struct fake_side {
  sink* s = nullptr;  // the transport's sink, while it has one
  std::size_t read_limit = 0;
  bool read_pending = false;   // a read waits for bytes
  bool write_pending = false;  // a write waits for window
  bool closed = false;         // the transport was closed
  bool reset_sent = false;     // closed with input unread, or reset: the peer hears a reset
  fake_fault read_fault;
  fake_fault write_fault;
};

}  // namespace

struct fake_link {
  scheduler* sched = nullptr;
  std::string peer_name[2];  // how side i names its peer
  fake_dir dir[2];           // dir[i]: what side i sent
  fake_side side[2];
  bool reset = false;  // reset by either side: every operation fails from now on

  // Serves side i's read now, if it can; false if it must wait.
  bool serve_read(int i, sink& s, std::size_t limit) {
    fake_dir& in = dir[1 - i];
    if (std::error_code e = side[i].read_fault.take()) return s.on_read(e), true;
    if (reset) return s.on_read(std::make_error_code(std::errc::connection_reset)), true;
    if (in.unread() > 0) {
      s.inbound().append(in.take(std::min(limit, in.unread())));
      in.compact();
      s.on_read({});
      wake_write(1 - i);  // the window opened
      return true;
    }
    if (side[1 - i].reset_sent) {
      return s.on_read(std::make_error_code(std::errc::connection_reset)), true;
    }
    if (in.shut) return s.on_read(eof_error()), true;
    return false;
  }

  // Serves side i's write now, if it can; false if it must wait for window.
  bool serve_write(int i, sink& s) {
    fake_dir& out = dir[i];
    if (std::error_code e = side[i].write_fault.take()) return s.on_written(e), true;
    if (reset || side[1 - i].reset_sent) {
      return s.on_written(std::make_error_code(std::errc::broken_pipe)), true;
    }
    if (s.outbound().empty()) return s.on_written({}), true;
    const std::size_t room = out.window > out.unread() ? out.window - out.unread() : 0;
    const std::size_t n = std::min(room, s.outbound().size());
    if (n == 0) return false;
    out.bytes.append(s.outbound().view().substr(0, n));
    s.outbound().consume(n);
    s.on_written({});
    wake_read(1 - i);
    return true;
  }

  void wake_read(int i) {
    fake_side& me = side[i];
    if (me.read_pending && me.s != nullptr) {
      me.read_pending = false;
      if (!serve_read(i, *me.s, me.read_limit)) me.read_pending = true;
    }
  }
  void wake_write(int i) {
    fake_side& me = side[i];
    if (me.write_pending && me.s != nullptr) {
      me.write_pending = false;
      if (!serve_write(i, *me.s)) me.write_pending = true;
    }
  }

  void close(int i, bool with_reset) noexcept {
    fake_side& me = side[i];
    if (me.closed) return;
    me.closed = true;
    // Closing with input unread is what makes a real kernel send a reset.
    if (with_reset || dir[1 - i].unread() > 0) me.reset_sent = true;
    if (with_reset) reset = true;
    dir[i].shut = true;
    me.s = nullptr;
    me.read_pending = me.write_pending = false;
    wake_read(1 - i);
    wake_write(1 - i);
  }
};

namespace {

class fake_transport final : public transport {
 public:
  fake_transport(std::shared_ptr<fake_link> link, int side) : link_(std::move(link)), i_(side) {}
  ~fake_transport() override { close(); }

  void start_read(sink& s, std::size_t limit) override {
    fake_side& me = link_->side[i_];
    me.s = &s;
    if (!link_->serve_read(i_, s, limit)) {
      me.read_pending = true;
      me.read_limit = limit;
    }
  }
  void start_write(sink& s) override {
    fake_side& me = link_->side[i_];
    me.s = &s;
    if (!link_->serve_write(i_, s)) me.write_pending = true;
  }
  void shutdown_write() noexcept override {
    link_->dir[i_].shut = true;
    link_->wake_read(1 - i_);
  }
  void close() noexcept override { link_->close(i_, false); }
  void reset() noexcept override { link_->close(i_, true); }
  bool input_pending() noexcept override {
    const fake_dir& in = link_->dir[1 - i_];
    if (in.unread() == 0 && !in.shut && !link_->reset) return false;
    link_->wake_read(i_);  // an outstanding read takes them (or the EOF) now
    return true;
  }
  std::string_view peer_address() const override { return link_->peer_name[i_]; }
  std::string_view local_address() const override { return "fake"; }

 private:
  std::shared_ptr<fake_link> link_;
  int i_;
};

}  // namespace
}  // namespace detail

// --- fake_end -------------------------------------------------------------------------------

void fake_end::write(std::string_view bytes) {
  write_unseen(bytes);
  link_->wake_read(1 - side_);
}

void fake_end::write_unseen(std::string_view bytes) {
  if (link_->dir[side_].shut || link_->reset) {
    throw std::logic_error("lancer::fake_end::write after shutdown_write or reset");
  }
  link_->dir[side_].bytes.append(bytes);
}

void fake_end::shutdown_write() {
  link_->dir[side_].shut = true;
  link_->wake_read(1 - side_);
}

void fake_end::reset() {
  link_->reset = true;
  link_->dir[side_].bytes.clear();
  link_->dir[side_].pos = 0;
  link_->wake_read(1 - side_);
  link_->wake_write(1 - side_);
}

std::string fake_end::read() {
  detail::fake_dir& in = link_->dir[1 - side_];
  std::string out(in.take(in.unread()));
  in.compact();
  link_->wake_write(1 - side_);
  return out;
}

std::size_t fake_end::available() const noexcept {
  return link_->dir[1 - side_].unread();
}

void fake_end::set_window(std::size_t bytes) {
  link_->dir[1 - side_].window = bytes;
  link_->wake_write(1 - side_);
}

bool fake_end::peer_done() const noexcept {
  return link_->dir[1 - side_].shut || link_->side[1 - side_].closed;
}
bool fake_end::peer_closed() const noexcept {
  return link_->side[1 - side_].closed;
}
bool fake_end::peer_reset() const noexcept {
  return link_->side[1 - side_].reset_sent;
}

void fake_end::fail_reads(std::errc e, bool always) {
  link_->side[1 - side_].read_fault = {std::make_error_code(e), always};
  link_->wake_read(1 - side_);
}

void fake_end::fail_writes(std::errc e, bool always) {
  link_->side[1 - side_].write_fault = {std::make_error_code(e), always};
  link_->wake_write(1 - side_);
}

std::string fake_end::exchange(std::string_view bytes) {
  if (!bytes.empty()) write(bytes);
  std::string reply;
  for (;;) {
    if (link_->sched != nullptr) link_->sched->run_until_idle();
    std::string got = read();
    if (got.empty()) break;
    reply += got;
  }
  return reply;
}

// --- links ----------------------------------------------------------------------------------

std::pair<std::unique_ptr<transport>, fake_end> make_fake_link(std::string peer_of_0,
                                                               scheduler* sched) {
  struct end_maker : fake_end {
    end_maker(std::shared_ptr<detail::fake_link> l) : fake_end(std::move(l), 1) {}
  };
  auto link = std::make_shared<detail::fake_link>();
  link->sched = sched;
  link->peer_name[0] = std::move(peer_of_0);
  link->peer_name[1] = "fake";
  auto t = std::make_unique<detail::fake_transport>(link, 0);
  return {std::move(t), end_maker(std::move(link))};
}

std::pair<std::unique_ptr<transport>, std::unique_ptr<transport>> make_fake_pair(
    std::string peer_of_0, std::string peer_of_1) {
  auto link = std::make_shared<detail::fake_link>();
  link->peer_name[0] = std::move(peer_of_0);
  link->peer_name[1] = std::move(peer_of_1);
  return {std::make_unique<detail::fake_transport>(link, 0),
          std::make_unique<detail::fake_transport>(link, 1)};
}

// --- the network ----------------------------------------------------------------------------

namespace {

// One connection's scripted peer: runs the script over its stream, then closes it.
task<> play(std::unique_ptr<stream> s, fake_network::script script) {
  try {
    co_await script(*s);
    co_await s->flush();
    s->close();
  } catch (const cancelled&) {
    throw;
  } catch (const std::exception& e) {
    log(log_level::debug, s->name(), "fake peer ended: {}", e.what());
  }
}

}  // namespace

void fake_network::serve(const address& where, dialer d) {
  entry& e = peers_[where.to_string()];
  e.dial = std::move(d);
  e.failing = false;
}

void fake_network::serve(const address& where, script s) {
  const std::string name = where.to_string();
  serve(where, [name, s = std::move(s)](std::string client) -> std::unique_ptr<transport> {
    auto [ours, theirs] = make_fake_pair(name, client);
    scheduler& sched = *scheduler::current();
    sched.spawn(play(make_stream(std::move(theirs), client), s));
    return std::move(ours);
  });
}

void fake_network::fail(const address& where, trouble t) {
  entry& e = peers_[where.to_string()];
  e.problem = t;
  e.failing = true;
}

std::size_t fake_network::connections(const address& where) const {
  const auto it = peers_.find(where.to_string());
  return it == peers_.end() ? 0 : it->second.made;
}

task<std::unique_ptr<stream>> fake_network::connect(const address& where, clock::duration timeout,
                                                    const stream_options& options) {
  const std::string name = where.to_string();
  const auto it = peers_.find(name);
  if (it == peers_.end() || (it->second.failing && it->second.problem == trouble::refuse)) {
    throw connection_error(std::make_error_code(std::errc::connection_refused), name);
  }
  if (it->second.failing && it->second.problem == trouble::reset) {
    throw connection_error(std::make_error_code(std::errc::connection_reset), name);
  }
  if (it->second.failing) {  // hold: nobody answers
    co_await sleep_for(timeout);
    throw connection_error(std::make_error_code(std::errc::timed_out),
                           name + ": connect timed out");
  }
  ++it->second.made;
  std::unique_ptr<transport> t = it->second.dial("fake/c" + std::to_string(next_++));
  co_return make_stream(std::move(t), name, options);
}

}  // namespace lancer
