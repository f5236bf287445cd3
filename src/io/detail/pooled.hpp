// Asio handlers whose operation memory comes from the frame pool. Private to src/.
//
// Asio recycles handler memory only inside its own run loop; lancer starts waits from
// coroutines the scheduler resumes, outside it, so Asio would malloc one operation per wait.
#pragma once

#include <boost/asio/bind_allocator.hpp>

#include <utility>

#include "lancer/sched/detail/frame_pool.hpp"

namespace lancer::detail {

template <class Handler>
auto pooled(Handler&& h) {
  return boost::asio::bind_allocator(pool_allocator<void>{}, std::forward<Handler>(h));
}

}  // namespace lancer::detail
