// lancer::ws::socket: Boost.Beast's websocket::stream over a view of a lancer connection.
//
// How it runs. Beast's operations are Asio composed operations: they call the next layer's
// async_read_some / async_write_some and finish through their handler's executor. Here the
// next layer is `stream_view`, which only records the operation it is given (`reading_`,
// `writing_`), and the executor of every operation this file starts is the socket's
// `inline_executor`, which only queues (`posted`). The coroutine awaiting read(), send(),
// ping() or close() is the socket's driver: drive() runs the queue, hands buffered bytes to a
// recorded read, appends a recorded write to the connection, and waits on the connection
// (its backpressure, its virtual time) when nothing else can move. Nothing runs outside the
// driver, and nothing resumes a coroutine but the connection's own wakeback.
#include "lancer/ws/socket.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/blocking.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <deque>
#include <stdexcept>
#include <utility>

#include "lancer/http/httputil.hpp"
#include "lancer/http/upgrade.hpp"
#include "lancer/log.hpp"
#include "lancer/sched/detail/frame_pool.hpp"
#include "lancer/sched/scheduler.hpp"

namespace lancer::ws {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using boost::system::error_code;

namespace detail {

class socket_impl;

// A completion an operation left for later, run by the driver in its next step.
struct posted {
  virtual ~posted() = default;
  virtual void run() = 0;            // runs it and frees it
  virtual void drop() noexcept = 0;  // frees it unrun
  posted* next = nullptr;
};

template <class F>
struct posted_fn final : posted {
  explicit posted_fn(F&& fn) : f(std::move(fn)) {}
  void run() override {
    F local(std::move(f));
    drop();
    local();
  }
  void drop() noexcept override {
    this->~posted_fn();
    lancer::detail::frame_pool::deallocate(this, sizeof(posted_fn));
  }
  F f;
};

// The executor of the socket's operations: execute() queues for the driver.
class inline_executor {
 public:
  explicit inline_executor(socket_impl* s) noexcept : s_(s) {}
  template <class F>
  void execute(F&& f) const;
  inline_executor require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return *this;
  }
  static constexpr boost::asio::execution::blocking_t query(
      boost::asio::execution::blocking_t) noexcept {
    return boost::asio::execution::blocking.never;
  }
  boost::asio::execution_context& query(boost::asio::execution::context_t) const noexcept;
  friend bool operator==(const inline_executor& a, const inline_executor& b) noexcept {
    return a.s_ == b.s_;
  }
  friend bool operator!=(const inline_executor& a, const inline_executor& b) noexcept {
    return a.s_ != b.s_;
  }

 private:
  socket_impl* s_;
};

// One of Beast's operations on the next layer, recorded until the driver serves it.
struct transport_op {
  virtual ~transport_op() = default;
  virtual std::size_t fill(std::string_view src) = 0;       // a read: copies into its buffers
  virtual std::size_t drain(connection& c) = 0;             // a write: appends its buffers to c
  virtual void complete(error_code ec, std::size_t n) = 0;  // runs the handler, frees this
  virtual void drop() noexcept = 0;                         // frees this unrun
};

// The two kinds, as the two directions need: a read copies in, a write appends out.
template <class Handler, class Buffers, bool Read>
struct transport_op_for final : transport_op {
  transport_op_for(Handler&& h, const Buffers& b) : handler(std::move(h)), buffers(b) {}
  std::size_t fill(std::string_view src) override {
    if constexpr (Read) {
      return boost::asio::buffer_copy(buffers, boost::asio::const_buffer(src.data(), src.size()));
    } else {
      return 0;
    }
  }
  std::size_t drain(connection& c) override {
    std::size_t n = 0;
    if constexpr (!Read) {
      for (auto it = boost::asio::buffer_sequence_begin(buffers);
           it != boost::asio::buffer_sequence_end(buffers); ++it) {
        const boost::asio::const_buffer b(*it);
        c.write(std::string_view(static_cast<const char*>(b.data()), b.size()));
        n += b.size();
      }
    }
    return n;
  }
  void complete(error_code ec, std::size_t n) override {
    Handler local(std::move(handler));
    drop();
    local(ec, n);
  }
  void drop() noexcept override {
    this->~transport_op_for();
    lancer::detail::frame_pool::deallocate(this, sizeof(transport_op_for));
  }
  Handler handler;
  Buffers buffers;
};

// Beast's next layer: the connection, seen as an Asio stream.
class stream_view {
 public:
  using executor_type = boost::asio::io_context::executor_type;
  explicit stream_view(socket_impl* s) noexcept : s_(s) {}
  executor_type get_executor() const noexcept;
  socket_impl& owner() const noexcept { return *s_; }

  template <class Buffers, class Handler>
  auto async_read_some(const Buffers& b, Handler&& h);
  template <class Buffers, class Handler>
  auto async_write_some(const Buffers& b, Handler&& h);

 private:
  socket_impl* s_;
};

// Where an operation this file starts reports: a flag for the driver.
struct done {
  bool finished = false;
  error_code ec;
  std::size_t n = 0;
};

class done_handler {
 public:
  using executor_type = inline_executor;
  using allocator_type = lancer::detail::pool_allocator<char>;
  done_handler(done* d, socket_impl* s) noexcept : d_(d), s_(s) { *d_ = {}; }
  executor_type get_executor() const noexcept { return inline_executor(s_); }
  allocator_type get_allocator() const noexcept { return {}; }
  void operator()(error_code ec, std::size_t n = 0) noexcept {
    d_->finished = true;
    d_->ec = ec;
    d_->n = n;
  }

 private:
  done* d_;
  socket_impl* s_;
};

using beast_stream = websocket::stream<stream_view, true>;

class socket_impl final : public socket {
 public:
  socket_impl(connection& c, const options& o);
  ~socket_impl() override;

  // --- what stream_view and inline_executor call -----------------------------------------
  template <class F>
  void post(F&& f) {
    using node = posted_fn<std::decay_t<F>>;
    void* mem = lancer::detail::frame_pool::allocate(sizeof(node));
    posted* p = new (mem) node(std::forward<F>(f));
    if (tail_ != nullptr) {
      tail_->next = p;
    } else {
      head_ = p;
    }
    tail_ = p;
  }
  template <bool Read, class Handler, class Buffers>
  void record(transport_op*& slot, Handler&& h, const Buffers& b) {
    using op = transport_op_for<std::decay_t<Handler>, Buffers, Read>;
    if (slot != nullptr) throw std::logic_error("ws: two transport operations of one kind");
    void* mem = lancer::detail::frame_pool::allocate(sizeof(op));
    slot = new (mem) op(std::forward<Handler>(h), b);
  }
  transport_op* reading_ = nullptr;  // Beast waits for bytes
  transport_op* writing_ = nullptr;  // Beast has bytes to send
  connection& c_;

  // --- the socket ------------------------------------------------------------------------
  task<bool> handshake(const beast::http::request<beast::http::empty_body>& req);
  void choose_subprotocol(const http::headers& h);
  task<std::optional<message>> read_message();
  task<bool> write_message(std::string_view data, kind type);
  task<bool> send_ping(std::string_view payload);
  task<> close_handshake(std::uint16_t code, std::string_view reason);
  bool queue(std::string_view data, kind type);
  bool open() const noexcept { return code_ == 0 && ws_.is_open(); }

  const options& o_;
  beast_stream ws_;
  beast::flat_buffer in_;          // the message read()
  std::string subprotocol_;        // chosen at the handshake
  std::string reason_;             // the close reason
  std::uint16_t code_ = 0;         // the close code, once closed
  std::uint16_t close_asked_ = 0;  // post() overflowed: close with this code
  bool deflated_ = false;          // permessage-deflate on, and the client offered it

 private:
  // The driver's steps.
  task<> drive(done& d);
  task<> wait_input();
  task<> relieve();
  void run_posted();
  void serve_read();
  void serve_write();
  void finish_read(error_code ec);
  void on_timer(clock::time_point now);
  void drop(std::string_view why, clock::duration waited);
  clock::time_point next_wake() const noexcept;
  void start_close(std::uint16_t code, std::string_view reason);
  void start_queued();
  void finish_queued();
  void note_end(error_code ec);
  // Makes the current thread the driver for the guard's life; false if another drives.
  struct driver_guard;

  posted* head_ = nullptr;
  posted* tail_ = nullptr;
  std::deque<std::pair<kind, std::string>> outbox_;  // post()ed messages, for the driver
  std::size_t queued_ = 0;                           // their bytes
  done queued_done_, ping_done_, close_done_;        // the driver's own operations
  bool queued_busy_ = false, ping_busy_ = false, close_busy_ = false;
  bool write_busy_ = false;  // a send() of the driver's is under way
  // Above this many unsent bytes a send() starts them on their way and, above the
  // connection's high-water mark, waits for the peer to take them (backpressure).
  static constexpr std::size_t k_flush_above = 64 * 1024;
  bool driving_ = false;
  thread_id driver_;
  bool ping_out_ = false;  // a ping of the driver's own waits for any byte
  bool closing_ = false;   // this side sent a close frame: the peer's is due
  clock::time_point last_input_, last_message_, ping_sent_, close_due_;
};

template <class F>
void inline_executor::execute(F&& f) const {
  s_->post(std::forward<F>(f));
}
boost::asio::execution_context& inline_executor::query(
    boost::asio::execution::context_t) const noexcept {
  return s_->c_.sched().reactor();
}

stream_view::executor_type stream_view::get_executor() const noexcept {
  return s_->c_.sched().reactor().get_executor();
}

template <class Buffers, class Handler>
auto stream_view::async_read_some(const Buffers& b, Handler&& h) {
  return boost::asio::async_initiate<Handler, void(error_code, std::size_t)>(
      [this](auto handler, const Buffers& buffers) {
        s_->template record<true>(s_->reading_, std::move(handler), buffers);
      },
      h, b);
}

template <class Buffers, class Handler>
auto stream_view::async_write_some(const Buffers& b, Handler&& h) {
  return boost::asio::async_initiate<Handler, void(error_code, std::size_t)>(
      [this](auto handler, const Buffers& buffers) {
        s_->template record<false>(s_->writing_, std::move(handler), buffers);
      },
      h, b);
}

// The closing of the connection under the close handshake (RFC 6455 7.1.1: the server closes
// the TCP connection first): what is written still goes out, then the sending side shuts.
void teardown(beast::role_type, stream_view& v, error_code& ec) {
  v.owner().c_.close();
  ec = {};
}

// Beast's way to drop the connection at once (a failed close): what was written still goes.
void beast_close_socket(stream_view& v) {
  v.owner().c_.close();
}

template <class Handler>
void async_teardown(beast::role_type, stream_view& v, Handler&& h) {
  v.owner().c_.close();
  boost::asio::post(boost::asio::bind_executor(
      boost::asio::get_associated_executor(h, inline_executor(&v.owner())),
      [h = std::forward<Handler>(h)]() mutable { h(error_code{}); }));
}

struct socket_impl::driver_guard {
  explicit driver_guard(socket_impl& s) : s_(s) {
    if (s_.driving_) throw std::logic_error("ws::socket: driven by two threads at once");
    s_.driving_ = true;
    s_.driver_ = scheduler::current()->current_thread();
  }
  ~driver_guard() {
    s_.write_busy_ = false;
    s_.driving_ = false;
    s_.driver_ = {};
  }
  driver_guard(const driver_guard&) = delete;
  driver_guard& operator=(const driver_guard&) = delete;
  socket_impl& s_;
};

socket_impl::socket_impl(connection& c, const options& o) : c_(c), o_(o), ws_(this) {
  last_input_ = last_message_ = c.now();
  ws_.auto_fragment(false);
  ws_.read_message_max(o.max_message);
  if (o.deflate) {
    websocket::permessage_deflate pmd;
    pmd.server_enable = true;
    pmd.server_max_window_bits = o.deflate_window_bits;
    pmd.compLevel = o.deflate_level;
    pmd.msg_size_threshold = o.deflate_threshold;
    ws_.set_option(pmd);
  }
  ws_.set_option(websocket::stream_base::decorator([this](websocket::response_type& res) {
    res.set(beast::http::field::server, "lancer");
    if (!subprotocol_.empty()) res.set(beast::http::field::sec_websocket_protocol, subprotocol_);
  }));
}

socket_impl::~socket_impl() {
  if (reading_ != nullptr) std::exchange(reading_, nullptr)->drop();
  if (writing_ != nullptr) std::exchange(writing_, nullptr)->drop();
  while (head_ != nullptr) {
    posted* p = head_;
    head_ = p->next;
    p->drop();
  }
  tail_ = nullptr;
}

void socket_impl::run_posted() {
  while (head_ != nullptr) {
    posted* p = head_;
    head_ = p->next;
    if (head_ == nullptr) tail_ = nullptr;
    p->run();
  }
}

void socket_impl::serve_read() {
  transport_op* op = std::exchange(reading_, nullptr);
  const std::size_t n = op->fill(c_.buffered());
  c_.consume(n);
  op->complete({}, n);
}

void socket_impl::serve_write() {
  transport_op* op = std::exchange(writing_, nullptr);
  std::size_t n = 0;
  error_code ec;
  try {
    n = op->drain(c_);
  } catch (const std::exception&) {
    ec = boost::asio::error::broken_pipe;  // the connection failed or was closed
  }
  op->complete(ec, n);
}

void socket_impl::finish_read(error_code ec) {
  if (reading_ != nullptr) std::exchange(reading_, nullptr)->complete(ec, 0);
}

clock::time_point socket_impl::next_wake() const noexcept {
  if (closing_) return close_due_;
  clock::time_point t = clock::time_point::max();
  if (o_.idle_timeout > clock::duration::zero()) t = last_message_ + o_.idle_timeout;
  if (o_.ping_interval > clock::duration::zero()) {
    t = std::min(t, ping_out_ ? ping_sent_ + o_.ping_timeout : last_input_ + o_.ping_interval);
  }
  return t;
}

void socket_impl::start_close(std::uint16_t code, std::string_view reason) {
  if (close_busy_ || !ws_.is_open()) return;
  if (code_ == 0) {
    code_ = code;
    reason_ = reason;
  }
  closing_ = true;
  close_due_ = c_.now() + o_.close_timeout;
  if (c_.draining()) close_due_ = std::min(close_due_, c_.deadline());  // the drain's bound
  close_busy_ = true;
  ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(code),
                                          beast::string_view(reason.data(), reason.size())),
                  done_handler(&close_done_, this));
}

// The peer stopped answering: the connection goes at once (1006 unless a code was chosen).
void socket_impl::drop(std::string_view why, clock::duration waited) {
  log(log_level::info, c_.name(), "websocket: {} in {} ms: dropped", why,
      std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
  if (code_ == 0) code_ = close_code::abnormal;
  c_.abort(std::make_error_code(std::errc::timed_out));
  finish_read(boost::asio::error::timed_out);
}

void socket_impl::on_timer(clock::time_point now) {
  if (closing_) {
    if (now >= close_due_) drop("no close frame from the peer", o_.close_timeout);
    return;
  }
  if (c_.draining()) {
    start_close(close_code::going_away, "server going away");
    return;
  }
  if (ping_out_ && now >= ping_sent_ + o_.ping_timeout) {
    drop("no answer to a ping", o_.ping_timeout);
    return;
  }
  if (o_.idle_timeout > clock::duration::zero() && now >= last_message_ + o_.idle_timeout) {
    log(log_level::info, c_.name(), "websocket: idle for {} s: closed (1001)",
        std::chrono::duration_cast<std::chrono::seconds>(o_.idle_timeout).count());
    start_close(close_code::going_away, "idle timeout");
    return;
  }
  const bool ping_due = o_.ping_interval > clock::duration::zero() && !ping_out_ && !ping_busy_ &&
                        now >= last_input_ + o_.ping_interval;
  if (ping_due) {
    ping_out_ = true;
    ping_sent_ = now;
    ping_busy_ = true;
    ws_.async_ping({}, done_handler(&ping_done_, this));
  }
}

task<> socket_impl::wait_input() {
  if (c_.at_eof()) {
    finish_read(boost::asio::error::eof);
    co_return;
  }
  if (const clock::time_point t = next_wake(); t != clock::time_point::max()) {
    c_.wake_at(t);
  } else {
    c_.clear_deadline();
  }
  std::size_t n = 0;
  try {
    n = co_await c_.read();
  } catch (const cancelled&) {
    throw;
  } catch (const std::exception&) {
    finish_read(boost::asio::error::connection_reset);  // lost (a reset, a failed read)
    co_return;
  }
  if (n > 0) {
    last_input_ = c_.now();
    ping_out_ = false;
    co_return;
  }
  if (c_.at_eof() && c_.buffered().empty()) {
    finish_read(boost::asio::error::eof);
    co_return;
  }
  on_timer(c_.now());
}

void socket_impl::start_queued() {
  queued_busy_ = true;
  ws_.text(outbox_.front().first == kind::text);
  const std::string& m = outbox_.front().second;
  ws_.async_write(boost::asio::buffer(m), done_handler(&queued_done_, this));
}

void socket_impl::finish_queued() {
  queued_done_.finished = queued_busy_ = false;
  queued_ -= outbox_.front().second.size();
  outbox_.pop_front();
  if (queued_done_.ec) {  // the connection is done: nothing more goes out
    outbox_.clear();
    queued_ = 0;
  }
}

// After a send: waits while the connection holds more than its high-water mark (the peer is
// slow to read), as stream::send does, but not for ever: a peer that takes nothing for
// ping_timeout is dropped (1006).
task<> socket_impl::relieve() {
  const clock::duration patience =
      o_.ping_timeout > clock::duration::zero() ? o_.ping_timeout : std::chrono::seconds(30);
  const clock::time_point give_up = c_.now() + patience;
  while (!c_.closed()) {
    const std::size_t before = c_.unsent();
    const clock::time_point started = c_.now();
    c_.wake_at(give_up);
    try {
      co_await c_.send({});  // at once below the high-water mark
    } catch (const cancelled&) {
      throw;
    } catch (const std::exception&) {
      c_.abort(std::make_error_code(std::errc::connection_reset));
      co_return;
    }
    if (c_.unsent() < before || c_.now() == started) co_return;  // it moved, or no wait
    if (c_.now() >= give_up) {
      drop("the peer took nothing", patience);
      co_return;
    }
  }
}

task<> socket_impl::drive(done& d) {
  for (;;) {
    run_posted();
    // The driver's own operations, unless one of them is what this drive waits for.
    if (&d != &queued_done_ && queued_done_.finished) finish_queued();
    if (&d != &ping_done_ && ping_done_.finished) ping_done_.finished = ping_busy_ = false;
    if (&d != &close_done_ && close_done_.finished) close_done_.finished = close_busy_ = false;
    if (d.finished) co_return;
    if (writing_ != nullptr) {
      serve_write();
      continue;
    }
    if (close_asked_ != 0) {
      start_close(std::exchange(close_asked_, 0), "too slow: messages piled up");
      continue;
    }
    const bool send_queued =
        !queued_busy_ && !write_busy_ && !outbox_.empty() && ws_.is_open() && !closing_;
    if (send_queued) {
      start_queued();
      continue;
    }
    if (reading_ != nullptr) {
      if (c_.buffered().empty()) {
        co_await wait_input();
      } else {
        serve_read();
      }
      continue;
    }
    // Beast waits for something no operation will bring: end this one.
    log(log_level::error, c_.name(), "websocket: an operation stalled; the connection is closed");
    c_.abort(std::make_error_code(std::errc::operation_canceled));
    d.finished = true;
    d.ec = boost::asio::error::operation_aborted;
    co_return;
  }
}

void socket_impl::note_end(error_code ec) {
  if (code_ != 0 && ec != websocket::error::closed) return;
  const std::string who = c_.name();
  if (ec == websocket::error::closed) {
    const websocket::close_reason& r = ws_.reason();
    if (code_ == 0) {
      code_ = static_cast<std::uint16_t>(r.code);
      if (code_ == 0) code_ = close_code::no_status;
      reason_.assign(r.reason.data(), r.reason.size());
    }
    log(log_level::debug, who, "websocket: closed {}", code_);
    return;
  }
  std::uint16_t code = close_code::abnormal;
  if (ec == websocket::error::message_too_big || ec == websocket::error::buffer_overflow) {
    code = close_code::too_big;
  } else if (ec == websocket::error::bad_frame_payload) {  // not UTF-8 in a text message
    code = close_code::bad_payload;
  } else if (ec == websocket::condition::protocol_violation) {
    code = close_code::protocol_error;
  }
  code_ = code;
  if (code == close_code::abnormal) {
    log(log_level::debug, who, "websocket: connection lost ({})", ec.message());
  } else {
    log(log_level::info, who, "websocket: closed {}: {}", code, ec.message());
  }
}

task<bool> socket_impl::handshake(const beast::http::request<beast::http::empty_body>& req) {
  driver_guard g(*this);
  done d;
  ws_.async_accept(req, done_handler(&d, this));
  co_await drive(d);
  if (d.ec) {
    log(log_level::info, c_.name(), "websocket: handshake failed: {}", d.ec.message());
    co_return false;
  }
  last_input_ = last_message_ = c_.now();
  co_return true;
}

void socket_impl::choose_subprotocol(const http::headers& h) {
  for (const std::string& mine : o_.subprotocols) {
    bool offered = false;
    for (const http::headers::field f : h) {
      if (!http::iequals(f.name, "Sec-WebSocket-Protocol")) continue;
      http::for_each_list_item(f.value, [&](std::string_view p) {
        offered = offered || p == mine;
        return !offered;
      });
    }
    if (offered) {
      subprotocol_ = mine;
      return;
    }
  }
}

task<std::optional<message>> socket_impl::read_message() {
  if (!open()) co_return std::nullopt;
  driver_guard g(*this);
  in_.consume(in_.size());
  done d;
  ws_.async_read(in_, done_handler(&d, this));
  co_await drive(d);
  if (d.ec) {
    note_end(d.ec);
    co_return std::nullopt;
  }
  last_message_ = c_.now();
  const auto data = in_.cdata();
  co_return message{ws_.got_text() ? kind::text : kind::binary,
                    std::string_view(static_cast<const char*>(data.data()), data.size())};
}

task<bool> socket_impl::write_message(std::string_view data, kind type) {
  if (!open()) co_return false;
  if (driving_ && driver_ != scheduler::current()->current_thread()) co_return queue(data, type);
  driver_guard g(*this);
  if (queued_busy_) {  // one write at a time: a post()ed message is on its way
    co_await drive(queued_done_);
    finish_queued();
  }
  done d;
  write_busy_ = true;
  ws_.text(type == kind::text);
  ws_.async_write(boost::asio::const_buffer(data.data(), data.size()), done_handler(&d, this));
  co_await drive(d);
  write_busy_ = false;
  if (d.ec) {
    note_end(d.ec);
    co_return false;
  }
  last_message_ = c_.now();
  if (c_.unsent() > k_flush_above) co_await relieve();  // the peer is slow: wait for it
  co_return open();
}

task<bool> socket_impl::send_ping(std::string_view payload) {
  if (!open() || payload.size() > 125) co_return false;
  driver_guard g(*this);
  done d;
  ws_.async_ping(websocket::ping_data(payload.data(), payload.size()), done_handler(&d, this));
  co_await drive(d);
  co_return !d.ec;
}

task<> socket_impl::close_handshake(std::uint16_t code, std::string_view reason) {
  if (!open()) co_return;
  driver_guard g(*this);
  start_close(code, reason.substr(0, 123));
  // The peer's close frame comes through a read: Beast's close reads for it itself.
  if (close_busy_) {
    co_await drive(close_done_);
    close_done_.finished = close_busy_ = false;
  }
  if (ws_.is_open()) c_.close();
}

bool socket_impl::queue(std::string_view data, kind type) {
  if (!open() || close_asked_ != 0) return false;
  if (queued_ + data.size() > o_.max_queued) {
    log(log_level::info, c_.name(),
        "websocket: {} bytes wait for a peer that does not read: "
        "closed (1008)",
        queued_ + data.size());
    close_asked_ = close_code::policy_violation;
    c_.require_wakeback();
    return false;
  }
  outbox_.emplace_back(type, std::string(data));
  queued_ += data.size();
  c_.require_wakeback();
  return true;
}

}  // namespace detail

namespace {
detail::socket_impl& impl(socket& s) noexcept {
  return static_cast<detail::socket_impl&>(s);
}
const detail::socket_impl& impl(const socket& s) noexcept {
  return static_cast<const detail::socket_impl&>(s);
}

// A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 4.1): 22 characters and "==".
bool valid_key(std::string_view k) noexcept {
  if (k.size() != 24 || k.substr(22) != "==") return false;
  for (const char ch : k.substr(0, 22)) {
    const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
    if (!ok) return false;
  }
  return true;
}

// Whether the client offers permessage-deflate (RFC 7692 5: `permessage-deflate; params`).
bool offers_deflate(const http::headers& h) {
  bool found = false;
  for (const http::headers::field f : h) {
    if (!http::iequals(f.name, "Sec-WebSocket-Extensions")) continue;
    http::for_each_list_item(f.value, [&](std::string_view item) {
      found = found ||
              http::iequals(http::trim_ows(item.substr(0, item.find(';'))), "permessage-deflate");
      return !found;
    });
  }
  return found;
}

// The defaults, for accept(c, req).
const options& default_options() {
  static const options o;
  return o;
}
}  // namespace

socket::~socket() = default;

task<std::optional<message>> socket::read() {
  return impl(*this).read_message();
}
task<bool> socket::send(std::string_view text) {
  return impl(*this).write_message(text, kind::text);
}
task<bool> socket::send_binary(std::string_view bytes) {
  return impl(*this).write_message(bytes, kind::binary);
}
task<bool> socket::send(const message& m) {
  return impl(*this).write_message(m.data, m.type);
}
task<bool> socket::ping(std::string_view payload) {
  return impl(*this).send_ping(payload);
}
task<> socket::close(std::uint16_t code, std::string_view reason) {
  return impl(*this).close_handshake(code, reason);
}
bool socket::post(std::string_view data, kind type) {
  return impl(*this).queue(data, type);
}
bool socket::is_open() const noexcept {
  return impl(*this).open();
}
std::uint16_t socket::close_code() const noexcept {
  return impl(*this).code_;
}
std::string_view socket::close_reason() const noexcept {
  return impl(*this).reason_;
}
std::string_view socket::subprotocol() const noexcept {
  return impl(*this).subprotocol_;
}
bool socket::deflated() const noexcept {
  return impl(*this).deflated_;
}
connection& socket::conn() const noexcept {
  return impl(*this).c_;
}

task<std::unique_ptr<socket>> accept(connection& c, http::request& req) {
  return accept(c, req, default_options());
}

task<std::unique_ptr<socket>> accept(connection& c, http::request& req, const options& o) {
  if (!http::asks_upgrade(req, "websocket")) {
    http::fields f;
    f.add("Upgrade", "websocket");
    co_await http::respond(c, req, 426, "text/plain",
                           "This resource speaks WebSocket: ask for Upgrade: websocket.\n", f);
    co_return nullptr;
  }
  const http::headers& h = req.headers();
  std::string_view problem;
  if (req.method() != "GET") {
    problem = "the method must be GET";
  } else if (req.has_body()) {
    problem = "a handshake has no body";
  } else if (h.count("Sec-WebSocket-Key") != 1 || !valid_key(h.get("Sec-WebSocket-Key"))) {
    problem = "Sec-WebSocket-Key is missing or not 16 bytes in base64";
  }
  if (!problem.empty()) {
    log(log_level::info, c.name(), "websocket handshake refused: {}", problem);
    co_await http::respond(c, req, 400, "text/plain",
                           fmt::format("Bad WebSocket handshake: {}.\n", problem));
    co_return nullptr;
  }
  if (h.get("Sec-WebSocket-Version") != "13") {
    http::fields f;
    f.add("Sec-WebSocket-Version", "13");
    co_await http::respond(c, req, 426, "text/plain", "This server speaks WebSocket version 13.\n",
                           f);
    co_return nullptr;
  }
  if (o.check_origin && !o.check_origin(h.get("Origin"))) {
    log(log_level::info, c.name(), "websocket handshake refused: origin '{}' not allowed",
        h.get("Origin"));
    co_await http::respond(c, req, 403, "text/plain", "This origin may not open a WebSocket.\n");
    co_return nullptr;
  }
  beast::http::request<beast::http::empty_body> breq;
  breq.method_string(beast::string_view(req.method().data(), req.method().size()));
  breq.target(beast::string_view(req.target().data(), req.target().size()));
  breq.version(11);
  for (const http::headers::field f : h) {
    breq.insert(beast::string_view(f.name.data(), f.name.size()),
                beast::string_view(f.value.data(), f.value.size()));
  }
  auto s = std::make_unique<detail::socket_impl>(c, o);
  s->choose_subprotocol(h);
  s->deflated_ = o.deflate && offers_deflate(h);
  const bool ok = co_await s->handshake(breq);
  if (!ok) {
    c.close();
    co_return nullptr;
  }
  http::switched_protocols(c, req);
  co_return s;
}

}  // namespace lancer::ws
