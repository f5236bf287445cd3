#include "lancer/http/metrics.hpp"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "lancer/core/frame.hpp"
#include "lancer/http/headers.hpp"
#include "lancer/http/request.hpp"
#include "lancer/sched/scheduler.hpp"

namespace lancer::http {

namespace {

// The histogram's upper bounds, in nanoseconds; a last bucket (+Inf) takes the rest.
constexpr std::array<std::uint64_t, 14> k_bounds_ns = {
    500'000,       1'000'000,     2'500'000,     5'000'000,     10'000'000,
    25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
constexpr std::array<std::string_view, 14> k_bound_labels = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};
constexpr std::size_t k_buckets = k_bounds_ns.size() + 1;

using counter = std::atomic<std::uint64_t>;

// Adds `n` to a counter only its own OS thread writes: no read-modify-write instruction, and a
// scrape from another thread reads it without a race.
void bump(counter& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::uint64_t read(const counter& c) noexcept {
  return c.load(std::memory_order_relaxed);
}

// A metrics object's id: a thread's cache of its blocks tells metrics apart by it (an address
// could be reused by a later one).
std::atomic<std::uint64_t> g_next_id{1};

}  // namespace

namespace detail {

// One OS thread's request counts; written by that thread only.
struct metrics_block {
  std::array<counter, 5> by_class{};         // 1xx .. 5xx
  std::array<counter, k_buckets> buckets{};  // not cumulative; the last one is +Inf
  counter duration_ns{0};                    // the histogram's sum
  counter received{0};
  counter sent{0};
};

// One watched server's numbers, published at the end of its scheduler's turns.
struct server_gauge {
  counter open{0};
  counter timed_out{0};
};

struct metrics_state {
  const std::uint64_t id = g_next_id.fetch_add(1, std::memory_order_relaxed);
  mutable std::mutex mutex;  // guards blocks and servers (the lists, not the counts)
  std::vector<std::unique_ptr<metrics_block>> blocks;
  std::vector<std::shared_ptr<server_gauge>> servers;
  counter reloads_ok{0};
  counter reloads_failed{0};

  metrics_block& block_for_this_thread();
  void count(const connection& c, const request& req);
  std::string render() const;
};

namespace {

// This OS thread's blocks, by metrics id. An entry of a metrics gone is never looked at again.
struct thread_blocks {
  std::vector<std::pair<std::uint64_t, metrics_block*>> entries;
};
thread_local thread_blocks t_blocks;

// A server's watchers: destroyed with the server (its pubframe), they stop publishing.
struct metrics_watchers {
  explicit metrics_watchers(scheduler& s) : sched(s) {}
  metrics_watchers(const metrics_watchers&) = delete;
  metrics_watchers& operator=(const metrics_watchers&) = delete;
  ~metrics_watchers() {
    for (const auto& [id, gauge] : watches) {
      sched.remove_after_turn(id);
      gauge->open.store(0, std::memory_order_relaxed);
    }
  }
  scheduler& sched;
  std::vector<std::pair<scheduler::turn_callback_id, std::shared_ptr<server_gauge>>> watches;
};

}  // namespace

metrics_block& metrics_state::block_for_this_thread() {
  for (const auto& [owner, block] : t_blocks.entries) {
    if (owner == id) return *block;
  }
  auto fresh = std::make_unique<metrics_block>();
  metrics_block& b = *fresh;
  {
    std::lock_guard lock(mutex);
    blocks.push_back(std::move(fresh));
  }
  t_blocks.entries.emplace_back(id, &b);
  return b;
}

void metrics_state::count(const connection& c, const request& req) {
  metrics_block& b = block_for_this_thread();
  const unsigned status = req.response_status();
  if (status >= 100 && status < 600) bump(b.by_class[status / 100 - 1]);
  const clock::duration d = c.now() - req.started_at();
  const std::uint64_t ns =
      d > clock::duration::zero()
          ? static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(d).count())
          : 0;
  std::size_t i = 0;
  while (i < k_bounds_ns.size() && ns > k_bounds_ns[i])
    ++i;
  bump(b.buckets[i]);
  bump(b.duration_ns, ns);
  bump(b.received, req.request_bytes());
  bump(b.sent, req.response_bytes());
}

namespace {

// Appends a family's HELP and TYPE lines.
void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void sample(std::string& out, std::string_view name, std::uint64_t value) {
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

}  // namespace

std::string metrics_state::render() const {
  std::array<std::uint64_t, 5> by_class{};
  std::array<std::uint64_t, k_buckets> buckets{};
  std::uint64_t duration_ns = 0, received = 0, sent = 0, open = 0, timed_out = 0;
  {
    std::lock_guard lock(mutex);
    for (const auto& b : blocks) {
      for (std::size_t i = 0; i < by_class.size(); ++i)
        by_class[i] += read(b->by_class[i]);
      for (std::size_t i = 0; i < buckets.size(); ++i)
        buckets[i] += read(b->buckets[i]);
      duration_ns += read(b->duration_ns);
      received += read(b->received);
      sent += read(b->sent);
    }
    for (const auto& g : servers) {
      open += read(g->open);
      timed_out += read(g->timed_out);
    }
  }
  std::string out;
  out.reserve(2048);
  family(out, "lancer_connections_open", "gauge", "Connections open now.");
  sample(out, "lancer_connections_open", open);
  family(out, "lancer_requests_total", "counter", "Requests answered, by status class.");
  for (std::size_t i = 0; i < by_class.size(); ++i)
    fmt::format_to(std::back_inserter(out), "lancer_requests_total{{code=\"{}xx\"}} {}\n", i + 1,
                   by_class[i]);
  family(out, "lancer_request_duration_seconds", "histogram",
         "Time from a request's first byte to its answer.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    cumulative += buckets[i];
    const std::string_view le = i < k_bound_labels.size() ? k_bound_labels[i] : "+Inf";
    fmt::format_to(std::back_inserter(out),
                   "lancer_request_duration_seconds_bucket{{le=\"{}\"}} {}\n", le, cumulative);
  }
  fmt::format_to(std::back_inserter(out), "lancer_request_duration_seconds_sum {}.{:09}\n",
                 duration_ns / 1'000'000'000, duration_ns % 1'000'000'000);
  sample(out, "lancer_request_duration_seconds_count", cumulative);
  family(out, "lancer_received_bytes_total", "counter", "Bytes of requests received.");
  sample(out, "lancer_received_bytes_total", received);
  family(out, "lancer_sent_bytes_total", "counter", "Bytes of responses sent, heads included.");
  sample(out, "lancer_sent_bytes_total", sent);
  family(out, "lancer_timeouts_total", "counter", "Connection deadlines that passed.");
  sample(out, "lancer_timeouts_total", timed_out);
  family(out, "lancer_reloads_total", "counter", "Configuration reloads, by result.");
  fmt::format_to(std::back_inserter(out), "lancer_reloads_total{{result=\"ok\"}} {}\n",
                 read(reloads_ok));
  fmt::format_to(std::back_inserter(out), "lancer_reloads_total{{result=\"failed\"}} {}\n",
                 read(reloads_failed));
  return out;
}

}  // namespace detail

namespace {

// Not a coroutine: respond() writes the answer before it returns, so `body` need not outlive
// the call.
task<> serve_scrape(const detail::metrics_state& st, connection& c, request& req) {
  if (req.method() != "GET" && req.method() != "HEAD") {
    const http::fields allow{{"Allow", "GET, HEAD"}};
    return respond(c, req, 405, "text/plain", "Method Not Allowed\n", allow);
  }
  const std::string body = st.render();
  return respond(c, req, 200, "text/plain; version=0.0.4; charset=utf-8", body);
}

}  // namespace

metrics::metrics() : state_(std::make_shared<detail::metrics_state>()) {}

metrics::~metrics() = default;

access_hook metrics::hook() const {
  return [st = state_](const connection& c, const request& req) { st->count(c, req); };
}

void metrics::watch(server& s) {
  auto gauge = std::make_shared<detail::server_gauge>();
  {
    std::lock_guard lock(state_->mutex);
    state_->servers.push_back(gauge);
  }
  auto publish = [&s, gauge] {
    gauge->open.store(s.connections(), std::memory_order_relaxed);
    gauge->timed_out.store(s.stats().timed_out, std::memory_order_relaxed);
  };
  publish();
  auto& watchers = s.shared().get_or_emplace<detail::metrics_watchers>(s.sched());
  watchers.watches.emplace_back(s.sched().add_after_turn(publish), gauge);
}

void metrics::count_reload(bool ok) noexcept {
  (ok ? state_->reloads_ok : state_->reloads_failed).fetch_add(1, std::memory_order_relaxed);
}

std::string metrics::render() const {
  return state_->render();
}

request_handler metrics::handler() const {
  return [st = std::shared_ptr<const detail::metrics_state>(state_)](
             connection& c, request& req, frame&, pubframe&) { return serve_scrape(*st, c, req); };
}

}  // namespace lancer::http
