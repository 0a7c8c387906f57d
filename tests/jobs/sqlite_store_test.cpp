#include "dsr/jobs/store.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/store_keys.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>

namespace dsr {
namespace {

using kind = insert_outcome::kind;
using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

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

std::unique_ptr<job_store> open_memory() {
  auto s = open_sqlite_store({":memory:"});
  EXPECT_TRUE(s) << s.error().detail;
  return std::move(*s);
}

kind insert_one(job_store& s, const new_job& j, std::size_t max = 100) {
  auto r = s.insert(std::span<const new_job>(&j, 1), max);
  EXPECT_TRUE(r) << r.error().detail;
  return (*r)[0].result;
}

TEST(SqliteStore, InsertedJobIsFoundWithEverythingIntakeKnew) {
  auto s = open_memory();
  auto j = make_job("req-1", "trace-1", operation::copy);
  j.created_at = t0 - 1h;
  ASSERT_EQ(insert_one(*s, j), kind::inserted);
  auto found = s->find("req-1");
  ASSERT_TRUE(found && *found);
  const job& got = **found;
  EXPECT_EQ(got.op, operation::copy);
  EXPECT_EQ(got.trace_id, "trace-1");
  EXPECT_EQ(got.integration_id, "int-42");
  EXPECT_EQ(got.source, "Form");
  EXPECT_EQ(got.created_at, t0 - 1h);
  EXPECT_EQ(got.received_at, t0);
  EXPECT_EQ(got.subject, "jane@example.com");
  EXPECT_EQ(got.state, job_state::queued);
  EXPECT_EQ(got.attempts, 0u);
  EXPECT_EQ(got.next_attempt_at, t0);
  ASSERT_EQ(got.history.size(), 1u);
  EXPECT_EQ(to_string(got.history[0].step), "received");
  EXPECT_FALSE(*s->find("req-2"));
}

TEST(SqliteStore, OneJobPerRequest) {
  auto s = open_memory();
  ASSERT_EQ(insert_one(*s, make_job("req-1", "trace-1")), kind::inserted);
  // MineOS retried the same delivery.
  EXPECT_EQ(insert_one(*s, make_job("req-1", "trace-1")), kind::duplicate);
  // Same request, new delivery id, same operation.
  EXPECT_EQ(insert_one(*s, make_job("req-1", "trace-2")), kind::duplicate);
  // Same request id, the other operation.
  EXPECT_EQ(insert_one(*s, make_job("req-1", "trace-3", operation::copy)), kind::conflict);
  EXPECT_EQ(*s->count_active(), 1u);
}

TEST(SqliteStore, RepeatedTraceIdAnswersWithTheOriginalRequestId) {
  auto s = open_memory();
  ASSERT_EQ(insert_one(*s, make_job("req-1", "trace-1")), kind::inserted);
  const auto j = make_job("req-other", "trace-1");
  auto r = s->insert(std::span<const new_job>(&j, 1), 100);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].result, kind::duplicate);
  EXPECT_EQ((*r)[0].request_id, "req-1");
}

TEST(SqliteStore, BatchIsOneTransactionThatDedupesWithinItself) {
  auto s = open_memory();
  const std::vector<new_job> batch{make_job("a", "ta"), make_job("b", "tb"), make_job("a", "ta"),
                                   make_job("b", "tb2", operation::copy)};
  auto r = s->insert(batch, 100);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].result, kind::inserted);
  EXPECT_EQ((*r)[1].result, kind::inserted);
  EXPECT_EQ((*r)[2].result, kind::duplicate);
  EXPECT_EQ((*r)[3].result, kind::conflict);
  EXPECT_EQ(*s->count_active(), 2u);
}

TEST(SqliteStore, ARefusedRepeatLeavesNothingBehindAndTheRestOfItsBatchCommits) {
  auto s = open_memory();
  ASSERT_EQ(insert_one(*s, make_job("a", "ta")), kind::inserted);
  // The repeats are refused by the unique indexes mid-transaction; the jobs after them go in.
  const std::vector<new_job> batch{make_job("a", "ta2"), make_job("x", "ta"), make_job("c", "tc")};
  auto r = s->insert(batch, 100);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].result, kind::duplicate);
  EXPECT_EQ((*r)[1].result, kind::duplicate);
  EXPECT_EQ((*r)[1].request_id, "a");
  EXPECT_EQ((*r)[2].result, kind::inserted);
  EXPECT_EQ(*s->count_active(), 2u);
  EXPECT_FALSE(*s->find("x"));
  auto a = s->find("a");
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((*a)->trace_id, "ta");
  EXPECT_EQ((*a)->history.size(), 1u);
  auto c = s->find("c");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->history.size(), 1u);
}

TEST(SqliteStore, QueueFullRefusesNewJobsButStillRecognisesRepeats) {
  auto s = open_memory();
  ASSERT_EQ(insert_one(*s, make_job("a", "ta"), 2), kind::inserted);
  ASSERT_EQ(insert_one(*s, make_job("b", "tb"), 2), kind::inserted);
  EXPECT_EQ(insert_one(*s, make_job("c", "tc"), 2), kind::queue_full);
  EXPECT_EQ(insert_one(*s, make_job("a", "ta"), 2), kind::duplicate);
  EXPECT_FALSE(*s->find("c"));
}

TEST(SqliteStore, ListsNewestFirstWithStateFilterAndLimit) {
  auto s = open_memory();
  for (int i = 0; i < 5; ++i) {
    insert_one(*s, make_job("r" + std::to_string(i), "t" + std::to_string(i)));
  }
  auto all = s->list(std::nullopt, 3);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].request_id, "r4");
  EXPECT_EQ((*all)[2].request_id, "r2");
  EXPECT_EQ(s->list(job_state::queued, 100)->size(), 5u);
  EXPECT_EQ(s->list(job_state::failed, 100)->size(), 0u);
}

TEST(SqliteStore, ClaimTakesTheNextDueJobUnderALease) {
  auto s = open_memory();
  insert_one(*s, make_job("a", "ta"));
  insert_one(*s, make_job("b", "tb"));
  auto first = s->claim_next("owner-1", t0, 30s);
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->request_id, "a");
  EXPECT_EQ((*first)->state, job_state::running);
  EXPECT_EQ((*first)->lease_owner, "owner-1");
  EXPECT_EQ((*first)->lease_expires_at, t0 + 30s);
  auto second = s->claim_next("owner-2", t0, 30s);
  ASSERT_TRUE(second && *second);
  EXPECT_EQ((*second)->request_id, "b");
  EXPECT_FALSE(*s->claim_next("owner-3", t0, 30s));
}

TEST(SqliteStore, JobsNotYetDueAreNotClaimed) {
  auto s = open_memory();
  insert_one(*s, make_job("a", "ta"));
  auto j = **s->claim_next("me", t0, 30s);
  ASSERT_TRUE(
      s->release(j.id, "me", {job_state::retrying, 1, t0 + 10min, job_outcome::none, ""}, t0));
  EXPECT_FALSE(*s->claim_next("me", t0 + 9min, 30s));
  auto again = s->claim_next("me", t0 + 10min, 30s);
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->attempts, 1u);
}

TEST(SqliteStore, OnlyTheLeaseHolderCanJournalOrRelease) {
  auto s = open_memory();
  insert_one(*s, make_job("a", "ta"));
  auto j = **s->claim_next("me", t0, 30s);
  auto foreign = s->append_step(j.id, "someone-else", {t0, parse_step("export"), "started"});
  ASSERT_FALSE(foreign);
  EXPECT_TRUE(foreign.error().is(errc::lease_lost));
  ASSERT_TRUE(s->append_step(j.id, "me", {t0, parse_step("export"), "started"}));
  EXPECT_FALSE(s->release(j.id, "someone-else",
                          {job_state::completed, 0, t0, job_outcome::completed, ""}, t0));
  ASSERT_TRUE(s->release(j.id, "me", {job_state::completed, 1, t0, job_outcome::completed, "done"},
                         t0 + 1s));
  const auto done = **s->find("a");
  EXPECT_EQ(done.state, job_state::completed);
  EXPECT_EQ(to_string(done.outcome), "Completed");
  EXPECT_EQ(done.updated_at, t0 + 1s);
  EXPECT_TRUE(done.lease_owner.empty());
  ASSERT_EQ(done.history.size(), 2u);
  EXPECT_EQ(to_string(done.history[1].step), "export");
  EXPECT_EQ(*s->count_active(), 0u);
  // A released job's lease is gone: the old holder can no longer write to it.
  EXPECT_FALSE(s->append_step(j.id, "me", {t0, step_kind::track, "started"}));
}

TEST(SqliteStore, ExpiredLeasesReturnJobsToTheQueue) {
  auto s = open_memory();
  insert_one(*s, make_job("a", "ta"));
  auto j = **s->claim_next("dead-owner", t0, 30s);
  EXPECT_EQ(*s->expire_leases(t0 + 29s), 0u);
  EXPECT_EQ(*s->expire_leases(t0 + 31s), 1u);
  EXPECT_EQ((**s->find("a")).state, job_state::queued);
  auto again = s->claim_next("new-owner", t0 + 31s, 30s);
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->id, j.id);
}

TEST(SqliteStore, FinishedJobsEnterTheOutboxUntilAcknowledgedOrGivenUp) {
  auto s = open_memory();
  insert_one(*s, make_job("a", "ta"));
  insert_one(*s, make_job("b", "tb"));
  EXPECT_TRUE(s->due_reports(t0 + 1h, 10)->empty());  // nothing finished yet
  for (int i = 0; i < 2; ++i) {
    auto j = **s->claim_next("me", t0, 30s);
    ASSERT_TRUE(
        s->release(j.id, "me", {job_state::completed, 1, t0, job_outcome::completed, "ok"}, t0));
  }
  auto due = s->due_reports(t0, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 2u);
  const auto a = (*due)[0].request_id == "a" ? (*due)[0] : (*due)[1];
  const auto b = (*due)[0].request_id == "a" ? (*due)[1] : (*due)[0];
  // a: acknowledged. b: refused, to be tried again in a minute.
  ASSERT_TRUE(s->record_report(a.id, {true, std::nullopt, 0, t0, false}, t0));
  ASSERT_TRUE(s->record_report(b.id, {false, "MineOS answered 404", 1, t0 + 1min, false}, t0));
  EXPECT_TRUE(s->due_reports(t0 + 59s, 10)->empty());
  ASSERT_EQ(s->due_reports(t0 + 1min, 10)->size(), 1u);
  EXPECT_TRUE((**s->find("a")).reported);
  const auto refused = **s->find("b");
  EXPECT_FALSE(refused.reported);
  EXPECT_EQ(refused.report_error, "MineOS answered 404");
  EXPECT_EQ(refused.report_attempts, 1u);
  // Given up: out of the outbox for good (until an operator's retry).
  ASSERT_TRUE(s->record_report(b.id, {false, "MineOS answered 404", 12, t0, true}, t0));
  EXPECT_TRUE(s->due_reports(t0 + 1h, 10)->empty());
}

TEST(SqliteStore, ReopenedStoreKeepsJobsAndUsesWalWithFullSync) {
  test::temp_dir dir;
  const auto path = dir.path() / "sub" / "dsr.sqlite3";
  {
    auto s = open_sqlite_store({path});
    ASSERT_TRUE(s) << s.error().detail;
    insert_one(**s, make_job("a", "ta"));
    insert_one(**s, make_job("b", "tb"));
  }
  auto s = open_sqlite_store({path});
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ(*(*s)->count_active(), 2u);
  EXPECT_TRUE(*(*s)->find("b"));
  EXPECT_EQ(insert_one(**s, make_job("a", "ta")), kind::duplicate);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 4);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(SqliteStore, RefusesASchemaFromTheFuture) {
  test::temp_dir dir;
  const auto path = dir.path() / "dsr.sqlite3";
  ASSERT_TRUE(open_sqlite_store({path}));
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto s = open_sqlite_store({path});
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(errc::store_corrupt));
  EXPECT_NE(s.error().detail.find("schema version 99"), std::string::npos);
}

// A store written by the previous release (schema 3, frozen here as it shipped), with a queued
// job whose right was Do Not Sell: the upgrade keeps it, so it runs as an opt-out, never an erase.
TEST(SqliteStore, AnUpgradedStoreKeepsTheRightOfItsQueuedJobs) {
  test::temp_dir dir;
  const auto path = dir.path() / "dsr.sqlite3";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string v3 = R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE,
  trace_id TEXT NOT NULL UNIQUE,
  operation TEXT NOT NULL CHECK (operation IN ('delete', 'copy')),
  integration_id TEXT NOT NULL,
  source TEXT NOT NULL,
  request_type TEXT NOT NULL,
  created_at_ms INTEGER,
  received_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  subject BLOB NOT NULL,
  subject_form INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms INTEGER NOT NULL,
  lease_owner TEXT,
  lease_expires_at_ms INTEGER,
  outcome TEXT NOT NULL DEFAULT '',
  outcome_message TEXT NOT NULL DEFAULT '',
  reported INTEGER NOT NULL DEFAULT 0,
  report_error TEXT
);
CREATE INDEX jobs_due ON jobs (state, next_attempt_at_ms);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE TABLE job_steps (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  step TEXT NOT NULL,
  result TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

ALTER TABLE jobs ADD COLUMN report_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN report_next_at_ms INTEGER;
ALTER TABLE jobs ADD COLUMN report_gave_up INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_outbox ON jobs (report_next_at_ms) WHERE reported = 0 AND report_gave_up = 0;

CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL);
)sql";
  ASSERT_EQ(sqlite3_exec(db, (v3 + "PRAGMA user_version = 3;").c_str(), nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "INSERT INTO jobs (request_id, trace_id, operation, integration_id, "
                         "source, request_type, received_at_ms, updated_at_ms, subject, state, "
                         "next_attempt_at_ms) VALUES ('req-old', 't-old', 'delete', 'int-42', "
                         "'Form', 'donotsell', 1, 1, 'jane@example.com', 'queued', 1)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = open_sqlite_store({path});
  ASSERT_TRUE(s) << s.error().detail;
  const auto j = **(*s)->find("req-old");
  EXPECT_EQ(j.right.id, "donotsell");
  EXPECT_EQ(j.op, operation::delete_);  // as stored; the dispatcher routes it by its right
  EXPECT_EQ(j.subject_id_name, "");     // the e-mail, as before
  EXPECT_EQ(j.state, job_state::queued);
}

TEST(SqliteStore, RefusesAFileThatIsNotADatabase) {
  test::temp_dir dir;
  const auto path = dir.write("dsr.sqlite3", std::string(8192, 'x'));
  auto s = open_sqlite_store({path});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().detail.find(path.string()), std::string::npos);
}

TEST(SqliteStore, FullDatabaseFailsTheWholeBatchAndRecoversWhenSpaceReturns) {
  test::temp_dir dir;
  const auto path = dir.path() / "dsr.sqlite3";
  // The database may not grow beyond 40 pages (of 4 KiB): "disk full" without root tricks.
  auto s = open_sqlite_store({path, true, 40});
  ASSERT_TRUE(s) << s.error().detail;
  ASSERT_EQ(insert_one(**s, make_job("a", "ta")), kind::inserted);
  std::vector<new_job> batch;
  for (int i = 0; i < 100; ++i) {
    auto j = make_job("big" + std::to_string(i), "tbig" + std::to_string(i));
    j.subject = std::string(4000, 'x') + "@example.com";
    batch.push_back(j);
  }
  auto r = (*s)->insert(batch, 1000);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::store_unavailable));
  EXPECT_NE(r.error().detail.find("full"), std::string::npos) << r.error().detail;
  // Nothing of the failed batch was committed; the store still works for what fits.
  EXPECT_FALSE(*(*s)->find("big0"));
  EXPECT_EQ(*(*s)->count_active(), 1u);
  EXPECT_EQ(insert_one(**s, make_job("b", "tb")), kind::inserted);
  EXPECT_EQ(*(*s)->count_active(), 2u);
}

// Every byte SQLite wrote: the database and its write-ahead log.
std::string store_bytes(const std::filesystem::path& db) {
  std::string all;
  for (const auto& p : {db, std::filesystem::path(db.string() + "-wal")}) {
    std::ifstream in(p, std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in), {});
  }
  return all;
}

// A store on disk that seals e-mails with a test key.
sqlite_store_options sealing_at(const std::filesystem::path& path) {
  sqlite_store_options o;
  o.path = path;
  o.subject_key = std::string(32, 'k');
  return o;
}

// The subject's ID is sealed and hashed with keys of their own derived from store_key, never
// store_key itself; IDs sealed with store_key by an earlier version stay readable.
TEST(SqliteStore, SealingAndHashingUseTheirOwnDerivedKeysAndOldDataStaysReadable) {
  test::temp_dir dir;
  const auto path = dir.path() / "dsr.sqlite3";
  const std::string store_key(32, 'k');
  {
    auto s = open_sqlite_store(sealing_at(path));
    ASSERT_TRUE(s) << s.error().detail;
    ASSERT_EQ(insert_one(**s, make_job("req-new", "t-new")), kind::inserted);
    ASSERT_EQ(insert_one(**s, make_job("req-old", "t-old")), kind::inserted);
    auto finished = make_job("req-hash", "t-hash");
    finished.ended =
        intake_outcome{job_state::missing_identifiers, job_outcome::missing_identifiers, "x"};
    ASSERT_EQ(insert_one(**s, finished), kind::inserted);
  }
  const auto keys = derive_store_keys(store_key);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const auto blob_of = [&](const char* id) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT subject FROM jobs WHERE request_id = ?1", -1, &st, nullptr);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
    std::string out(static_cast<const char*>(sqlite3_column_blob(st, 0)),
                    static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
    sqlite3_finalize(st);
    return out;
  };
  const auto sealed = blob_of("req-new");
  EXPECT_EQ(crypto::open(keys.subject_seal, sealed, "req-new"), "jane@example.com");
  EXPECT_FALSE(crypto::open(store_key, sealed, "req-new"));  // not store_key itself
  // A row as an earlier version wrote it: sealed with store_key, form 1.
  const auto legacy = crypto::seal(store_key, "old@example.com", "req-old");
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "UPDATE jobs SET subject = ?1, subject_form = 1 WHERE request_id = 'req-old'",
                     -1, &st, nullptr);
  sqlite3_bind_blob(st, 1, legacy.data(), static_cast<int>(legacy.size()), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);

  auto s = open_sqlite_store(sealing_at(path));
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ((**(*s)->find("req-old")).subject, "old@example.com");
  EXPECT_EQ((**(*s)->find("req-new")).subject, "jane@example.com");
  // Forgotten: the hash is keyed with the hashing key.
  ASSERT_TRUE((*s)->forget_subject((**(*s)->find("req-hash")).id));
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  EXPECT_EQ(blob_of("req-hash"), "hkdf-hmac-sha256:" + crypto::to_hex(crypto::hmac_sha256(
                                                           keys.subject_hash, "jane@example.com")));
  sqlite3_close(db);
}

TEST(SqliteStore, EmailIsSealedAtRestAndReplacedByAHashOnceReported) {
  test::temp_dir dir;
  const auto path = dir.path() / "dsr.sqlite3";
  auto o = sealing_at(path);
  auto s = open_sqlite_store(o);
  ASSERT_TRUE(s) << s.error().detail;
  auto a = make_job("req-a", "ta");
  a.subject = "canary-a@example.com";
  auto b = make_job("req-b", "tb");
  b.subject = "canary-b@example.com";
  ASSERT_EQ(insert_one(**s, a), kind::inserted);
  ASSERT_EQ(insert_one(**s, b), kind::inserted);
  EXPECT_EQ(store_bytes(path).find("canary-"), std::string::npos);  // sealed from the start
  // The job that runs gets the address back.
  auto claimed = (*s)->claim_next("w", t0, std::chrono::minutes(1));
  ASSERT_TRUE(claimed && *claimed);
  EXPECT_EQ((*claimed)->subject, "canary-a@example.com");
  ASSERT_TRUE((*s)->release((*claimed)->id, "w",
                            {job_state::completed, 1, t0, job_outcome::completed, ""}, t0));
  // Finished but not yet reported: still sealed, still readable for the report.
  EXPECT_EQ((**(*s)->find("req-a")).subject, "canary-a@example.com");
  report_update ack;
  ack.acknowledged = true;
  ASSERT_TRUE((*s)->record_report((*claimed)->id, ack, t0));
  EXPECT_EQ((**(*s)->find("req-a")).subject, "");                      // only the hash is left
  EXPECT_EQ((**(*s)->find("req-b")).subject, "canary-b@example.com");  // still queued
}

TEST(SqliteStore, ACustomFieldIdIsSealedAndForgottenLikeAnEmail) {
  test::temp_dir dir;
  const auto path = dir.path() / "dsr.sqlite3";
  auto s = open_sqlite_store(sealing_at(path));
  ASSERT_TRUE(s) << s.error().detail;
  auto a = make_job("req-a", "ta");
  a.subject_id_name = "customer_id";
  a.subject = "CANARY-C-1042";
  ASSERT_EQ(insert_one(**s, a), kind::inserted);
  EXPECT_EQ(store_bytes(path).find("CANARY-C-1042"), std::string::npos);
  auto claimed = (*s)->claim_next("w", t0, std::chrono::minutes(1));
  ASSERT_TRUE(claimed && *claimed);
  EXPECT_EQ((*claimed)->subject, "CANARY-C-1042");
  EXPECT_EQ((*claimed)->subject_id_name, "customer_id");
  ASSERT_TRUE((*s)->release((*claimed)->id, "w",
                            {job_state::completed, 1, t0, job_outcome::completed, ""}, t0));
  report_update ack;
  ack.acknowledged = true;
  ASSERT_TRUE((*s)->record_report((*claimed)->id, ack, t0));
  EXPECT_EQ((**(*s)->find("req-a")).subject, "");
  EXPECT_EQ(store_bytes(path).find("CANARY-C-1042"), std::string::npos);
}

TEST(SqliteStore, AJobEndedAtIntakeIsStoredFinishedWithItsReportDue) {
  auto s = open_memory();
  auto j = make_job("req-none", "t-none");
  j.subject.clear();
  j.ended =
      intake_outcome{job_state::missing_identifiers, job_outcome::missing_identifiers, "no e-mail"};
  ASSERT_EQ(insert_one(*s, j, 0), kind::inserted);  // never counts against the queue's capacity
  const auto got = **s->find("req-none");
  EXPECT_EQ(got.state, job_state::missing_identifiers);
  EXPECT_EQ(to_string(got.outcome), "MissingIdentifiers");
  EXPECT_EQ(got.outcome_message, "no e-mail");
  EXPECT_EQ(*s->count_active(), 0u);
  EXPECT_FALSE(*s->claim_next("w", t0 + 1h, std::chrono::minutes(1)));  // nothing runs
  const auto due = s->due_reports(t0, 10);
  ASSERT_TRUE(due);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].request_id, "req-none");
}

TEST(SqliteStore, KeepsTheOperationAndTheRightAsReceived) {
  auto s = open_memory();
  auto j = make_job("req-dns", "t-dns");
  j.op = operation::opt_out;
  j.right = job_right{"dns-1", "Do Not Sell", "DoNotSell"};
  j.request_type = "Do Not Sell";
  ASSERT_EQ(insert_one(*s, j), kind::inserted);
  const auto got = **s->find("req-dns");
  EXPECT_EQ(got.op, operation::opt_out);
  EXPECT_EQ(got.right, j.right);
  EXPECT_EQ(got.request_type, "Do Not Sell");
  // Delete and opt-out came to the same URL: a repeat, not a conflict; copy is the other one.
  EXPECT_EQ(insert_one(*s, make_job("req-dns", "t-other", operation::delete_)), kind::duplicate);
  EXPECT_EQ(insert_one(*s, make_job("req-dns", "t-third", operation::copy)), kind::conflict);
  // A run routed as a delete now (the configuration changed) records it.
  auto claimed = s->claim_next("w", t0, std::chrono::minutes(1));
  ASSERT_TRUE(claimed && *claimed);
  job_release next{job_state::completed, 1, t0, job_outcome::completed, "done"};
  next.op = operation::delete_;
  ASSERT_TRUE(s->release((*claimed)->id, "w", next, t0));
  EXPECT_EQ((**s->find("req-dns")).op, operation::delete_);
}

TEST(SqliteStore, AFileLinkKeepsItsExpiryUntilItLapsesUnacknowledged) {
  auto s = open_memory();
  ASSERT_EQ(insert_one(*s, make_job("req-c", "t-c", operation::copy)), kind::inserted);
  const auto id = (**s->find("req-c")).id;
  EXPECT_EQ(*s->file_link_expiry(id, t0 + 72h, t0), t0 + 72h);
  // A report sent again carries the same link...
  EXPECT_EQ(*s->file_link_expiry(id, t0 + 99h, t0 + 27h), t0 + 72h);
  EXPECT_EQ((**s->find("req-c")).file_link_expires_at, t0 + 72h);
  EXPECT_EQ(*s->file_links(t0 + 71h, false), (std::vector<std::int64_t>{id}));
  EXPECT_TRUE(s->file_links(t0 + 71h, true)->empty());
  // ...unless it lapsed before MineOS acknowledged the report (a long 401 pause, an outage):
  // the export is kept, and the report goes out again with a fresh link.
  EXPECT_TRUE(s->file_links(t0 + 80h, true)->empty());
  EXPECT_EQ(*s->file_link_expiry(id, t0 + 152h, t0 + 80h), t0 + 152h);
  // Once acknowledged, the link lives out its time and then its export is due for deletion.
  report_update ack;
  ack.acknowledged = true;
  ASSERT_TRUE(s->record_report(id, ack, t0 + 80h));
  EXPECT_EQ(*s->file_link_expiry(id, t0 + 999h, t0 + 200h), t0 + 152h);
  EXPECT_TRUE(s->file_links(t0 + 152h, false)->empty());
  EXPECT_EQ(*s->file_links(t0 + 152h, true), (std::vector<std::int64_t>{id}));
}

TEST(SqliteStore, PurgeDeletesOnlyFinishedJobsOlderThanTheCutoff) {
  auto s = open_memory();
  for (const char* id : {"old-done", "old-failed", "new-done", "queued"}) {
    ASSERT_EQ(insert_one(*s, make_job(id, std::string("t-") + id)), kind::inserted);
  }
  const auto finish = [&](const char* id, job_state state, time_point at) {
    auto j = s->claim_next("w", at, std::chrono::minutes(1));
    while ((*j)->request_id != id) {
      s->release((*j)->id, "w",
                 {job_state::queued, 0, at + std::chrono::hours(1), job_outcome::none, ""}, at);
      j = s->claim_next("w", at, std::chrono::minutes(1));
    }
    ASSERT_TRUE(s->release((*j)->id, "w", {state, 1, at, job_outcome::completed, ""}, at));
  };
  finish("old-done", job_state::completed, t0);
  finish("old-failed", job_state::failed, t0 + 1s);
  finish("new-done", job_state::completed, t0 + 10 * 24h);
  EXPECT_EQ(*s->purge_finished(t0 + 5 * 24h), 2u);
  EXPECT_FALSE(*s->find("old-done"));
  EXPECT_FALSE(*s->find("old-failed"));
  EXPECT_TRUE(*s->find("new-done"));
  EXPECT_TRUE(*s->find("queued"));  // never purged while it can still run
}

TEST(SqliteStore, StatsCountStatesTheOldestWaitingJobAndDeadlinesAtRisk) {
  auto s = open_memory();
  // Due dates with a 30-day deadline: created 40 days ago (overdue), 25 days ago (due within a
  // 7-day warning), received now without createdAt (due in 30 days: not at risk).
  auto overdue = make_job("overdue", "t1");
  overdue.created_at = t0 - 40 * 24h;
  overdue.received_at = t0 - 2h;
  auto soon = make_job("soon", "t2");
  soon.created_at = t0 - 25 * 24h;
  soon.received_at = t0 - 1h;
  auto fresh = make_job("fresh", "t3");
  auto done = make_job("done", "t4");
  done.created_at = t0 - 40 * 24h;  // finished: no longer at risk
  for (const auto& j : {overdue, soon, fresh, done}) {
    ASSERT_EQ(insert_one(*s, j), kind::inserted);
  }
  auto j = s->claim_next("w", t0, std::chrono::minutes(1));
  while ((*j)->request_id != "done") {
    s->release((*j)->id, "w", {job_state::queued, 0, t0 + 1h, job_outcome::none, ""}, t0);
    j = s->claim_next("w", t0, std::chrono::minutes(1));
  }
  ASSERT_TRUE(
      s->release((*j)->id, "w", {job_state::completed, 1, t0, job_outcome::completed, ""}, t0));

  const auto st = s->stats(t0, 30 * 24h, 7 * 24h);
  ASSERT_TRUE(st) << st.error().detail;
  EXPECT_EQ(st->by_state[static_cast<std::size_t>(job_state::queued)], 3u);
  EXPECT_EQ(st->by_state[static_cast<std::size_t>(job_state::completed)], 1u);
  EXPECT_EQ(st->by_state[static_cast<std::size_t>(job_state::failed)], 0u);
  EXPECT_EQ(st->oldest_waiting, t0 - 2h);
  EXPECT_EQ(st->overdue, 1u);
  EXPECT_EQ(st->due_soon, 1u);
  // Eight days on, the fresh one is not yet at risk, the soon one is overdue.
  const auto later = s->stats(t0 + 8 * 24h, 30 * 24h, 7 * 24h);
  EXPECT_EQ(later->overdue, 2u);
  EXPECT_EQ(later->due_soon, 0u);

  // The same jobs listed for the status page: earliest due first, the finished one left out.
  const auto listed = s->at_risk(t0, 30 * 24h, 7 * 24h, 10);
  ASSERT_TRUE(listed) << listed.error().detail;
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].request_id, "overdue");
  EXPECT_EQ((*listed)[1].request_id, "soon");
  EXPECT_EQ(s->at_risk(t0 + 8 * 24h, 30 * 24h, 7 * 24h, 1)->size(), 1u);  // the limit holds
  EXPECT_EQ(s->at_risk(t0 - 20 * 24h, 30 * 24h, 7 * 24h, 10)->size(), 0u);
}

TEST(SqliteStore, FailedJobKeepsItsSealedEmailAndAnotherKeyCannotReadIt) {
  test::temp_dir dir;
  const auto path = dir.path() / "dsr.sqlite3";
  auto o = sealing_at(path);
  {
    auto s = open_sqlite_store(o);
    ASSERT_TRUE(s);
    ASSERT_EQ(insert_one(**s, make_job("req-f", "tf")), kind::inserted);
    auto j = (*s)->claim_next("w", t0, std::chrono::minutes(1));
    ASSERT_TRUE(j && *j);
    ASSERT_TRUE(
        (*s)->release((*j)->id, "w", {job_state::failed, 1, t0, job_outcome::failed, "x"}, t0));
    ASSERT_TRUE((*s)->forget_subject((*j)->id));  // a failed job may be retried: kept
    EXPECT_EQ((**(*s)->find("req-f")).subject, "jane@example.com");
  }
  o.subject_key = std::string(32, 'z');
  auto other = open_sqlite_store(o);
  ASSERT_TRUE(other);
  EXPECT_EQ((**(*other)->find("req-f")).subject, "");
}

}  // namespace
}  // namespace dsr
