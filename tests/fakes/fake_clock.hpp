#pragma once
// A clock that moves only when the test says so.

#include "dsr/common/clock.hpp"

#include <atomic>

namespace dsr::test {

class fake_clock final : public clock {
 public:
  explicit fake_clock(time_point start = time_point{std::chrono::sys_days{std::chrono::year{2026} /
                                                                          11 / 29}})
      : now_(start.time_since_epoch().count()) {}
  time_point now() const override { return time_point{millis{now_.load()}}; }
  void advance(millis d) { now_ += d.count(); }

 private:
  std::atomic<millis::rep> now_;
};

}  // namespace dsr::test
