// The server's record of one connection: {connection, deadline, bound thread, frame}.
// Users never see it; the managing coroutine works on these.
//
// It is the node of the connection's deadline in the server's heap (heap_node), and the owner
// of the connection's thread (thread_owner): the scheduler tells it when the handler ends.
#pragma once

#include <cstdint>
#include <memory>

#include "lancer/core/connection.hpp"
#include "lancer/core/frame.hpp"
#include "lancer/io/transport.hpp"
#include "lancer/sched/detail/frame_pool.hpp"
#include "lancer/sched/detail/timer_heap.hpp"
#include "lancer/sched/scheduler.hpp"
#include "lancer/sched/signal.hpp"

namespace lancer::detail {

struct descriptor final : heap_node, thread_owner {
  descriptor(server& srv, std::uint64_t id, std::unique_ptr<transport> t)
      : conn(srv, *this, id, std::move(t)) {}

  // Descriptors come and go with connections: recycle their memory like coroutine frames.
  static void* operator new(std::size_t n) { return frame_pool::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_pool::deallocate(p, n); }

  void thread_ended(thread_id t, bool finished, std::exception_ptr error) noexcept override;

  connection conn;      // owns the source's transport
  lancer::frame frame;  // the handler's per-connection state
  thread_id thread;     // the handler's thread
  // The deadline (max: none). The heap key (heap_node::deadline) is never later: a deadline
  // that moves later, as a keep-alive connection's does at every request, only changes this;
  // the key is moved when it comes due. So most requests cost no heap operation.
  clock::time_point due = clock::time_point::max();
  descriptor* ready_next = nullptr;  // ready list (intrusive, FIFO)
  descriptor* all_prev = nullptr;    // every live descriptor (intrusive)
  descriptor* all_next = nullptr;
  std::uint8_t expiry_stage = 0;  // 0: next expiry times out; 1: next expiry cuts off
  bool wake_only = false;         // the deadline is a wake_at(): wake the thread, close nothing
  bool lingering = false;         // handler done, FIN sent: reading until the peer's EOF
  bool ready = false;             // on the ready list
  bool finished = false;          // the handler's thread has ended
};

// One connection's share of memory: a frame-pool block of 248 bytes (a 256-byte malloc chunk).
static_assert(sizeof(descriptor) <= 248);

}  // namespace lancer::detail
