// lancer::http::metrics: counters for a Prometheus scrape, shared by every worker thread of a
// process.
//
//   http::metrics stats;                              // one for the process
//   // on each worker thread, with its own scheduler and server:
//   lancer::server srv{sched, http::serve(app, lim, stats.hook())};
//   stats.watch(srv);                                 // connections open, timeouts
//   lancer::server scrape{sched, http::serve(stats.handler())};  // on a listener of its own
//   ...
//   stats.count_reload(ok);                           // after a configuration reload
//
// Rules:
// - The request path takes no lock and allocates nothing: each OS thread that calls the hook
//   gets a block of counters of its own on its first request (the one allocation), which only
//   it writes; render() adds the blocks up. The blocks live as long as the metrics, so a
//   thread that ends keeps its counts in the totals (counters never go back).
// - watch(s) publishes `s`'s connections open and timeouts at the end of each turn of its
//   scheduler (scheduler::add_after_turn) for render() to read; it stops when `s` is
//   destroyed (its connections open then count 0).
// - render() may be called from any OS thread, at any time; each number it shows is one that
//   was true a moment before (the counts of a request that is being counted may show in one
//   family and not yet in the next).
//
// The families (Prometheus text exposition format 0.0.4):
//   lancer_connections_open                  gauge: connections open on the watched servers
//   lancer_requests_total{code="2xx"}        counter: requests answered, by status class
//                                            (1xx to 5xx; each is shown, 0 included)
//   lancer_request_duration_seconds          histogram: from the request's start
//                                            (request::started_at) to the hook's call, on the
//                                            scheduler's clock; buckets 0.5 ms to 10 s
//   lancer_received_bytes_total              counter: bytes the requests took from their
//                                            connections (request::request_bytes)
//   lancer_sent_bytes_total                  counter: bytes written for their answers, heads
//                                            included (request::response_bytes)
//   lancer_timeouts_total                    counter: deadlines that passed on the watched
//                                            servers' connections (server_stats::timed_out: a
//                                            header, body, handler or idle keep-alive timeout)
//   lancer_reloads_total{result="ok"}        counter: configuration reloads (count_reload),
//   lancer_reloads_total{result="failed"}    each result shown
// The byte counts are counted as each request's hook runs: bytes of a connection that no
// request took (a body skipped after its answer, input after the last request) are not.
#pragma once

#include <memory>
#include <string>

#include "lancer/core/server.hpp"
#include "lancer/http/httputil.hpp"

namespace lancer::http {

namespace detail {
struct metrics_state;
}

class metrics {
 public:
  metrics();
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // A hook for http::serve and router::handler (it may be combined with an access log's in
  // a hook of one's own) that counts each request: its status class, its duration and its
  // bytes. It shares the metrics' state, so it may outlive this object.
  access_hook hook() const;

  // Publishes `s`'s connections open and timeouts from now on, at the end of each of its
  // scheduler's turns, until `s` is destroyed. Call it on `s`'s scheduler's OS thread (the
  // thread that runs it), once per server; `s` is destroyed on that thread too, as a server
  // always is.
  void watch(server& s);

  // Counts a configuration reload that succeeded (`ok`) or failed. Any OS thread.
  void count_reload(bool ok) noexcept;

  // The metrics in Prometheus text format 0.0.4. Any OS thread.
  std::string render() const;

  // A request handler for the scrape: GET and HEAD get render() as
  // `text/plain; version=0.0.4; charset=utf-8`; other methods get 405 with `Allow: GET, HEAD`.
  // It shares the metrics' state, so it may outlive this object.
  request_handler handler() const;

 private:
  std::shared_ptr<detail::metrics_state> state_;  // shared with hooks and watchers
};

}  // namespace lancer::http
