#include "dsr/jobs/dispatcher.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsr {
namespace {

using namespace std::chrono_literals;
using kind = flow_outcome::kind;

const time_point now{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

retry_config policy() {
  retry_config r;
  r.max_attempts = 5;
  r.initial_backoff = 1000ms;
  r.max_backoff = 10s;
  return r;
}

job with_attempts(std::uint32_t n) {
  job j;
  j.attempts = n;
  return j;
}

flow_outcome outcome(kind k, std::string message = "why",
                     std::optional<std::chrono::milliseconds> retry_after = std::nullopt) {
  return flow_outcome{k, std::move(message), "exponea_api_secret", retry_after};
}

// One row per flow outcome: the job's next state, attempts and MineOS status.
TEST(RetryPolicy, TerminalOutcomes) {
  struct row {
    kind k;
    job_state state;
    std::string status;
  };
  for (const auto& r :
       std::vector<row>{{kind::completed, job_state::completed, "Completed"},
                        {kind::user_not_found, job_state::user_not_found, "UserNotFound"},
                        {kind::failed, job_state::failed, "Failed"}}) {
    const auto next = decide(with_attempts(2), outcome(r.k, "because"), policy(), now, 0.5);
    EXPECT_EQ(next.state, r.state);
    EXPECT_EQ(to_string(next.outcome), r.status);
    EXPECT_EQ(next.outcome_message, "because");
    EXPECT_EQ(next.attempts, 3u);
  }
}

TEST(RetryPolicy, TransientFailureBacksOffExponentiallyWithFullJitter) {
  // Ceiling = min(max_backoff, initial * 2^attempts); the delay is ceiling * random.
  EXPECT_EQ(decide(with_attempts(0), outcome(kind::retry), policy(), now, 0.5).next_attempt_at,
            now + 500ms);
  EXPECT_EQ(decide(with_attempts(3), outcome(kind::retry), policy(), now, 0.5).next_attempt_at,
            now + 4000ms);
  auto patient = policy();
  patient.max_attempts = 12;
  EXPECT_EQ(decide(with_attempts(6), outcome(kind::retry), patient, now, 0.99).next_attempt_at,
            now + 9900ms);  // 64 s ceiling capped at max_backoff = 10 s
  EXPECT_EQ(decide(with_attempts(1), outcome(kind::retry), policy(), now, 0.0).next_attempt_at,
            now);
  const auto next = decide(with_attempts(1), outcome(kind::retry), policy(), now, 0.5);
  EXPECT_EQ(next.state, job_state::retrying);
  EXPECT_EQ(next.attempts, 2u);
  EXPECT_TRUE(to_string(next.outcome).empty());  // not a final status yet
}

TEST(RetryPolicy, RetryAfterIsHonouredUpToTheCap) {
  EXPECT_EQ(
      decide(with_attempts(0), outcome(kind::retry, "429", 7s), policy(), now, 0.5).next_attempt_at,
      now + 7s);
  EXPECT_EQ(
      decide(with_attempts(0), outcome(kind::retry, "429", 1h), policy(), now, 0.5).next_attempt_at,
      now + 10s);
}

TEST(RetryPolicy, GivesUpAfterMaxAttempts) {
  const auto next = decide(with_attempts(4), outcome(kind::retry, "HTTP 503"), policy(), now, 0.5);
  EXPECT_EQ(next.state, job_state::failed);
  EXPECT_EQ(to_string(next.outcome), "Failed");
  EXPECT_THAT(next.outcome_message, ::testing::HasSubstr("gave up after 5 attempts"));
  EXPECT_THAT(next.outcome_message, ::testing::HasSubstr("HTTP 503"));
}

// The table itself: every flow outcome has exactly one row, and each row's handling.
TEST(RetryPolicy, TableCoversEveryOutcomeOnce) {
  struct expected {
    kind k;
    handling what;
    bool counts_attempt;
    bool breaker_failure;
  };
  const std::vector<expected> rows{
      {kind::completed, handling::finish, true, false},
      {kind::user_not_found, handling::finish, true, false},
      {kind::failed, handling::finish, true, false},
      {kind::retry, handling::retry, true, true},
      {kind::rejected, handling::pause, false, false},
      {kind::stopped, handling::requeue, false, false},
      {kind::interrupted, handling::drop, false, false},
  };
  ASSERT_EQ(retry_policy().size(), rows.size());
  for (const auto& r : rows) {
    const auto& row = policy_for(r.k);
    EXPECT_EQ(row.outcome, r.k);
    EXPECT_EQ(row.what, r.what) << static_cast<int>(r.k);
    EXPECT_EQ(row.counts_attempt, r.counts_attempt) << static_cast<int>(r.k);
    EXPECT_EQ(row.breaker_failure, r.breaker_failure) << static_cast<int>(r.k);
  }
}

TEST(RetryPolicy, RejectionAndShutdownRequeueWithoutUsingAnAttempt) {
  for (const auto k : {kind::rejected, kind::stopped}) {
    const auto next = decide(with_attempts(4), outcome(k, "secret rejected"), policy(), now, 0.5);
    EXPECT_EQ(next.state, job_state::queued);
    EXPECT_EQ(next.attempts, 4u);  // max_attempts is 5: a fifth would fail it
    EXPECT_EQ(next.next_attempt_at, now);
    EXPECT_TRUE(to_string(next.outcome).empty());
  }
}

class Gate : public ::testing::Test {
 protected:
  const policy_row& row(kind k) { return policy_for(k); }
  dispatch_gate gate_{60s, breaker_config{3, 5s, 20s}};
  time_point t_ = now;
};

TEST_F(Gate, ARejectionPausesAndLetsOneProbeThroughPerInterval) {
  ASSERT_TRUE(gate_.ask(t_).go);
  gate_.record(row(kind::rejected), false, t_, "exponea_api_secret",
               "anonymizing: exponea_api_secret rejected (403 invalid secret)");
  EXPECT_THAT(gate_.paused().value_or(""), ::testing::HasSubstr("exponea_api_secret"));
  auto v = gate_.ask(t_ + 59s);
  EXPECT_FALSE(v.go);
  EXPECT_EQ(v.wake_at, t_ + 60s);
  v = gate_.ask(t_ + 60s);
  ASSERT_TRUE(v.go);
  EXPECT_TRUE(v.probe);
  EXPECT_FALSE(gate_.ask(t_ + 61s).go);  // one probe at a time
  // Still rejected: wait another interval.
  EXPECT_FALSE(gate_.record(row(kind::rejected), true, t_ + 61s, "exponea_api_secret", "again"));
  EXPECT_FALSE(gate_.ask(t_ + 120s).go);
  v = gate_.ask(t_ + 121s);
  ASSERT_TRUE(v.go && v.probe);
  // Accepted: dispatch resumes.
  EXPECT_TRUE(gate_.record(row(kind::completed), true, t_ + 122s, "", ""));
  EXPECT_FALSE(gate_.paused());
  EXPECT_TRUE(gate_.ask(t_ + 122s).go);
}

TEST_F(Gate, OnlyTheProbeCanEndAPause) {
  gate_.record(row(kind::rejected), false, t_, "exponea_api_key", "rejected");
  // A job that was already running when the pause began completes: not proof enough.
  EXPECT_FALSE(gate_.record(row(kind::completed), false, t_ + 1s, "", ""));
  EXPECT_TRUE(gate_.paused());
  // A probe that found nothing to run gives its turn back.
  ASSERT_TRUE(gate_.ask(t_ + 60s).probe);
  gate_.probe_unused();
  EXPECT_TRUE(gate_.ask(t_ + 60s).probe);
}

TEST_F(Gate, AReloadEndsThePauseAtOnce) {
  gate_.record(row(kind::rejected), false, t_, "exponea_api_token", "rejected");
  gate_.resume();
  EXPECT_FALSE(gate_.paused());
  const auto v = gate_.ask(t_ + 1s);
  EXPECT_TRUE(v.go);
  EXPECT_FALSE(v.probe);
}

TEST_F(Gate, TransientFailuresInARowOpenTheBreakerWithGrowingWaits) {
  gate_.record(row(kind::retry), false, t_, "", "HTTP 503");
  gate_.record(row(kind::completed), false, t_, "", "");  // a success resets the run
  gate_.record(row(kind::retry), false, t_, "", "HTTP 503");
  gate_.record(row(kind::retry), false, t_, "", "HTTP 503");
  EXPECT_TRUE(gate_.ask(t_).go);
  EXPECT_FALSE(gate_.breaker_open_for());
  gate_.record(row(kind::retry), false, t_, "", "HTTP 503");  // the third in a row
  EXPECT_THAT(gate_.holding().value_or(""), ::testing::HasSubstr("HTTP 503"));
  EXPECT_EQ(gate_.breaker_open_for(), 5s);  // what another daemon is told to hold for
  EXPECT_FALSE(gate_.paused());             // not a pause: /readyz stays ready
  EXPECT_FALSE(gate_.ask(t_ + 4s).go);
  auto v = gate_.ask(t_ + 5s);
  ASSERT_TRUE(v.go && v.probe);
  gate_.record(row(kind::retry), true, t_ + 5s, "", "HTTP 503");  // half-open probe failed
  EXPECT_FALSE(gate_.ask(t_ + 14s).go);                           // 10 s now
  EXPECT_EQ(gate_.breaker_open_for(), 10s);
  v = gate_.ask(t_ + 15s);
  ASSERT_TRUE(v.go && v.probe);
  gate_.record(row(kind::retry), true, t_ + 15s, "", "HTTP 503");
  EXPECT_FALSE(gate_.ask(t_ + 34s).go);  // 20 s, the cap
  ASSERT_TRUE(gate_.ask(t_ + 35s).probe);
  gate_.record(row(kind::retry), true, t_ + 35s, "", "HTTP 503");
  EXPECT_FALSE(gate_.ask(t_ + 54s).go);  // still capped at 20 s
  ASSERT_TRUE(gate_.ask(t_ + 55s).probe);
  EXPECT_TRUE(gate_.record(row(kind::user_not_found), true, t_ + 56s, "", ""));
  EXPECT_FALSE(gate_.holding());
}

TEST_F(Gate, A429OpensNoBreakerAndAProbeThatMeetsOneWaitsItsInterval) {
  // Calls sent together meet 429s together: that is the limiter's business, not an outage.
  for (int i = 0; i < 10; ++i) {
    gate_.throttled(false, t_);
  }
  EXPECT_FALSE(gate_.holding());
  EXPECT_TRUE(gate_.ask(t_).go);
  // Nor do they reset a run of real failures.
  gate_.record(row(kind::retry), false, t_, "", "HTTP 503");
  gate_.record(row(kind::retry), false, t_, "", "HTTP 503");
  gate_.throttled(false, t_);
  gate_.record(row(kind::retry), false, t_, "", "HTTP 503");
  ASSERT_TRUE(gate_.holding());
  // The breaker's probe meets a 429: no verdict; the next probe after the same 5 s, not doubled.
  ASSERT_TRUE(gate_.ask(t_ + 5s).probe);
  gate_.throttled(true, t_ + 5s);
  EXPECT_TRUE(gate_.holding());
  EXPECT_FALSE(gate_.ask(t_ + 9s).go);
  ASSERT_TRUE(gate_.ask(t_ + 10s).probe);
  EXPECT_TRUE(gate_.record(row(kind::completed), true, t_ + 10s, "", ""));
  EXPECT_FALSE(gate_.holding());
}

TEST_F(Gate, ShutdownAndLostLeasesSayNothingAboutExponea) {
  for (int i = 0; i < 10; ++i) {
    gate_.record(row(kind::stopped), false, t_, "", "");
    gate_.record(row(kind::interrupted), false, t_, "", "");
  }
  EXPECT_FALSE(gate_.holding());
}

}  // namespace
}  // namespace dsr
