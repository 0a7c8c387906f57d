#pragma once
// The wall clock as a seam: production code asks a `clock`, tests inject a fake one so that
// time-based behaviour is tested without sleeping.

#include <chrono>
#include <memory>

namespace dsr {

using millis = std::chrono::milliseconds;
using time_point = std::chrono::sys_time<millis>;

class clock {
 public:
  virtual ~clock() = default;
  // Current UTC time, millisecond precision. Thread-safe in every implementation.
  virtual time_point now() const = 0;
};

// The system's real-time clock.
std::shared_ptr<clock> make_system_clock();

}  // namespace dsr
