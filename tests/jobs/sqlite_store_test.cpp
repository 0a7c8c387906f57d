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

kind insert_one(job_store& s, const new_job& j, std::size_t max = 100) {
  auto r = s.insert(std::span<const new_job>(&j, 1), max);
  EXPECT_TRUE(r) << r.error().detail;
  return (*r)[0].result;
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
  EXPECT_EQ(sqlite3_column_int(st, 0), sqlite_schema_version());  // every migration ran
  sqlite3_finalize(st);
  sqlite3_close(db);
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

}  // namespace
}  // namespace dsr
