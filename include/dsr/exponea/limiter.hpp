#pragma once
// Spacing of the calls to Exponea (docs/contract.md §5): no 1-second window holds more than
// `max_requests_per_second` (R) calls. Two rules, both on the times the calls leave:
// - pacing: call k goes no earlier than call k-1 + 1.08/R, so a second's worth never leaves at
//   once. A call that was already waiting when its slot came but went late (the timer fired late
//   on a busy or descheduled thread) does not push the later slots back: up to 50 ms of such
//   lateness is caught up. An idle period earns nothing.
// - window: no 1.08-second window holds more than R calls, whatever the pacing caught up, counted
//   at the time each call resumed on its own thread to go out (which, with several I/O threads,
//   can be well after its turn was granted on another). The extra 80 ms absorbs calls reaching
//   Exponea later than they left (docs/benchmarks.md).
// A 429 blocks every caller until its Retry-After has passed (the whole client slows down, not
// only the job that met it). Waiting interactive calls (preview, isTest, check) are let through
// before waiting background ones (jobs).
//
// Several daemons (docs/contract.md §8, PostgreSQL): with `share`, each call takes a turn from the
// store instead, which hands out one per pacing interval across every daemon (a GCRA row judged
// by the database's clock), and waits for it; a call that resumes more than 50 ms after its turn
// takes a fresh one (up to five times), so that a late call does not crowd the next daemon's. A
// 429 blocks every daemon through the store. While the store cannot be reached, this daemon goes
// by the rules above at R divided by the number of daemons it last saw alive.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>

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
  // Takes the next slot at `now` for a call that has waited since `queued`; returns the call's
  // ticket. Precondition: next_at(now) <= now.
  std::uint64_t take(steady_time now, steady_time queued);
  // The call with `ticket` actually left at `t` (later than it took its slot).
  void left(std::uint64_t ticket, steady_time t);
  // Nothing goes before `t` (a 429's Retry-After).
  void block_until(steady_time t);
  std::chrono::nanoseconds interval() const { return interval_; }

 private:
  std::chrono::nanoseconds interval_{0};
  std::size_t per_window_ = 0;  // calls a window may hold; 0 = unlimited
  steady_time tat_{};           // theoretical arrival time of the next call
  steady_time blocked_until_{};
  void forget_beyond_window();
  // When the latest per_window_ calls left (time, ticket), and where each ticket's entry is.
  std::multiset<std::pair<steady_time, std::uint64_t>> recent_times_;
  std::map<std::uint64_t, std::multiset<std::pair<steady_time, std::uint64_t>>::iterator>
      by_ticket_;
  std::uint64_t next_ticket_ = 0;
};

// A turn handed out by the store: wait this long and go, or (`blocked` > 0) a Retry-After holds
// every daemon for that long: ask again after it.
struct shared_turn {
  std::chrono::microseconds wait{0};
  std::chrono::microseconds blocked{0};
};
struct shared_limit {
  // The next turn, one `interval` after the cluster's last; nullopt when the store is away.
  std::function<boost::asio::awaitable<std::optional<shared_turn>>(std::chrono::microseconds)> take;
  // A 429 met here: every daemon holds back for `d`.
  std::function<void(std::chrono::milliseconds)> block;
  // The daemons alive when last seen (at least 1).
  std::function<std::size_t()> daemons;
};

// The turn a call was given (acquire), for `leave` when work comes between the turn and the send.
struct turn {
  std::uint64_t ticket = 0;
  bool local = false;  // taken from the local rules (not from the store's shared row)
  priority asked = priority::background;
  std::chrono::steady_clock::time_point granted{};
};

// Work between a turn and its call (a journal line) longer than this would let the call leave
// well after its turn, using up the window's tolerance for late arrivals: `leave` takes a fresh
// turn instead.
inline constexpr std::chrono::milliseconds late_departure{20};

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
  boost::asio::awaitable<turn> acquire(priority p);
  // The call of `t` leaves now, after work that came between its turn and now: the window counts
  // it from now, or, when that work took longer than late_departure, the call waits for a fresh
  // turn (returned).
  boost::asio::awaitable<turn> leave(turn t);
  // A 429: no call goes for `d` (at least a second when Exponea gave no Retry-After); shared
  // with the other daemons when there are.
  void slow_down(std::chrono::milliseconds d);
  // Another daemon's 429, seen in the store: no call goes for `d` here.
  void hold(std::chrono::milliseconds d);
  // How long calls are still held back by a Retry-After (0: not): preview and isTest answer 503
  // meanwhile. Thread-safe.
  std::chrono::milliseconds blocked_for() const;
  // Takes turns from the store from now on (see the top of this file). Call before any acquire.
  void share(shared_limit s);
  // The rate this daemon paces itself at: R, or R / daemons while the store is away.
  double pacing_rate() const;
  // A reload changed max_requests_per_second.
  void set_rate(double per_second);
  // Total time callers spent waiting for their turn (for metrics).
  std::chrono::nanoseconds waited() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace dsr::exponea
