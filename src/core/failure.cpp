#include "lancer/core/failure.hpp"

#include "lancer/sched/task.hpp"

namespace lancer {

failure classify_failure(const std::exception_ptr& e) noexcept {
  failure f;
  try {
    std::rethrow_exception(e);
  } catch (const timed_out&) {
    f = {log_level::debug, true, "deadline passed", {}};
  } catch (const cancelled&) {
    f = {log_level::debug, true, "cancelled", {}};
  } catch (const connection_error& x) {
    f = {log_level::info, true, x.what(), x.code()};
  } catch (const std::exception& x) {
    f = {log_level::error, false, x.what(), {}};
  } catch (...) {
    f = {log_level::error, false, "a non-standard exception", {}};
  }
  return f;
}

}  // namespace lancer
