// The store's behaviour, one suite for every engine: the same tests run against SQLite (a file in
// a temp dir) and PostgreSQL (a database of its own in this binary's throwaway cluster). A
// behaviour one engine has and the other lacks fails here.

#include "dsr/jobs/store.hpp"
#include "dsr/jobs/store_engine.hpp"

#include "support/pg_cluster.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

namespace dsr {
namespace {

using kind = insert_outcome::kind;
using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};
const std::string test_key(32, 'k');

// An SQLite store in a file of its own.
class sqlite_env {
 public:
  static constexpr const char* name = "Sqlite";

  result<std::unique_ptr<job_store>> open(const std::string& key = "") const {
    sqlite_store_options o;
    o.path = path();
    o.subject_key = key;
    return open_sqlite_store(o);
  }
  result<std::unique_ptr<store_engine>> engine() const {
    sqlite_store_options o;
    o.path = path();
    return open_sqlite_engine(o);
  }
  // Every byte the engine wrote: the database and its write-ahead log.
  std::string raw() const {
    std::string all;
    for (const auto& p : {path(), std::filesystem::path(path().string() + "-wal")}) {
      std::ifstream in(p, std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), {});
    }
    return all;
  }
  void set_schema_version(int v) const {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    const auto sql = "PRAGMA user_version = " + std::to_string(v);
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }

 private:
  std::filesystem::path path() const { return dir_.path() / "dsr.sqlite3"; }
  test::temp_dir dir_;
};

// A PostgreSQL store in a database of its own.
class postgres_env {
 public:
  static constexpr const char* name = "Postgres";

  postgres_env() {
    static int n = 0;
    uri_ = test::pg_cluster::shared().create_database("conformance_" + std::to_string(++n));
  }
  result<std::unique_ptr<job_store>> open(const std::string& key = "") const {
    postgres_store_options o;
    o.url = uri_;
    o.subject_key = key;
    o.database_clock = false;  // leases by the tests' times (postgres_store_test: the server's)
    return open_postgres_store(o);
  }
  result<std::unique_ptr<store_engine>> engine() const {
    postgres_store_options o;
    o.url = uri_;
    o.database_clock = false;
    return open_postgres_engine(o);
  }
  // Every job's row and journal as text, the subject's bytes as they are (printable ones shown).
  std::string raw() const {
    std::string all;
    for (const char* sql : {"SELECT j::text, encode(subject, 'escape') FROM jobs j",
                            "SELECT s::text, '' FROM job_steps s"}) {
      for (const auto& row : test::pg_query(uri_, sql)) {
        all += row[0].value_or("") + row[1].value_or("") + "\n";
      }
    }
    return all;
  }
  void set_schema_version(int v) const {
    test::pg_query(uri_, "UPDATE dsr_schema SET version = " + std::to_string(v));
  }

 private:
  std::string uri_;
};

new_job make_job(std::string request_id, std::string trace_id, operation op = operation::delete_) {
  new_job j;
  j.op = op;
  j.request_id = std::move(request_id);
  j.trace_id = std::move(trace_id);
  j.integration_id = "int-42";
  j.source = "Form";
  j.request_type = "delete";
  j.received_at = t0;
  j.subject = "jane@example.com";
  return j;
}

kind insert_one(job_store& s, const new_job& j, std::size_t max = 100) {
  auto r = s.insert(std::span<const new_job>(&j, 1), max);
  EXPECT_TRUE(r) << r.error().detail;
  return r ? (*r)[0].result : kind::queue_full;
}

template <class Env>
class StoreConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = env_.open();
    ASSERT_TRUE(s) << s.error().detail;
    store_ = std::move(*s);
  }
  job_store& s() { return *store_; }
  job claim(std::string_view owner, time_point at = t0) {
    auto j = store_->claim_next(owner, at, 1min);
    EXPECT_TRUE(j && *j);
    return j && *j ? **j : job{};
  }
  // Claims until `request_id` comes up, putting the others back an hour later.
  job claim_only(std::string_view request_id, time_point at = t0) {
    for (;;) {
      auto j = store_->claim_next("w", at, 1min);
      if (!j || !*j) {
        ADD_FAILURE() << request_id << " was not claimable";
        return {};
      }
      if ((*j)->request_id == request_id) {
        return **j;
      }
      EXPECT_TRUE(store_->release((*j)->id, "w",
                                  {job_state::queued, 0, at + 1h, job_outcome::none, ""}, at));
    }
  }
  void finish(std::string_view request_id, job_state state, time_point at = t0,
              job_outcome outcome = job_outcome::completed) {
    const auto j = claim_only(request_id, at);
    ASSERT_TRUE(store_->release(j.id, "w", {state, 1, at, outcome, "done"}, at));
  }

  Env env_;
  std::unique_ptr<job_store> store_;
};

struct engine_names {
  template <class T>
  static std::string GetName(int) {
    return T::name;
  }
};
using engines = ::testing::Types<sqlite_env, postgres_env>;
TYPED_TEST_SUITE(StoreConformance, engines, engine_names);

TYPED_TEST(StoreConformance, InsertedJobIsFoundWithEverythingIntakeKnew) {
  auto j = make_job("req-1", "trace-1", operation::copy);
  j.created_at = t0 - 1h;
  j.right = job_right{"r-1", "Right to be forgotten", "Delete"};
  j.subject_id_name = "customer_id";
  ASSERT_EQ(insert_one(this->s(), j), kind::inserted);
  auto found = this->s().find("req-1");
  ASSERT_TRUE(found && *found) << (found ? "" : found.error().detail);
  const job& got = **found;
  EXPECT_EQ(got.op, operation::copy);
  EXPECT_EQ(got.trace_id, "trace-1");
  EXPECT_EQ(got.integration_id, "int-42");
  EXPECT_EQ(got.source, "Form");
  EXPECT_EQ(got.request_type, "delete");
  EXPECT_EQ(got.right, j.right);
  EXPECT_EQ(got.subject_id_name, "customer_id");
  EXPECT_EQ(got.created_at, t0 - 1h);
  EXPECT_EQ(got.received_at, t0);
  EXPECT_EQ(got.updated_at, t0);
  EXPECT_EQ(got.subject, "jane@example.com");
  EXPECT_EQ(got.state, job_state::queued);
  EXPECT_EQ(got.attempts, 0u);
  EXPECT_EQ(got.next_attempt_at, t0);
  EXPECT_FALSE(got.lease_expires_at);
  EXPECT_FALSE(got.reported);
  ASSERT_EQ(got.history.size(), 1u);
  EXPECT_EQ(to_string(got.history[0].step), "received");
  EXPECT_EQ(got.history[0].result, "accepted");
  EXPECT_EQ(got.history[0].at, t0);
  EXPECT_FALSE(*this->s().find("req-2"));
}

TYPED_TEST(StoreConformance, OneJobPerRequest) {
  ASSERT_EQ(insert_one(this->s(), make_job("req-1", "trace-1")), kind::inserted);
  EXPECT_EQ(insert_one(this->s(), make_job("req-1", "trace-1")), kind::duplicate);
  EXPECT_EQ(insert_one(this->s(), make_job("req-1", "trace-2")), kind::duplicate);
  EXPECT_EQ(insert_one(this->s(), make_job("req-1", "trace-3", operation::copy)), kind::conflict);
  // Delete and opt-out came to the same URL: a repeat, not a conflict.
  EXPECT_EQ(insert_one(this->s(), make_job("req-1", "trace-4", operation::opt_out)),
            kind::duplicate);
  EXPECT_EQ(*this->s().count_active(), 1u);
}

TYPED_TEST(StoreConformance, RepeatedTraceIdAnswersWithTheOriginalRequestId) {
  ASSERT_EQ(insert_one(this->s(), make_job("req-1", "trace-1")), kind::inserted);
  const auto j = make_job("req-other", "trace-1");
  auto r = this->s().insert(std::span<const new_job>(&j, 1), 100);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].result, kind::duplicate);
  EXPECT_EQ((*r)[0].request_id, "req-1");
}

TYPED_TEST(StoreConformance, ABatchDedupesWithinItselfAndARefusedRepeatLeavesNothingBehind) {
  ASSERT_EQ(insert_one(this->s(), make_job("a", "ta")), kind::inserted);
  const std::vector<new_job> batch{
      make_job("b", "tb"),  make_job("b", "tb"), make_job("b", "tb2", operation::copy),
      make_job("a", "ta2"), make_job("x", "ta"), make_job("c", "tc")};
  auto r = this->s().insert(batch, 100);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ((*r)[0].result, kind::inserted);
  EXPECT_EQ((*r)[1].result, kind::duplicate);
  EXPECT_EQ((*r)[2].result, kind::conflict);
  EXPECT_EQ((*r)[3].result, kind::duplicate);
  EXPECT_EQ((*r)[4].result, kind::duplicate);
  EXPECT_EQ((*r)[4].request_id, "a");
  EXPECT_EQ((*r)[5].result, kind::inserted);
  EXPECT_EQ(*this->s().count_active(), 3u);
  EXPECT_FALSE(*this->s().find("x"));
  EXPECT_EQ((**this->s().find("a")).trace_id, "ta");
  EXPECT_EQ((**this->s().find("a")).history.size(), 1u);
  EXPECT_EQ((**this->s().find("c")).history.size(), 1u);
}

TYPED_TEST(StoreConformance, QueueFullRefusesNewJobsButStillRecognisesRepeats) {
  ASSERT_EQ(insert_one(this->s(), make_job("a", "ta"), 2), kind::inserted);
  ASSERT_EQ(insert_one(this->s(), make_job("b", "tb"), 2), kind::inserted);
  EXPECT_EQ(insert_one(this->s(), make_job("c", "tc"), 2), kind::queue_full);
  EXPECT_EQ(insert_one(this->s(), make_job("a", "ta"), 2), kind::duplicate);
  EXPECT_FALSE(*this->s().find("c"));
  // A finished job frees its place.
  this->finish("a", job_state::completed);
  EXPECT_EQ(insert_one(this->s(), make_job("c", "tc"), 2), kind::inserted);
  // Within one batch, the capacity counts the jobs before it.
  const std::vector<new_job> batch{make_job("d", "td"), make_job("e", "te")};
  auto r = this->s().insert(batch, 3);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].result, kind::inserted);
  EXPECT_EQ((*r)[1].result, kind::queue_full);
}

TYPED_TEST(StoreConformance, AJobEndedAtIntakeIsStoredFinishedWithItsReportDue) {
  auto j = make_job("req-none", "t-none");
  j.subject.clear();
  j.ended =
      intake_outcome{job_state::missing_identifiers, job_outcome::missing_identifiers, "no e-mail"};
  ASSERT_EQ(insert_one(this->s(), j, 0), kind::inserted);  // never counts against capacity
  const auto got = **this->s().find("req-none");
  EXPECT_EQ(got.state, job_state::missing_identifiers);
  EXPECT_EQ(to_string(got.outcome), "MissingIdentifiers");
  EXPECT_EQ(got.outcome_message, "no e-mail");
  ASSERT_EQ(got.history.size(), 2u);
  EXPECT_EQ(to_string(got.history[1].step), "attempt 0");
  EXPECT_EQ(got.history[1].result, "MissingIdentifiers: no e-mail");
  EXPECT_EQ(*this->s().count_active(), 0u);
  EXPECT_FALSE(*this->s().claim_next("w", t0 + 1h, 1min));
  const auto due = this->s().due_reports(t0, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].request_id, "req-none");
}

TYPED_TEST(StoreConformance, ListsNewestFirstWithStateFilterLimitAndHistory) {
  for (int i = 0; i < 5; ++i) {
    insert_one(this->s(), make_job("r" + std::to_string(i), "t" + std::to_string(i)));
  }
  auto all = this->s().list(std::nullopt, 3);
  ASSERT_TRUE(all) << all.error().detail;
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].request_id, "r4");
  EXPECT_EQ((*all)[2].request_id, "r2");
  for (const auto& j : *all) {
    EXPECT_EQ(j.history.size(), 1u) << j.request_id;
    EXPECT_EQ(j.subject, "jane@example.com");
  }
  EXPECT_EQ(this->s().list(job_state::queued, 100)->size(), 5u);
  EXPECT_EQ(this->s().list(job_state::failed, 100)->size(), 0u);
}

TYPED_TEST(StoreConformance, ClaimTakesTheEarliestDueJobUnderALease) {
  insert_one(this->s(), make_job("a", "ta"));
  insert_one(this->s(), make_job("b", "tb"));
  auto first = this->s().claim_next("owner-1", t0, 30s);
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->request_id, "a");
  EXPECT_EQ((*first)->state, job_state::running);
  EXPECT_EQ((*first)->lease_owner, "owner-1");
  EXPECT_EQ((*first)->lease_expires_at, t0 + 30s);
  EXPECT_EQ((*first)->subject, "jane@example.com");
  EXPECT_EQ((*first)->history.size(), 1u);
  auto second = this->s().claim_next("owner-2", t0, 30s);
  ASSERT_TRUE(second && *second);
  EXPECT_EQ((*second)->request_id, "b");
  EXPECT_FALSE(*this->s().claim_next("owner-3", t0, 30s));
}

TYPED_TEST(StoreConformance, JobsNotYetDueAreNotClaimed) {
  insert_one(this->s(), make_job("a", "ta"));
  const auto j = this->claim("me");
  ASSERT_TRUE(this->s().release(j.id, "me",
                                {job_state::retrying, 1, t0 + 10min, job_outcome::none, ""}, t0));
  EXPECT_FALSE(*this->s().claim_next("me", t0 + 9min, 30s));
  auto again = this->s().claim_next("me", t0 + 10min, 30s);
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->attempts, 1u);
}

TYPED_TEST(StoreConformance, OnlyTheLeaseHolderCanJournalOrRelease) {
  insert_one(this->s(), make_job("a", "ta"));
  const auto j = this->claim("me");
  auto foreign = this->s().append_step(j.id, "someone-else", {t0, parse_step("export"), "started"});
  ASSERT_FALSE(foreign);
  EXPECT_TRUE(foreign.error().is(errc::lease_lost));
  ASSERT_TRUE(this->s().append_step(j.id, "me", {t0, parse_step("export"), "started"}));
  auto refused = this->s().release(j.id, "someone-else",
                                   {job_state::completed, 0, t0, job_outcome::completed, ""}, t0);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(errc::lease_lost));
  ASSERT_TRUE(this->s().release(
      j.id, "me", {job_state::completed, 1, t0, job_outcome::completed, "done"}, t0 + 1s));
  const auto done = **this->s().find("a");
  EXPECT_EQ(done.state, job_state::completed);
  EXPECT_EQ(to_string(done.outcome), "Completed");
  EXPECT_EQ(done.outcome_message, "done");
  EXPECT_EQ(done.updated_at, t0 + 1s);
  EXPECT_TRUE(done.lease_owner.empty());
  ASSERT_EQ(done.history.size(), 2u);
  EXPECT_EQ(to_string(done.history[1].step), "export");
  EXPECT_EQ(*this->s().count_active(), 0u);
  // A released job's lease is gone: the old holder can no longer write to it.
  EXPECT_FALSE(this->s().append_step(j.id, "me", {t0, parse_step("track"), "started"}));
  EXPECT_EQ((**this->s().find("a")).history.size(), 2u);
}

// Several jobs' journal lines written together (a batch's jobs): each fenced by its own lease, a
// line whose lease is lost refused alone.
TYPED_TEST(StoreConformance, LinesWrittenTogetherAreEachFencedByTheirOwnLease) {
  insert_one(this->s(), make_job("a", "ta"));
  insert_one(this->s(), make_job("b", "tb"));
  const auto a = this->claim("run-a");
  const auto b = this->claim("run-b");
  const std::vector<step_line> lines{{a.id, "run-a", {t0, parse_step("track"), "started"}},
                                     {b.id, "not-its-holder", {t0, parse_step("track"), "started"}},
                                     {b.id, "run-b", {t0, parse_step("track"), "started"}},
                                     {a.id, "run-a", {t0 + 1s, parse_step("track"), "done"}}};
  const auto written = this->s().append_steps(lines);
  ASSERT_EQ(written.size(), 4u);
  EXPECT_TRUE(written[0]);
  ASSERT_FALSE(written[1]);
  EXPECT_TRUE(written[1].error().is(errc::lease_lost));
  EXPECT_TRUE(written[2]);
  EXPECT_TRUE(written[3]);
  const auto ja = **this->s().find("a");
  ASSERT_EQ(ja.history.size(), 3u);  // received, track started, track done
  EXPECT_EQ(ja.history[1].result, "started");
  EXPECT_EQ(ja.history[2].result, "done");
  EXPECT_EQ((**this->s().find("b")).history.size(), 2u);
}

// One line per job, as the store thread groups them (PostgreSQL writes these in one statement):
// each fenced by its own lease, numbered after the job's own journal, twice in a row.
TYPED_TEST(StoreConformance, LinesOfSeveralJobsWrittenTogetherFollowEachJournal) {
  for (const char* id : {"a", "b", "c"}) {
    insert_one(this->s(), make_job(id, std::string("t") + id));
  }
  const auto a = this->claim("run-a");
  const auto b = this->claim("run-b");
  const auto c = this->claim("run-c");
  ASSERT_TRUE(this->s().append_step(c.id, "run-c", {t0, parse_step("export"), "started"}));
  for (const char* result : {"started", "done"}) {
    const std::vector<step_line> lines{{a.id, "run-a", {t0, parse_step("track"), result}},
                                       {b.id, "taken-over", {t0, parse_step("track"), result}},
                                       {c.id, "run-c", {t0, parse_step("track"), result}}};
    const auto written = this->s().append_steps(lines);
    ASSERT_EQ(written.size(), 3u);
    EXPECT_TRUE(written[0]);
    ASSERT_FALSE(written[1]);
    EXPECT_TRUE(written[1].error().is(errc::lease_lost));
    EXPECT_TRUE(written[2]);
  }
  const auto ja = **this->s().find("a");
  ASSERT_EQ(ja.history.size(), 3u);  // received, track started, track done
  EXPECT_EQ(ja.history[1].result, "started");
  EXPECT_EQ(ja.history[2].result, "done");
  EXPECT_EQ((**this->s().find("b")).history.size(), 1u);
  const auto jc = **this->s().find("c");
  ASSERT_EQ(jc.history.size(), 4u);  // received, export started, track started, track done
  EXPECT_EQ(to_string(jc.history[1].step), "export");
  EXPECT_EQ(jc.history[3].result, "done");
}

// A holder whose lease expired and was taken over writes nothing more to the job: the new holder
// resumes it from the journal as it was.
TYPED_TEST(StoreConformance, AnExpiredLeaseGoesToTheNextClaimantAndFencesTheOldHolder) {
  insert_one(this->s(), make_job("a", "ta"));
  const auto j = this->claim("dead-owner");
  ASSERT_TRUE(this->s().append_step(j.id, "dead-owner", {t0, parse_step("export"), "started"}));
  EXPECT_EQ(*this->s().expire_leases(t0 + 59s), 0u);
  EXPECT_EQ(*this->s().expire_leases(t0 + 61s), 1u);
  EXPECT_EQ((**this->s().find("a")).state, job_state::queued);
  auto again = this->s().claim_next("new-owner", t0 + 61s, 1min);
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->id, j.id);
  ASSERT_EQ((*again)->history.size(), 2u);  // the journal to resume from
  EXPECT_TRUE(this->s()
                  .append_step(j.id, "dead-owner", {t0, parse_step("track"), "done"})
                  .error()
                  .is(errc::lease_lost));
  EXPECT_FALSE(this->s().release(j.id, "dead-owner",
                                 {job_state::failed, 1, t0, job_outcome::failed, ""}, t0));
  ASSERT_TRUE(this->s().append_step(j.id, "new-owner", {t0 + 62s, parse_step("export"), "done"}));
  ASSERT_TRUE(this->s().release(
      j.id, "new-owner", {job_state::completed, 1, t0, job_outcome::completed, ""}, t0 + 63s));
  const auto done = **this->s().find("a");
  EXPECT_EQ(done.state, job_state::completed);
  EXPECT_EQ(done.history.size(), 3u);
  // A job that had run before goes back as retrying.
  insert_one(this->s(), make_job("b", "tb"));
  const auto b = this->claim("x", t0 + 64s);
  ASSERT_TRUE(
      this->s().release(b.id, "x", {job_state::retrying, 1, t0, job_outcome::none, ""}, t0 + 64s));
  this->claim("y", t0 + 64s);
  EXPECT_EQ(*this->s().expire_leases(t0 + 10min), 1u);
  EXPECT_EQ((**this->s().find("b")).state, job_state::retrying);
}

// A live holder's heartbeat keeps its lease; once it stops, the lease runs out. A holder whose
// lease was taken over renews nothing.
TYPED_TEST(StoreConformance, RenewedLeasesLastAndOnlyTheirHoldersRenewThem) {
  insert_one(this->s(), make_job("a", "ta"));
  insert_one(this->s(), make_job("b", "tb"));
  const auto a = this->claim("owner-a/1");
  const auto b = this->claim("owner-b/1");
  const std::vector<std::string> mine{"owner-a/1"};
  EXPECT_EQ(*this->s().renew_leases(mine, t0 + 50s, 1min), 1u);
  EXPECT_EQ((**this->s().find("a")).lease_expires_at, t0 + 110s);
  EXPECT_EQ(*this->s().expire_leases(t0 + 61s), 1u);  // b's holder stopped renewing
  EXPECT_EQ((**this->s().find("a")).state, job_state::running);
  EXPECT_EQ((**this->s().find("b")).state, job_state::queued);
  const std::vector<std::string> late{"owner-b/1"};
  EXPECT_EQ(*this->s().renew_leases(late, t0 + 62s, 1min), 0u);
  EXPECT_EQ(*this->s().renew_leases({}, t0 + 62s, 1min), 0u);
  EXPECT_EQ(*this->s().expire_leases(t0 + 111s), 1u);
  (void)a;
  (void)b;
}

// Before a side-effecting call the run renews its own lease and learns how long it has left; a
// run whose lease was taken over learns that it lost it, and its renewal changes nothing.
TYPED_TEST(StoreConformance, ARunRenewsItsOwnLeaseBeforeACallAndALostOneSaysSo) {
  insert_one(this->s(), make_job("a", "ta"));
  const auto j = this->claim("host-a:1234abcd/1");
  const auto left = this->s().renew_lease(j.id, "host-a:1234abcd/1", t0 + 10s, 1min);
  ASSERT_TRUE(left) << left.error().detail;
  EXPECT_GE(*left, 50s);
  EXPECT_LE(*left, 1min);
  EXPECT_TRUE(this->s()
                  .renew_lease(j.id, "host-a:1234abcd/2", t0 + 10s, 1min)
                  .error()
                  .is(errc::lease_lost));
  ASSERT_EQ(*this->s().expire_leases(t0 + 10min), 1u);
  this->claim("host-b:99/1", t0 + 10min);
  EXPECT_TRUE(this->s()
                  .renew_lease(j.id, "host-a:1234abcd/1", t0 + 10min, 1min)
                  .error()
                  .is(errc::lease_lost));
  // The job view names the daemon that last ran it, without the run's own parts.
  EXPECT_EQ((**this->s().find("a")).worker, "host-b");
  insert_one(this->s(), make_job("b", "tb"));
  EXPECT_EQ((**this->s().find("b")).worker, "");
}

// A copy's export is written only by the run that holds the job: a run whose lease was taken over
// cannot put a piece or finish it, so it never mixes its bytes with the new run's.
TYPED_TEST(StoreConformance, AKeptExportIsFencedByTheRunsLease) {
  insert_one(this->s(), make_job("a", "ta", operation::copy));
  const auto j = this->claim("old/1");
  ASSERT_TRUE(this->s().put_export_chunk(j.id, "old/1", 0, "from the old run"));
  ASSERT_EQ(*this->s().expire_leases(t0 + 10min), 1u);
  this->claim("new/1", t0 + 10min);
  EXPECT_TRUE(this->s().put_export_chunk(j.id, "old/1", 1, "late").error().is(errc::lease_lost));
  EXPECT_TRUE(this->s().finish_export(j.id, "old/1", 2, t0).error().is(errc::lease_lost));
  EXPECT_FALSE(*this->s().export_chunks(j.id));
  ASSERT_TRUE(this->s().put_export_chunk(j.id, "new/1", 0, "from the new run"));
  ASSERT_TRUE(this->s().finish_export(j.id, "new/1", 1, t0 + 10min));
  EXPECT_EQ(*this->s().export_chunks(j.id), 1u);
  EXPECT_EQ(*this->s().export_chunk(j.id, 0), "from the new run");
}

// A claimed report is not handed out again until its claim lapses or a recorded attempt says when.
TYPED_TEST(StoreConformance, AClaimedReportIsNotHandedOutTwice) {
  insert_one(this->s(), make_job("a", "ta"));
  insert_one(this->s(), make_job("b", "tb"));
  this->finish("a", job_state::completed, t0);
  this->finish("b", job_state::completed, t0 + 1s);
  auto first = this->s().claim_reports(t0 + 2s, 1, 5min);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].request_id, "a");  // earliest due first
  auto second = this->s().claim_reports(t0 + 2s, 10, 5min);
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].request_id, "b");
  EXPECT_TRUE(this->s().claim_reports(t0 + 4min, 10, 5min)->empty());
  EXPECT_TRUE(this->s().due_reports(t0 + 4min, 10)->empty());
  // A daemon that died with "a" leaves it due again once the claim lapses.
  ASSERT_TRUE(this->s().record_report((*second)[0].id, {true, std::nullopt, 0, t0, false}, t0));
  auto again = this->s().claim_reports(t0 + 6min, 10, 5min);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].request_id, "a");
}

// Two stores on one database (two daemons, or two connections of one): every job is claimed by
// exactly one of them.
TYPED_TEST(StoreConformance, TwoStoresClaimingAtOnceNeverTakeTheSameJob) {
  constexpr int jobs = 60;
  std::vector<new_job> batch;
  for (int i = 0; i < jobs; ++i) {
    batch.push_back(make_job("r" + std::to_string(i), "t" + std::to_string(i)));
  }
  ASSERT_TRUE(this->s().insert(batch, 1000));
  auto other = this->env_.open();
  ASSERT_TRUE(other) << other.error().detail;
  std::mutex m;
  std::multiset<std::int64_t> claimed;
  std::atomic<int> errors{0};
  const auto worker = [&](job_store& s, std::string owner) {
    for (;;) {
      auto j = s.claim_next(owner, t0, 1min);
      if (!j) {
        ++errors;  // a busy SQLite file may refuse one attempt; the job stays queued
        continue;
      }
      if (!*j) {
        return;
      }
      std::lock_guard lock(m);
      claimed.insert((*j)->id);
    }
  };
  std::thread a(worker, std::ref(this->s()), "a");
  std::thread b(worker, std::ref(**other), "b");
  a.join();
  b.join();
  EXPECT_EQ(claimed.size(), static_cast<std::size_t>(jobs));
  EXPECT_EQ(std::set<std::int64_t>(claimed.begin(), claimed.end()).size(),
            static_cast<std::size_t>(jobs));
  EXPECT_EQ(errors.load(), 0);
}

TYPED_TEST(StoreConformance, FinishedJobsEnterTheOutboxUntilAcknowledgedOrGivenUp) {
  insert_one(this->s(), make_job("a", "ta"));
  insert_one(this->s(), make_job("b", "tb"));
  EXPECT_TRUE(this->s().due_reports(t0 + 1h, 10)->empty());
  this->finish("a", job_state::completed);
  this->finish("b", job_state::completed);
  auto due = this->s().due_reports(t0, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].subject, "jane@example.com");  // the report may need it
  const auto a = (**this->s().find("a")).id;
  const auto b = (**this->s().find("b")).id;
  ASSERT_TRUE(this->s().record_report(a, {true, std::nullopt, 0, t0, false}, t0));
  ASSERT_TRUE(this->s().record_report(b, {false, "MineOS answered 404", 1, t0 + 1min, false}, t0));
  EXPECT_TRUE(this->s().due_reports(t0 + 59s, 10)->empty());
  ASSERT_EQ(this->s().due_reports(t0 + 1min, 10)->size(), 1u);
  EXPECT_TRUE((**this->s().find("a")).reported);
  const auto refused = **this->s().find("b");
  EXPECT_FALSE(refused.reported);
  EXPECT_EQ(refused.report_error, "MineOS answered 404");
  EXPECT_EQ(refused.report_attempts, 1u);
  ASSERT_TRUE(this->s().record_report(b, {false, "MineOS answered 404", 12, t0, true}, t0));
  EXPECT_TRUE(this->s().due_reports(t0 + 1h, 10)->empty());
  // An operator's retry makes the given-up report due again; an acknowledged one has nothing to
  // send.
  EXPECT_EQ(*this->s().retry("b", t0 + 2h), operator_result::report_resent);
  ASSERT_EQ(this->s().due_reports(t0 + 2h, 10)->size(), 1u);
  EXPECT_EQ(*this->s().retry("a", t0 + 2h), operator_result::conflict);
}

TYPED_TEST(StoreConformance, OperatorRetryAndCancelApplyOnlyWhereTheyMakeSense) {
  for (const char* id : {"queued", "running", "failed"}) {
    insert_one(this->s(), make_job(id, std::string("t-") + id));
  }
  const auto running = this->claim_only("running");
  this->finish("failed", job_state::failed, t0, job_outcome::failed);
  EXPECT_EQ(*this->s().cancel("nope", t0), operator_result::not_found);
  EXPECT_EQ(*this->s().cancel("running", t0), operator_result::conflict);
  EXPECT_EQ(*this->s().retry("queued", t0), operator_result::conflict);
  EXPECT_EQ(*this->s().cancel("queued", t0 + 1s), operator_result::cancelled);
  const auto cancelled = **this->s().find("queued");
  EXPECT_EQ(cancelled.state, job_state::cancelled);
  EXPECT_EQ(to_string(cancelled.outcome), "Failed");
  EXPECT_EQ(cancelled.outcome_message, "cancelled by operator");
  EXPECT_EQ(to_string(cancelled.history.back().step), "operator");
  EXPECT_EQ(cancelled.history.back().result, "cancel");
  EXPECT_EQ(this->s().due_reports(t0 + 1s, 10)->size(), 2u);  // cancelled and failed
  EXPECT_EQ(*this->s().cancel("queued", t0 + 2s), operator_result::conflict);

  EXPECT_EQ(*this->s().retry("failed", t0 + 3s), operator_result::requeued);
  const auto requeued = **this->s().find("failed");
  EXPECT_EQ(requeued.state, job_state::queued);
  EXPECT_EQ(requeued.attempts, 0u);
  EXPECT_EQ(to_string(requeued.outcome), "");
  EXPECT_EQ(requeued.history.back().result, "retry");
  EXPECT_EQ(*this->s().count_active(), 2u);  // running and the requeued one
  auto next = this->s().claim_next("w", t0 + 3s, 1min);
  ASSERT_TRUE(next && *next);
  EXPECT_EQ((*next)->request_id, "failed");
  (void)running;
}

TYPED_TEST(StoreConformance, AFileLinkKeepsItsExpiryUntilItLapsesUnacknowledged) {
  ASSERT_EQ(insert_one(this->s(), make_job("req-c", "t-c", operation::copy)), kind::inserted);
  const auto id = (**this->s().find("req-c")).id;
  EXPECT_EQ(*this->s().file_link_expiry(id, t0 + 72h, t0), t0 + 72h);
  EXPECT_EQ(*this->s().file_link_expiry(id, t0 + 99h, t0 + 27h), t0 + 72h);
  EXPECT_EQ((**this->s().find("req-c")).file_link_expires_at, t0 + 72h);
  EXPECT_EQ(*this->s().file_links(t0 + 71h, false), (std::vector<std::int64_t>{id}));
  EXPECT_TRUE(this->s().file_links(t0 + 71h, true)->empty());
  EXPECT_TRUE(this->s().file_links(t0 + 80h, true)->empty());
  EXPECT_EQ(*this->s().file_link_expiry(id, t0 + 152h, t0 + 80h), t0 + 152h);
  report_update ack;
  ack.acknowledged = true;
  ASSERT_TRUE(this->s().record_report(id, ack, t0 + 80h));
  EXPECT_EQ(*this->s().file_link_expiry(id, t0 + 999h, t0 + 200h), t0 + 152h);
  EXPECT_TRUE(this->s().file_links(t0 + 152h, false)->empty());
  EXPECT_EQ(*this->s().file_links(t0 + 152h, true), (std::vector<std::int64_t>{id}));
}

TYPED_TEST(StoreConformance, AKeptExportReadsBackOnceFinishedAndGoesWhenDeletedPurgedOrWithItsJob) {
  for (const char* id : {"c-1", "c-2", "c-3"}) {
    ASSERT_EQ(insert_one(this->s(), make_job(id, std::string("t-") + id, operation::copy)),
              kind::inserted);
  }
  const auto id1 = (**this->s().find("c-1")).id;
  const auto id2 = (**this->s().find("c-2")).id;
  const auto id3 = (**this->s().find("c-3")).id;
  const std::string binary("\0\x01\xff sealed \0", 12);
  ASSERT_TRUE(this->s().put_export_chunk(id1, "", 0, binary));
  ASSERT_TRUE(this->s().put_export_chunk(id1, "", 1, "second"));
  ASSERT_TRUE(this->s().put_export_chunk(id1, "", 2, "left from an attempt"));
  EXPECT_FALSE(*this->s().export_chunks(id1));  // not readable before it is finished
  ASSERT_TRUE(this->s().finish_export(id1, "", 2, t0));
  EXPECT_EQ(*this->s().export_chunks(id1), 2u);
  EXPECT_EQ(*this->s().export_chunk(id1, 0), binary);
  EXPECT_EQ(*this->s().export_chunk(id1, 1), "second");
  EXPECT_TRUE(this->s().export_chunk(id1, 2).error().is(errc::not_found));  // trimmed
  // Writing it again hides it until finished again.
  ASSERT_TRUE(this->s().put_export_chunk(id1, "", 0, "again"));
  EXPECT_FALSE(*this->s().export_chunks(id1));
  ASSERT_TRUE(this->s().finish_export(id1, "", 1, t0));
  EXPECT_EQ(*this->s().export_chunk(id1, 0), "again");

  for (const auto id : {id2, id3}) {
    ASSERT_TRUE(this->s().put_export_chunk(id, "", 0, "x"));
    ASSERT_TRUE(this->s().finish_export(id, "", 1, t0 + 1h));
  }
  // An expired link's export goes; the others stay.
  const std::vector<std::int64_t> expired{id2};
  EXPECT_EQ(*this->s().delete_exports(expired), 1u);
  EXPECT_FALSE(*this->s().export_chunks(id2));
  EXPECT_TRUE(this->s().export_chunk(id2, 0).error().is(errc::not_found));
  // Past retention: every export finished before the cutoff but those behind a live link.
  const std::vector<std::int64_t> live{id3};
  EXPECT_EQ(*this->s().purge_exports(t0 + 2h, live), 1u);  // c-1's
  EXPECT_FALSE(*this->s().export_chunks(id1));
  EXPECT_EQ(*this->s().export_chunks(id3), 1u);
  EXPECT_EQ(*this->s().purge_exports(t0 + 2h, {}), 1u);  // c-3's, once its link is gone
  // An export goes with its job.
  ASSERT_TRUE(this->s().put_export_chunk(id3, "", 0, "y"));
  ASSERT_TRUE(this->s().finish_export(id3, "", 1, t0));
  this->finish("c-3", job_state::completed, t0);
  EXPECT_EQ(*this->s().purge_finished(t0 + 1s), 1u);
  EXPECT_FALSE(*this->s().export_chunks(id3));
}

TYPED_TEST(StoreConformance, PurgeDeletesOnlyFinishedJobsOlderThanTheCutoff) {
  for (const char* id : {"old-done", "old-failed", "new-done", "queued"}) {
    ASSERT_EQ(insert_one(this->s(), make_job(id, std::string("t-") + id)), kind::inserted);
  }
  this->finish("old-done", job_state::completed, t0);
  this->finish("old-failed", job_state::failed, t0 + 1s);
  this->finish("new-done", job_state::completed, t0 + 10 * 24h);
  EXPECT_EQ(*this->s().purge_finished(t0 + 5 * 24h), 2u);
  EXPECT_FALSE(*this->s().find("old-done"));
  EXPECT_FALSE(*this->s().find("old-failed"));
  EXPECT_TRUE(*this->s().find("new-done"));
  EXPECT_TRUE(*this->s().find("queued"));
  // A purged request id is free again, with a fresh journal.
  ASSERT_EQ(insert_one(this->s(), make_job("old-done", "t-old-done")), kind::inserted);
  EXPECT_EQ((**this->s().find("old-done")).history.size(), 1u);
}

TYPED_TEST(StoreConformance, StatsCountStatesTheOldestWaitingJobAndDeadlinesAtRisk) {
  auto overdue = make_job("overdue", "t1");
  overdue.created_at = t0 - 40 * 24h;
  overdue.received_at = t0 - 2h;
  auto soon = make_job("soon", "t2");
  soon.created_at = t0 - 25 * 24h;
  soon.received_at = t0 - 1h;
  auto fresh = make_job("fresh", "t3");
  auto done = make_job("done", "t4");
  done.created_at = t0 - 40 * 24h;
  for (const auto& j : {overdue, soon, fresh, done}) {
    ASSERT_EQ(insert_one(this->s(), j), kind::inserted);
  }
  this->finish("done", job_state::completed);
  const auto st = this->s().stats(t0, 30 * 24h, 7 * 24h);
  ASSERT_TRUE(st) << st.error().detail;
  EXPECT_EQ(st->by_state[static_cast<std::size_t>(job_state::queued)], 3u);
  EXPECT_EQ(st->by_state[static_cast<std::size_t>(job_state::completed)], 1u);
  EXPECT_EQ(st->by_state[static_cast<std::size_t>(job_state::failed)], 0u);
  EXPECT_EQ(st->oldest_waiting, t0 - 2h);
  EXPECT_EQ(st->overdue, 1u);
  EXPECT_EQ(st->due_soon, 1u);
  const auto later = this->s().stats(t0 + 8 * 24h, 30 * 24h, 7 * 24h);
  ASSERT_TRUE(later) << later.error().detail;
  EXPECT_EQ(later->overdue, 2u);
  EXPECT_EQ(later->due_soon, 0u);
  const auto listed = this->s().at_risk(t0, 30 * 24h, 7 * 24h, 10);
  ASSERT_TRUE(listed) << listed.error().detail;
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].request_id, "overdue");
  EXPECT_EQ((*listed)[1].request_id, "soon");
  EXPECT_EQ(this->s().at_risk(t0 + 8 * 24h, 30 * 24h, 7 * 24h, 1)->size(), 1u);
  EXPECT_EQ(this->s().at_risk(t0 - 20 * 24h, 30 * 24h, 7 * 24h, 10)->size(), 0u);
}

TYPED_TEST(StoreConformance, KeepsTheOperationAndTheRightAsReceivedAndAReroutedRun) {
  auto j = make_job("req-dns", "t-dns");
  j.op = operation::opt_out;
  j.right = job_right{"dns-1", "Do Not Sell", "DoNotSell"};
  j.request_type = "Do Not Sell";
  ASSERT_EQ(insert_one(this->s(), j), kind::inserted);
  const auto got = **this->s().find("req-dns");
  EXPECT_EQ(got.op, operation::opt_out);
  EXPECT_EQ(got.right, j.right);
  const auto claimed = this->claim("w");
  job_release next{job_state::completed, 1, t0, job_outcome::completed, "done"};
  next.op = operation::delete_;
  ASSERT_TRUE(this->s().release(claimed.id, "w", next, t0));
  EXPECT_EQ((**this->s().find("req-dns")).op, operation::delete_);
}

// The subject is personal data: sealed at rest from the first commit, readable while the job can
// run or report, replaced by a keyed hash once MineOS acknowledged the outcome; a failed job
// keeps it (it may be retried), and another key reads nothing.
TYPED_TEST(StoreConformance, TheSubjectIsSealedAtRestAndForgottenOnceReported) {
  auto sealed = this->env_.open(test_key);
  ASSERT_TRUE(sealed) << sealed.error().detail;
  job_store& s = **sealed;
  auto a = make_job("req-a", "ta");
  a.subject = "canary-a@example.com";
  auto b = make_job("req-b", "tb");
  b.subject_id_name = "customer_id";
  b.subject = "CANARY-C-1042";
  auto f = make_job("req-f", "tf");
  f.subject = "canary-f@example.com";
  for (const auto& j : {a, b, f}) {
    ASSERT_EQ(insert_one(s, j), kind::inserted);
  }
  EXPECT_EQ(this->env_.raw().find("canary-"), std::string::npos);
  EXPECT_EQ(this->env_.raw().find("CANARY-"), std::string::npos);
  std::map<std::string, std::int64_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto j = s.claim_next("w", t0, 1min);
    ASSERT_TRUE(j && *j);
    EXPECT_NE((*j)->subject, "");
    ids[(*j)->request_id] = (*j)->id;
    const auto state = (*j)->request_id == "req-f" ? job_state::failed : job_state::completed;
    ASSERT_TRUE(s.release((*j)->id, "w", {state, 1, t0, job_outcome::completed, ""}, t0));
  }
  EXPECT_EQ((**s.find("req-a")).subject, "canary-a@example.com");  // still to be reported
  report_update ack;
  ack.acknowledged = true;
  for (const char* id : {"req-a", "req-b", "req-f"}) {
    ASSERT_TRUE(s.record_report(ids[id], ack, t0));
  }
  EXPECT_EQ((**s.find("req-a")).subject, "");
  EXPECT_EQ((**s.find("req-b")).subject, "");
  EXPECT_EQ((**s.find("req-f")).subject, "canary-f@example.com");  // failed: kept, sealed
  ASSERT_TRUE(s.forget_subject(ids["req-f"]));
  EXPECT_EQ((**s.find("req-f")).subject, "canary-f@example.com");
  EXPECT_EQ(this->env_.raw().find("canary-"), std::string::npos);
  EXPECT_EQ(this->env_.raw().find("CANARY-"), std::string::npos);
  auto other = this->env_.open(std::string(32, 'z'));
  ASSERT_TRUE(other);
  EXPECT_EQ((**(*other)->find("req-f")).subject, "");
}

TYPED_TEST(StoreConformance, AReopenedStoreKeepsEveryCommittedJob) {
  insert_one(this->s(), make_job("a", "ta"));
  const auto j = this->claim("w");
  ASSERT_TRUE(this->s().append_step(j.id, "w", {t0, parse_step("export"), "started"}));
  insert_one(this->s(), make_job("b", "tb"));
  this->store_.reset();
  auto s = this->env_.open();
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ(*(*s)->count_active(), 2u);
  EXPECT_EQ((**(*s)->find("a")).history.size(), 2u);
  EXPECT_EQ((**(*s)->find("a")).state, job_state::running);
  EXPECT_EQ(insert_one(**s, make_job("a", "ta")), kind::duplicate);
}

TYPED_TEST(StoreConformance, RefusesASchemaFromTheFutureNamingBothVersions) {
  this->store_.reset();
  this->env_.set_schema_version(99);
  auto s = this->env_.open();
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(errc::store_schema_newer));
  EXPECT_NE(s.error().detail.find("schema version 99"), std::string::npos) << s.error().detail;
  EXPECT_NE(s.error().detail.find("newer than this build knows"), std::string::npos);
}

// store migrate's verbs: every job of an SQLite store, copied as it is into an empty store of
// this engine, reads back the same under the same store_key (a running job back in the queue);
// the next new job gets a fresh id; a store that holds a job refuses another import.
TYPED_TEST(StoreConformance, EveryJobCopiedIntoAnEmptyStoreReadsBackTheSame) {
  sqlite_env source_env;
  auto opened = source_env.open(test_key);
  ASSERT_TRUE(opened) << opened.error().detail;
  job_store& source = **opened;
  auto copy = make_job("copy", "t-copy", operation::copy);
  copy.created_at = t0 - 2h;
  auto ended = make_job("ended", "t-ended");
  ended.ended =
      intake_outcome{job_state::missing_identifiers, job_outcome::missing_identifiers, "no e-mail"};
  for (const auto& j : {copy, make_job("failed", "t-failed"), make_job("running", "t-running"),
                        make_job("queued", "t-queued"), ended}) {
    ASSERT_EQ(insert_one(source, j), kind::inserted);
  }
  // copy: completed, reported, its link recorded; failed: its report given up; running: mid-job.
  for (int i = 0; i < 2; ++i) {
    auto j = source.claim_next("w", t0, 1min);
    ASSERT_TRUE(j && *j);
    const auto id = (*j)->id;
    if ((*j)->request_id == "copy") {
      ASSERT_TRUE(
          source.release(id, "w", {job_state::completed, 1, t0, job_outcome::completed, "ok"}, t0));
      ASSERT_TRUE(source.file_link_expiry(id, t0 + 72h, t0));
      ASSERT_TRUE(source.record_report(id, {true, std::nullopt, 0, t0, false}, t0 + 1s));
    } else if ((*j)->request_id == "failed") {
      ASSERT_TRUE(
          source.release(id, "w", {job_state::failed, 2, t0, job_outcome::failed, "x"}, t0));
      ASSERT_TRUE(source.record_report(id, {false, "MineOS answered 400", 12, t0, true}, t0));
    }
  }
  auto running = source.claim_next("w", t0, 1min);
  ASSERT_TRUE(running && *running);
  ASSERT_EQ((*running)->request_id, "running");
  ASSERT_TRUE(source.append_step((*running)->id, "w", {t0, parse_step("track"), "started"}));
  const auto before = *source.list(std::nullopt, 100);
  ASSERT_EQ(before.size(), 5u);

  this->store_.reset();
  auto from = source_env.engine();
  auto into = this->env_.engine();
  ASSERT_TRUE(from && into);
  ASSERT_TRUE((*into)->begin_import());
  ASSERT_TRUE((*from)->each_job([&](const stored_job& j) { return (*into)->import_job(j); }));
  ASSERT_TRUE((*into)->finish_import());
  const auto refused = (*into)->begin_import();
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(errc::conflict));
  EXPECT_NE(refused.error().detail.find("already holds 5 job(s)"), std::string::npos);

  auto moved = this->env_.open(test_key);
  ASSERT_TRUE(moved) << moved.error().detail;
  const auto after = *(*moved)->list(std::nullopt, 100);
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    const job& a = after[i];
    const job& b = before[i];
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.request_id, b.request_id);
    EXPECT_EQ(a.op, b.op);
    EXPECT_EQ(a.subject, b.subject) << a.request_id;
    EXPECT_EQ(a.created_at, b.created_at);
    EXPECT_EQ(a.attempts, b.attempts);
    EXPECT_EQ(a.outcome, b.outcome);
    EXPECT_EQ(a.reported, b.reported);
    EXPECT_EQ(a.report_error, b.report_error);
    EXPECT_EQ(a.report_attempts, b.report_attempts);
    EXPECT_EQ(a.file_link_expires_at, b.file_link_expires_at);
    ASSERT_EQ(a.history.size(), b.history.size()) << a.request_id;
    for (std::size_t k = 0; k < a.history.size(); ++k) {
      EXPECT_EQ(a.history[k].at, b.history[k].at);
      EXPECT_EQ(to_string(a.history[k].step), to_string(b.history[k].step));
      EXPECT_EQ(a.history[k].result, b.history[k].result);
    }
    EXPECT_EQ(a.state, b.state == job_state::running ? job_state::queued : b.state);
    EXPECT_TRUE(a.lease_owner.empty());
  }
  EXPECT_EQ((**(*moved)->find("copy")).subject, "");  // reported: only its hash was there
  EXPECT_EQ((**(*moved)->find("queued")).subject, "jane@example.com");
  // The outbox as it was: the ended job's report is due, the given-up one is not, until retried.
  const auto due = *(*moved)->due_reports(t0 + 1h, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].request_id, "ended");
  EXPECT_EQ(*(*moved)->retry("failed", t0 + 1h), operator_result::requeued);
  EXPECT_EQ(*(*moved)->count_active(), 3u);
  ASSERT_EQ(insert_one(**moved, make_job("new", "t-new")), kind::inserted);
  EXPECT_GT((**(*moved)->find("new")).id, before.front().id);
}

TYPED_TEST(StoreConformance, AProbeWriteCommits) {
  EXPECT_TRUE(this->s().probe_write(t0));
  EXPECT_TRUE(this->s().probe_write(t0 + 1s));
}

}  // namespace
}  // namespace dsr
