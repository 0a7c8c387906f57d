#include "dsr/exponea/limiter.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace dsr::exponea {
namespace {

using namespace std::chrono_literals;

// Takes every slot as soon as it is offered, for `calls` calls; returns when each went.
std::vector<steady_time> drive(spacing& s, int calls, steady_time start,
                               std::chrono::nanoseconds step = 1ms) {
  std::vector<steady_time> went;
  for (auto now = start; static_cast<int>(went.size()) < calls; now += step) {
    if (s.next_at(now) <= now) {
      s.take(now);
      went.push_back(now);
    }
  }
  return went;
}

// The most calls any 1-second window [t, t + 1 s) holds.
std::size_t busiest_second(const std::vector<steady_time>& went) {
  std::size_t most = 0;
  for (std::size_t i = 0; i < went.size(); ++i) {
    const auto end = std::lower_bound(went.begin(), went.end(), went[i] + 1s);
    most = std::max(most, static_cast<std::size_t>(end - (went.begin() + i)));
  }
  return most;
}

TEST(Spacing, NoSecondHoldsMoreThanTheRateAndNothingBursts) {
  for (const double rate : {1.0, 10.0, 50.0, 200.0}) {
    spacing s(rate);
    const int calls = static_cast<int>(rate) * 5;
    const auto went = drive(s, calls, steady_time{} + 1h, 10us);
    EXPECT_LE(busiest_second(went), static_cast<std::size_t>(rate)) << rate;
    // Spaced, not bunched: consecutive calls are at least 1/R apart.
    for (std::size_t i = 1; i < went.size(); ++i) {
      ASSERT_GE(went[i] - went[i - 1], std::chrono::nanoseconds(static_cast<long>(1e9 / rate)));
    }
    // And the rate is used: the calls are spread over barely more than (calls - 1) / R.
    EXPECT_LT(went.back() - went.front(), 1s * ((calls - 1) / rate) * 1.06) << rate;
  }
}

TEST(Spacing, AnIdlePeriodEarnsNoBurst) {
  spacing s(10);
  const auto t0 = steady_time{} + 1h;
  s.take(t0);
  const auto later = t0 + 1min;  // idle for a minute
  ASSERT_EQ(s.next_at(later), later);
  s.take(later);
  EXPECT_GE(s.next_at(later) - later, 100ms);  // the next one still waits its spacing
}

TEST(Spacing, A429BlocksUntilRetryAfter) {
  spacing s(100);
  const auto t0 = steady_time{} + 1h;
  s.block_until(t0 + 7s);
  EXPECT_EQ(s.next_at(t0), t0 + 7s);
  s.block_until(t0 + 2s);  // an earlier block does not shorten it
  EXPECT_EQ(s.next_at(t0), t0 + 7s);
}

TEST(Spacing, ZeroRateIsUnlimited) {
  spacing s(0);
  const auto t0 = steady_time{} + 1h;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(s.next_at(t0), t0);
    s.take(t0);
  }
}

boost::asio::awaitable<void> take_turn(limiter& l, priority p, std::string name,
                                       std::vector<std::string>& order) {
  co_await l.acquire(p);
  order.push_back(std::move(name));
}

TEST(Limiter, InteractiveCallsGoBeforeWaitingJobs) {
  boost::asio::io_context ioc;
  limiter l(ioc.get_executor(), 20);  // one call per 50 ms
  std::vector<std::string> order;
  // The first job takes the free slot; the rest wait, and the preview arrives last.
  for (const char* job : {"job-1", "job-2", "job-3"}) {
    boost::asio::co_spawn(ioc, take_turn(l, priority::background, job, order),
                          boost::asio::detached);
  }
  boost::asio::co_spawn(ioc, take_turn(l, priority::interactive, "preview", order),
                        boost::asio::detached);
  ioc.run();
  EXPECT_EQ(order, (std::vector<std::string>{"job-1", "preview", "job-2", "job-3"}));
  EXPECT_GT(l.waited().count(), 0);
}

}  // namespace
}  // namespace dsr::exponea
