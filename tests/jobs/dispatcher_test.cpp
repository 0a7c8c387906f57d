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
                        {kind::failed, job_state::failed, "Failed"},
                        {kind::rejected, job_state::failed, "Failed"}}) {
    const auto next = decide(with_attempts(2), outcome(r.k, "because"), policy(), now, 0.5);
    EXPECT_EQ(next.state, r.state);
    EXPECT_EQ(next.outcome, r.status);
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
  EXPECT_TRUE(next.outcome.empty());  // not a final status yet
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
  EXPECT_EQ(next.outcome, "Failed");
  EXPECT_THAT(next.outcome_message, ::testing::HasSubstr("gave up after 5 attempts"));
  EXPECT_THAT(next.outcome_message, ::testing::HasSubstr("HTTP 503"));
}

}  // namespace
}  // namespace dsr
