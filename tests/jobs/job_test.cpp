#include "dsr/jobs/job.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace dsr {
namespace {

using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

TEST(Job, NamesRoundTrip) {
  for (const auto s : {job_state::queued, job_state::running, job_state::retrying,
                       job_state::completed, job_state::user_not_found, job_state::failed,
                       job_state::cancelled, job_state::missing_identifiers}) {
    EXPECT_EQ(parse_job_state(to_string(s)), s);
  }
  EXPECT_FALSE(parse_job_state("done"));
  EXPECT_EQ(parse_operation("delete"), operation::delete_);
  EXPECT_EQ(parse_operation("copy"), operation::copy);
  EXPECT_EQ(parse_operation("opt_out"), operation::opt_out);
  EXPECT_EQ(to_string(job_state::missing_identifiers), "missing_identifiers");
  // Delete and opt-out close MineOS's Delete action.
  EXPECT_EQ(to_string(action_of(operation::opt_out)), "Delete");
  EXPECT_EQ(to_string(action_of(operation::delete_)), "Delete");
  EXPECT_EQ(to_string(action_of(operation::copy)), "Copy");
}

// The MineOS statuses are stored and reported by these names (docs/contract.md §6).
TEST(Job, OutcomesKeepTheContractsNames) {
  EXPECT_EQ(to_string(job_outcome::none), "");
  EXPECT_EQ(to_string(job_outcome::completed), "Completed");
  EXPECT_EQ(to_string(job_outcome::user_not_found), "UserNotFound");
  EXPECT_EQ(to_string(job_outcome::failed), "Failed");
  EXPECT_EQ(to_string(job_outcome::missing_identifiers), "MissingIdentifiers");
  for (const auto o : {job_outcome::none, job_outcome::completed, job_outcome::user_not_found,
                       job_outcome::failed, job_outcome::missing_identifiers}) {
    EXPECT_EQ(parse_job_outcome(to_string(o)), o);
  }
  EXPECT_FALSE(parse_job_outcome("completed"));
}

// A journal's step names read back as they were written, including those of another version.
TEST(Job, StepNamesRoundTripAndKeepUnknownNames) {
  EXPECT_EQ(to_string(step_name::attempt(3)), "attempt 3");
  EXPECT_EQ(to_string(step_name::consent("newsletter")), "consent newsletter");
  EXPECT_EQ(to_string(step_name{step_kind::operator_action}), "operator");
  EXPECT_EQ(parse_step("track"), step_name{step_kind::track});
  EXPECT_EQ(parse_step("attempt 0"), step_name::attempt(0));
  EXPECT_EQ(parse_step("consent a b"), step_name::consent("a b"));
  for (const std::string_view text :
       {"received", "attempt 12", "paused", "stopped", "operator", "track", "anonymize", "verify",
        "consent marketing", "export", "attempt", "attempt x", "consent", "", "track "}) {
    EXPECT_EQ(to_string(parse_step(text)), text);
  }
  EXPECT_EQ(parse_step("export").kind, step_kind::other);
  EXPECT_EQ(parse_step("attempt x").kind, step_kind::other);
}

TEST(Job, DueDateCountsFromCreatedAtElseReceipt) {
  job j;
  j.received_at = t0;
  EXPECT_EQ(j.due_at(30), t0 + std::chrono::days{30});
  j.created_at = t0 - std::chrono::days{2};
  EXPECT_EQ(j.due_at(30), t0 + std::chrono::days{28});
}

TEST(Job, ViewHasTheContractFieldsAndNeverTheEmail) {
  job j;
  j.request_id = "req-1";
  j.op = operation::copy;
  j.state = job_state::retrying;
  j.attempts = 2;
  j.received_at = t0;
  j.updated_at = t0 + 5s;
  j.subject = "jane@example.com";
  j.history = {{t0, step_kind::received, "accepted"}};
  const auto v = job_view(j, {30, 7}, t0 + 1h);
  EXPECT_EQ(v["requestId"], "req-1");
  EXPECT_EQ(v["operation"], "copy");
  EXPECT_TRUE(v["requestType"].is_null());
  EXPECT_EQ(v["state"], "retrying");
  EXPECT_EQ(v["attempts"], 2);
  EXPECT_TRUE(v["createdAt"].is_null());
  EXPECT_EQ(v["receivedAt"], "2026-11-29T00:00:00.000Z");
  EXPECT_EQ(v["updatedAt"], "2026-11-29T00:00:05.000Z");
  EXPECT_EQ(v["dueAt"], "2026-12-29T00:00:00.000Z");
  EXPECT_EQ(v["deadline"], "ok");
  EXPECT_TRUE(v["outcome"].is_null());
  EXPECT_EQ(v["reported"], false);
  EXPECT_TRUE(v["reportError"].is_null());
  EXPECT_EQ(v["history"][0]["step"], "received");
  EXPECT_EQ(v.dump().find("jane"), std::string::npos);
  j.op = operation::opt_out;
  j.request_type = "Do Not Sell";
  const auto opted = job_view(j, {30, 7}, t0 + 1h);
  EXPECT_EQ(opted["operation"], "opt_out");
  EXPECT_EQ(opted["requestType"], "Do Not Sell");
}

TEST(Job, DeadlineIsFlaggedWithinTheWarningPeriodAndAfterTheDueDate) {
  job j;
  j.state = job_state::queued;
  j.received_at = t0;
  j.created_at = t0 - 20 * 24h;  // due at t0 + 10 days
  const deadline_policy d{30, 7};
  EXPECT_EQ(deadline_status(j, d, t0), "ok");
  EXPECT_EQ(deadline_status(j, d, t0 + 3 * 24h), "due_soon");
  EXPECT_EQ(deadline_status(j, d, t0 + 10 * 24h), "overdue");
  EXPECT_EQ(job_view(j, d, t0 + 11 * 24h)["deadline"], "overdue");
  j.state = job_state::failed;  // not done for the subject: still at risk
  EXPECT_EQ(deadline_status(j, d, t0 + 11 * 24h), "overdue");
  j.state = job_state::completed;
  EXPECT_EQ(deadline_status(j, d, t0 + 11 * 24h), "");
  EXPECT_TRUE(job_view(j, d, t0 + 11 * 24h)["deadline"].is_null());
}

}  // namespace
}  // namespace dsr
