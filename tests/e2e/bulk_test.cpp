// Bulk calls end to end (docs/contract.md §5, issue 22): jobs waiting for the same step share one
// `batch` or `anonymize_bulk`; kill -9 while such a call's answer is on its way, a command refused
// inside a batch. The real daemon and simulator; the rate limit is low (5 calls a second) so that
// the jobs queue behind it and their calls meet in one request, as with a backlog.

#include "e2e/fulfilment_fixture.hpp"
#include "support/sim_state.hpp"

#include <set>

namespace dsr::test {
namespace {

constexpr int subjects = 6;

std::string email_of(int i) {
  return fmt::format("bulk{}@example.com", i);
}
std::string request_of(int i) {
  return fmt::format("req-bulk-{}", i);
}

class Bulk : public Fulfilment {
 protected:
  Bulk() {
    for (int i = 0; i < subjects; ++i) {
      extra_customers_.push_back({{"ids", {{"registered", email_of(i)}}},
                                  {"properties", {{"email", email_of(i)}, {"first_name", "B"}}},
                                  {"events", json::array()}});
    }
    exponea_extra_ = "max_requests_per_second = 5\n";
    extra_config_ = fmt::format("\n[jobs]\nconcurrency = {}\n", subjects);
    wait_limit_ = 60s;
  }

  void submit_all() {
    for (int i = 0; i < subjects; ++i) {
      submit("delete", request_of(i), email_of(i));
    }
  }
  // Waits (bounded) until the simulator has seen a call to `endpoint`; returns the subjects the
  // first one was about.
  std::set<int> wait_for_call(const std::string& endpoint) {
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < until) {
      for (const auto& c : sim("calls")) {
        if (c["endpoint"] == endpoint) {
          std::set<int> about;
          for (int i = 0; i < subjects; ++i) {
            if (c["body"].get<std::string>().find(email_of(i)) != std::string::npos) {
              about.insert(i);
            }
          }
          return about;
        }
      }
      std::this_thread::sleep_for(10ms);  // polling for the call, not timing it
    }
    ADD_FAILURE() << "no " << endpoint << " call";
    return {};
  }
  void kill_and_restart() {
    daemon_->signal(SIGKILL);
    daemon_->wait_exit();
    ASSERT_EQ(request(sim_port_, "DELETE", "/_sim/faults").status, 200);
    start_daemon();
  }
  // Every job completed, its event tracked once, its customer gone; reported once, or (contract
  // §6) twice when its report was on its way as the daemon died; exactly once for the jobs of the
  // call the daemon died in (`in_flight`), which had no report yet.
  void expect_every_job_done_once(const std::set<int>& in_flight) {
    for (int i = 0; i < subjects; ++i) {
      const auto v = wait_reported(request_of(i));
      EXPECT_EQ(v["state"], "completed") << v.dump();
    }
    std::this_thread::sleep_for(400ms);  // Exponea's queued writes (300 ms) land
    const auto events = audit_events(sim("state"));
    const auto reports = acknowledged_reports(sim("mineos"));
    for (int i = 0; i < subjects; ++i) {
      const auto e = events.find(request_of(i));
      EXPECT_EQ(e == events.end() ? 0 : e->second, 1) << request_of(i);
      EXPECT_EQ(holders(email_of(i)), 0) << email_of(i);  // not re-created by any event
      const auto r = reports.find(request_of(i));
      const int n = r == reports.end() ? 0 : r->second;
      if (in_flight.contains(i)) {
        EXPECT_EQ(n, 1) << request_of(i);
      } else {
        EXPECT_GE(n, 1) << request_of(i);
        EXPECT_LE(n, 2) << request_of(i);
      }
    }
  }
};

TEST_F(Bulk, JobsWaitingForTheSameStepShareOneBatchAndOneAnonymizeBulk) {
  submit_all();
  expect_every_job_done_once({0, 1, 2, 3, 4, 5});
  int batches = 0;
  int bulks = 0;
  for (const auto& c : sim("calls")) {
    batches += c["endpoint"] == "batch" ? 1 : 0;
    bulks += c["endpoint"] == "anonymize_bulk" ? 1 : 0;
  }
  EXPECT_GE(batches, 1);
  EXPECT_GE(bulks, 1);
  // Lookups and verification stay one export-one per customer.
  for (int i = 0; i < subjects; ++i) {
    int exports = 0;
    for (const auto& c : calls_about(email_of(i))) {
      exports += c["endpoint"] == "export-one" ? 1 : 0;
    }
    EXPECT_GE(exports, 2) << email_of(i);
  }
}

TEST_F(Bulk, KilledWhileABatchThatExponeaAppliedIsUnansweredTracksNothingTwice) {
  fault({{"endpoint", "batch"}, {"delay_ms", 60000}});  // applied; the answer never comes
  submit_all();
  const auto in_batch = wait_for_call("batch");
  EXPECT_GE(in_batch.size(), 2u);
  kill_and_restart();
  expect_every_job_done_once(in_batch);
}

TEST_F(Bulk, KilledWhileAnAnonymizeBulkThatExponeaAppliedIsUnansweredRecreatesNothing) {
  fault({{"endpoint", "anonymize_bulk"}, {"delay_ms", 60000}});
  submit_all();
  const auto in_bulk = wait_for_call("anonymize_bulk");
  EXPECT_GE(in_bulk.size(), 2u);
  std::this_thread::sleep_for(400ms);  // the anonymization lands in Exponea meanwhile
  kill_and_restart();
  expect_every_job_done_once(in_bulk);
  // No event tracked on those customers after the anonymize_bulk (it would create a new profile
  // holding the ID): before it, each went alone or in a batch, as usual.
  for (const int i : in_bulk) {
    bool anonymized = false;
    for (const auto& c : calls_about(email_of(i))) {
      anonymized = anonymized || c["endpoint"] == "anonymize_bulk";
      if (anonymized) {
        EXPECT_NE(c["endpoint"], "track") << "tracked after its customer was anonymized";
        EXPECT_NE(c["endpoint"], "batch") << "tracked after its customer was anonymized";
      }
    }
  }
}

TEST_F(Bulk, ACommandRefusedInsideABatchFailsOnlyItsJob) {
  fault({{"endpoint", "track"},
         {"request_id", request_of(2)},
         {"body", "At least one valid id should be specified"}});
  submit_all();
  EXPECT_EQ(finished(request_of(2))["state"], "failed");
  for (int i = 0; i < subjects; ++i) {
    if (i == 2) {
      continue;
    }
    EXPECT_EQ(wait_reported(request_of(i))["state"], "completed") << request_of(i);
    EXPECT_EQ(holders(email_of(i)), 0);
  }
  EXPECT_EQ(holders(email_of(2)), 1);  // its job failed before anonymizing
  const auto v = wait_reported(request_of(2));
  EXPECT_THAT(v["history"].dump(), ::testing::HasSubstr("At least one valid id"));
  int batches = 0;
  for (const auto& c : sim("calls")) {
    batches += c["endpoint"] == "batch" ? 1 : 0;
  }
  EXPECT_GE(batches, 1);  // the refused command went inside a batch
}

}  // namespace
}  // namespace dsr::test
