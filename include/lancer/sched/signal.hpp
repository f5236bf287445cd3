// A signal: the one thing the scheduler moves around.
//
// A signal is self-described. It names its target thread, what happened, an optional value,
// the thread that sent it, and optionally the very suspension it is meant for. The scheduler
// adds nothing to it: delivering a signal means resuming its target with it.
#pragma once

#include <cstdint>
#include <functional>

namespace lancer {

// Names a thread: a top-level coroutine owned by a scheduler. It stays valid as a name after
// the thread finishes; signals sent to a finished thread are dropped (the slot's generation no
// longer matches). A default-constructed id names no thread.
struct thread_id {
  std::uint32_t index = 0;       // slot in the scheduler's thread table
  std::uint32_t generation = 0;  // 0 = no thread; bumped each time the slot is reused

  explicit operator bool() const noexcept { return generation != 0; }
  friend bool operator==(thread_id, thread_id) = default;
};

// What happened. The kind decides how the awaiting `co_await` ends:
// resume, wakeback and value_ready let it return normally; timeout throws `timed_out`; cancel
// throws `cancelled`, and every later await in that thread throws too.
enum class signal_kind : std::uint8_t {
  resume,       // go on: a spawn starting, a sleep ending (after the start, `wait` must be set)
  wakeback,     // something the thread waits for may have changed: look again
  timeout,      // a deadline set on the thread's behalf has passed
  cancel,       // stop: unwind
  value_ready,  // a value the thread waits for is in `value`
};

// A bit set of signal kinds, for the awaitables that take only some of them.
using signal_mask = std::uint8_t;
constexpr signal_mask mask_of(signal_kind kind) noexcept {
  return static_cast<signal_mask>(1u << static_cast<unsigned>(kind));
}
constexpr signal_mask k_any_signal = 0x1f;

struct signal {
  thread_id target;  // who is resumed
  signal_kind kind = signal_kind::resume;
  std::uint32_t wait = 0;   // 0: any suspension; else only the suspension with this number
  std::uint64_t value = 0;  // payload, meaning agreed between sender and receiver
  thread_id source;         // the sending thread; empty when sent from outside any thread
};

}  // namespace lancer

template <>
struct std::hash<lancer::thread_id> {
  std::size_t operator()(lancer::thread_id id) const noexcept {
    return std::hash<std::uint64_t>{}((std::uint64_t{id.generation} << 32) | id.index);
  }
};
