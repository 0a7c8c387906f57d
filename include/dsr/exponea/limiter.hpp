#pragma once
// Spacing of the calls to Exponea (contract §5): no 1-second window holds more than
// `max_requests_per_second` calls. A GCRA with no burst: call k may go no earlier than
// call k-1 + 1.05/R, so R calls span a little more than a second and a second's worth never
// leaves at once. A 429
// blocks every caller until its Retry-After has passed (the whole client slows down, not only the
// job that met it). Waiting interactive calls (preview, isTest, check) are let through before
// waiting background ones (jobs).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>

namespace dsr::exponea {

enum class priority { interactive, background };

using steady_time = std::chrono::steady_clock::time_point;

// The arithmetic, without I/O or threads: tested with explicit times.
class spacing {
 public:
  // Calls per second; 0 = unlimited.
  explicit spacing(double per_second = 0);
  void set_rate(double per_second);
  // When the next call may go, seen at `now` (never earlier than now).
  steady_time next_at(steady_time now) const;
  // Takes the next slot at `now`. Precondition: next_at(now) <= now.
  void take(steady_time now);
  // Nothing goes before `t` (a 429's Retry-After).
  void block_until(steady_time t);
  std::chrono::nanoseconds interval() const { return interval_; }

 private:
  std::chrono::nanoseconds interval_{0};
  steady_time tat_{};  // theoretical arrival time of the next call
  steady_time blocked_until_{};
};

// Thread-safe. Waiters are resumed on their own executor.
class limiter {
 public:
  limiter(
      boost::asio::any_io_executor ex, double per_second,
      std::function<steady_time()> now = [] { return std::chrono::steady_clock::now(); });
  ~limiter();
  limiter(const limiter&) = delete;
  limiter& operator=(const limiter&) = delete;

  // Waits for this call's turn.
  boost::asio::awaitable<void> acquire(priority p);
  // A 429: no call goes for `d` (at least a second when Exponea gave no Retry-After).
  void slow_down(std::chrono::milliseconds d);
  // A reload changed max_requests_per_second.
  void set_rate(double per_second);
  // Total time callers spent waiting for their turn (for metrics).
  std::chrono::nanoseconds waited() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace dsr::exponea
