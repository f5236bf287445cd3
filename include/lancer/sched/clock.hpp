// The scheduler's clock: the steady clock in production, a manual clock in tests.
//
// A manual clock only moves when told to (`advance`, `advance_to`) or when its scheduler has
// nothing else to do and jumps it straight to the next timer. That is what makes a 30-second
// timeout test take microseconds, and makes its outcome exact rather than approximate.
#pragma once

#include <chrono>
#include <stdexcept>

namespace lancer {

class clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;

  // The steady clock: now() is std::chrono::steady_clock::now().
  static clock steady() noexcept { return clock{false, {}}; }

  // A manual clock that starts at `start` and moves only when told to.
  static clock manual(time_point start = time_point{} + std::chrono::hours(1)) noexcept {
    return clock{true, start};
  }

  bool is_manual() const noexcept { return manual_; }

  time_point now() const noexcept { return manual_ ? now_ : std::chrono::steady_clock::now(); }

  // Moves a manual clock forward to `t` (never backward: an earlier `t` is ignored).
  // Throws std::logic_error on the steady clock, which cannot be moved.
  void advance_to(time_point t) {
    if (!manual_) throw std::logic_error("lancer::clock: only a manual clock can be advanced");
    if (t > now_) now_ = t;
  }
  void advance(duration d) { advance_to(now_ + d); }
  // The time of day to show (a Date field): the system clock's; on a manual clock, the Unix
  // epoch plus the manual clock's time since its epoch, so that it moves only with the manual
  // clock and is the same in every run (the default start shows as 01:00:00 on 1 Jan 1970).
  std::chrono::system_clock::time_point wall_now() const noexcept {
    if (!manual_) return std::chrono::system_clock::now();
    return std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(now_.time_since_epoch())};
  }

 private:
  clock(bool manual, time_point start) noexcept : manual_(manual), now_(start) {}

  bool manual_;     // true: time moves only through advance/advance_to
  time_point now_;  // the manual clock's current time
};

}  // namespace lancer
