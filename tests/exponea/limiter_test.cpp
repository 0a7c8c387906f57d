#include "dsr/exponea/limiter.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace dsr::exponea {
namespace {

using namespace std::chrono_literals;

// Calls that all wait from `start`; each takes its slot at the first look (every `step`) that
// finds it open, for `calls` calls. Returns when each went.
std::vector<steady_time> drive(spacing& s, int calls, steady_time start,
                               std::chrono::nanoseconds step = 1ms) {
  std::vector<steady_time> went;
  for (auto now = start; static_cast<int>(went.size()) < calls; now += step) {
    if (s.next_at(now) <= now) {
      s.take(now, start);
      went.push_back(now);
    }
  }
  return went;
}

// The most calls any window [t, t + span) holds.
std::size_t busiest(const std::vector<steady_time>& went, std::chrono::nanoseconds span = 1s) {
  std::size_t most = 0;
  for (std::size_t i = 0; i < went.size(); ++i) {
    const auto end = std::lower_bound(went.begin(), went.end(), went[i] + span);
    most = std::max(most, static_cast<std::size_t>(end - (went.begin() + i)));
  }
  return most;
}

double calls_per_second(const std::vector<steady_time>& went) {
  return static_cast<double>(went.size() - 1) /
         std::chrono::duration<double>(went.back() - went.front()).count();
}

TEST(Spacing, NoSecondHoldsMoreThanTheRateAndNothingBursts) {
  for (const double rate : {1.0, 10.0, 50.0, 200.0}) {
    spacing s(rate);
    const int calls = static_cast<int>(rate) * 5;
    const auto went = drive(s, calls, steady_time{} + 1h, 10us);
    EXPECT_LE(busiest(went), static_cast<std::size_t>(rate)) << rate;
    // Spaced, not bunched: consecutive calls are at least 1/R apart.
    for (std::size_t i = 1; i < went.size(); ++i) {
      ASSERT_GE(went[i] - went[i - 1], std::chrono::nanoseconds(static_cast<long>(1e9 / rate)));
    }
    // And the rate is used: the calls are spread over barely more than (calls - 1) / R.
    EXPECT_LT(went.back() - went.front(), 1s * ((calls - 1) / rate) * 1.09) << rate;
  }
}

TEST(Spacing, AnIdlePeriodEarnsNoBurst) {
  spacing s(10);
  const auto t0 = steady_time{} + 1h;
  s.take(t0, t0);
  const auto later = t0 + 1min;  // idle for a minute
  ASSERT_EQ(s.next_at(later), later);
  s.take(later, later);
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

TEST(Spacing, LateWakeUpsOfWaitingCallsAreCaughtUp) {
  // The limiter's timer fires up to 2 ms late (a busy or descheduled thread): looks every 2 ms.
  // Without catch-up each 5.4 ms slot would become 6 ms, 167 calls/s instead of 185.
  spacing s(200);
  const auto went = drive(s, 2000, steady_time{} + 1h, 2ms);
  EXPECT_GT(calls_per_second(went), 0.99 * 200 / 1.08);
  EXPECT_LE(busiest(went), 200U);
  EXPECT_LE(busiest(went, 1080ms), 200U);
}

TEST(Spacing, CatchingUpNeverFillsAWindowBeyondTheRate) {
  // Waiting calls met by late looks: mostly a fraction of a millisecond, now and then a stall of
  // 30-300 ms (longer than the 50 ms that is caught up).
  spacing s(200);
  std::mt19937 random(7);
  std::exponential_distribution<double> late_ms(1.0);
  std::uniform_int_distribution<int> stall_ms(30, 300);
  const auto start = steady_time{} + 1h;
  std::vector<steady_time> went;
  for (auto now = start; went.size() < 20000;) {
    const auto at = s.next_at(now);
    now = at + std::chrono::microseconds(static_cast<long>(late_ms(random) * 1000));
    if (random() % 200 == 0) {
      now += std::chrono::milliseconds(stall_ms(random));
    }
    ASSERT_LE(s.next_at(now), now);
    s.take(now, start);
    went.push_back(now);
  }
  EXPECT_LE(busiest(went), 200U);
  EXPECT_LE(busiest(went, 1080ms), 200U);
  // A stall is followed by a catch-up of at most 50 ms of slots, not a burst of the stall's.
  std::size_t longest_run = 0;
  for (std::size_t i = 1, run = 0; i < went.size(); ++i) {
    run = went[i] - went[i - 1] < 1ms ? run + 1 : 0;
    longest_run = std::max(longest_run, run);
  }
  EXPECT_LE(longest_run, 11U);
  EXPECT_GT(longest_run, 3U);  // catching up did happen
}

TEST(Spacing, TheWindowCountsACallFromWhenItLeft) {
  // R = 10: slots 108 ms apart. The first call's turn came at t0 but its thread resumed it only
  // at t0 + 200 ms; the 11th call must wait until the second one's time has left the window.
  spacing s(10);
  const auto t0 = steady_time{} + 1h;
  const auto went = drive(s, 10, t0);
  ASSERT_EQ(went.back(), t0 + 972ms);
  s.left(0, t0 + 200ms);
  EXPECT_EQ(s.next_at(t0 + 1080ms), went[1] + 1080ms);
  s.left(0, t0 + 100ms);  // a later report never moves a call earlier
  EXPECT_EQ(s.next_at(t0 + 1080ms), went[1] + 1080ms);
  s.left(99, t0 + 2s);  // a ticket not handed out yet changes nothing
  EXPECT_EQ(s.next_at(t0 + 1080ms), went[1] + 1080ms);
}

TEST(Spacing, TheEndOfA429IsNotCaughtUp) {
  spacing s(200);
  const auto t0 = steady_time{} + 1h;
  s.take(t0, t0);
  s.block_until(t0 + 1s);  // a call waiting since t0 goes only after the block, paced from there
  ASSERT_EQ(s.next_at(t0 + 10ms), t0 + 1s);
  s.take(t0 + 1s + 2ms, t0);
  EXPECT_EQ(s.next_at(t0 + 1s + 2ms), t0 + 1s + s.interval());
}

TEST(Spacing, ZeroRateIsUnlimited) {
  spacing s(0);
  const auto t0 = steady_time{} + 1h;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(s.next_at(t0), t0);
    s.take(t0, t0);
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

// Several daemons (docs/contract.md §8): the limiter's side of the shared rate limit, over a fake
// store. Each call first takes a turn of the whole cluster, one pacing interval (1.08 / R) wide.
struct fake_cluster {
  std::vector<std::chrono::microseconds> asked;    // the interval of each turn taken
  std::vector<std::chrono::milliseconds> blocks;   // Retry-Afters shared
  std::deque<std::optional<shared_turn>> answers;  // nullopt: the store is away
  std::size_t daemons = 2;

  shared_limit hooks() {
    shared_limit out;
    out.take = [this](std::chrono::microseconds interval)
        -> boost::asio::awaitable<std::optional<shared_turn>> {
      asked.push_back(interval);
      auto a = answers.empty() ? std::optional<shared_turn>(shared_turn{}) : answers.front();
      if (!answers.empty()) {
        answers.pop_front();
      }
      co_return a;
    };
    out.block = [this](std::chrono::milliseconds d) { blocks.push_back(d); };
    out.daemons = [this] { return daemons; };
    return out;
  }
};

TEST(SharedLimiter, EveryCallTakesATurnOfTheClusterFirst) {
  boost::asio::io_context ioc;
  limiter l(ioc.get_executor(), 50);
  fake_cluster c;
  l.share(c.hooks());
  std::vector<std::string> order;
  for (const char* job : {"job-1", "job-2", "job-3"}) {
    boost::asio::co_spawn(ioc, take_turn(l, priority::background, job, order),
                          boost::asio::detached);
  }
  ioc.run();
  EXPECT_EQ(order.size(), 3u);
  ASSERT_EQ(c.asked.size(), 3u);
  EXPECT_EQ(c.asked[0], std::chrono::microseconds(21600));  // 1.08 s / 50
}

// A Retry-After met by another daemon comes back as a blocked turn: the call waits it out here
// (preview and isTest see it through blocked_for) and asks again.
TEST(SharedLimiter, ABlockedTurnHoldsTheCallAndItAsksAgain) {
  boost::asio::io_context ioc;
  limiter l(ioc.get_executor(), 50);
  fake_cluster c;
  c.answers.push_back(shared_turn{0us, 30ms});
  l.share(c.hooks());
  std::vector<std::string> order;
  boost::asio::co_spawn(ioc, take_turn(l, priority::background, "job", order),
                        boost::asio::detached);
  ioc.run_one();  // the turn is taken and found blocked
  while (l.blocked_for().count() == 0 && ioc.run_one() > 0) {
  }
  EXPECT_GT(l.blocked_for().count(), 0);
  ioc.run();
  EXPECT_EQ(order, (std::vector<std::string>{"job"}));
  EXPECT_EQ(c.asked.size(), 2u);
  EXPECT_TRUE(c.blocks.empty());  // not this daemon's 429: nothing to share back
}

// A 429 met here is shared; one seen in the store is held here without sharing it again.
TEST(SharedLimiter, A429MetHereIsSharedAndOneSeenInTheStoreIsOnlyHeld) {
  boost::asio::io_context ioc;
  limiter l(ioc.get_executor(), 50);
  fake_cluster c;
  l.share(c.hooks());
  l.slow_down(3s);
  ASSERT_EQ(c.blocks.size(), 1u);
  EXPECT_EQ(c.blocks[0], 3s);
  ioc.poll();
  EXPECT_GT(l.blocked_for(), 2s);
  limiter other(ioc.get_executor(), 50);
  other.share(c.hooks());
  other.hold(5s);
  ioc.restart();
  ioc.poll();
  EXPECT_GT(other.blocked_for(), 4s);
  EXPECT_EQ(c.blocks.size(), 1u);
}

// The store away: the call goes on this daemon's own pacing, at R divided by the daemons last
// seen; the store back, at R again.
TEST(SharedLimiter, WithTheStoreAwayItPacesAtItsShareOfTheRate) {
  boost::asio::io_context ioc;
  limiter l(ioc.get_executor(), 20);
  fake_cluster c;
  c.answers = {std::nullopt};
  l.share(c.hooks());
  std::vector<std::string> order;
  boost::asio::co_spawn(ioc, take_turn(l, priority::background, "away", order),
                        boost::asio::detached);
  ioc.run();
  EXPECT_EQ(l.pacing_rate(), 10.0);
  boost::asio::co_spawn(ioc, take_turn(l, priority::background, "back", order),
                        boost::asio::detached);
  ioc.restart();
  ioc.run();
  EXPECT_EQ(l.pacing_rate(), 20.0);
  EXPECT_EQ(order, (std::vector<std::string>{"away", "back"}));
}

}  // namespace
}  // namespace dsr::exponea
