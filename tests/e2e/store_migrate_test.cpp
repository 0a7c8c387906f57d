// `dsr-connector store migrate --from sqlite:PATH` as an operator runs it: the jobs and kept
// exports of a stopped daemon's SQLite store move into an empty PostgreSQL store; the SQLite file
// is left as it was; a store a daemon holds, or a PostgreSQL store that holds jobs, is refused
// with nothing written.

#include "dsr/jobs/store.hpp"

#include "support/e2e_config.hpp"
#include "support/pg_cluster.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

namespace dsr::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

std::string bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

new_job make_job(std::string request_id, operation op) {
  new_job j;
  j.op = op;
  j.request_id = request_id;
  j.trace_id = "t-" + request_id;
  j.integration_id = "int-42";
  j.source = "Form";
  j.request_type = "delete";
  j.received_at = t0;
  j.subject = request_id + "@example.com";
  return j;
}

std::string config_for(const temp_dir& dir, const std::string& uri, const std::string& name) {
  return dir
      .write(name, fmt::format("[store]\nengine = \"postgresql\"\nurl = \"{}\"\npath = "
                               "\"new/dsr.sqlite3\"\n{}",
                               uri, test_credentials()))
      .string();
}

TEST(StoreMigrate, MovesEveryJobAndKeptExportAndLeavesTheSqliteFileAsItWas) {
  temp_dir dir;
  const auto old_store = dir.path() / "old" / "dsr.sqlite3";
  const std::string key(32, '\xaa');  // test_credentials()'s store_key: 64 times 'a'
  std::int64_t copy_id = 0;
  {
    sqlite_store_options o;
    o.path = old_store;
    o.subject_key = key;
    auto s = open_sqlite_store(o);
    ASSERT_TRUE(s) << s.error().detail;
    const std::vector<new_job> jobs{make_job("req-copy", operation::copy),
                                    make_job("req-queued", operation::delete_)};
    ASSERT_TRUE((*s)->insert(jobs, 100));
    auto j = (*s)->claim_next("w", t0, 1min);
    ASSERT_TRUE(j && *j);
    copy_id = (*j)->id;
    ASSERT_TRUE((*s)->release(copy_id, "w",
                              {job_state::completed, 1, t0, job_outcome::completed, "ok"}, t0));
  }
  std::filesystem::create_directories(dir.path() / "old" / "exports");
  const auto kept = dir.path() / "old" / "exports" / fmt::format("{}.json", copy_id);
  std::ofstream(kept) << "sealed export bytes";
  const auto before = bytes_of(old_store);

  const auto uri = pg_cluster::shared().create_database("migrate_ok");
  const auto cfg = config_for(dir, uri, "pg.toml");
  const auto moved = run(
      DSR_BINARY, {"store", "migrate", "--from", "sqlite:" + old_store.string(), "--config", cfg});
  ASSERT_EQ(moved.exit_code, 0) << moved.output;
  EXPECT_THAT(moved.output, HasSubstr("moved 2 job(s) and 1 kept export(s)"));
  EXPECT_EQ(bytes_of(old_store), before);
  auto pg = open_postgres_store({uri, "", key});
  ASSERT_TRUE(pg) << pg.error().detail;
  // The kept export is in the database, as it was (sealed), for any daemon to deliver.
  EXPECT_EQ(*(*pg)->export_chunks(copy_id), 1u);
  EXPECT_EQ(*(*pg)->export_chunk(copy_id, 0), "sealed export bytes");
  EXPECT_FALSE(
      std::filesystem::exists(dir.path() / "new" / "exports" / fmt::format("{}.json", copy_id)));
  EXPECT_EQ((**(*pg)->find("req-queued")).subject, "req-queued@example.com");
  EXPECT_EQ((**(*pg)->find("req-copy")).state, job_state::completed);
  EXPECT_EQ((*pg)->due_reports(t0, 10)->size(), 1u);  // the copy's report, still to send

  // Again: the PostgreSQL store holds jobs now.
  const auto again = run(
      DSR_BINARY, {"store", "migrate", "--from", "sqlite:" + old_store.string(), "--config", cfg});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.output, HasSubstr("already holds 2 job(s)"));
  EXPECT_EQ(*(*pg)->count_active(), 1u);
}

TEST(StoreMigrate, RefusesAStoreADaemonHoldsAndBadArgumentsWithNothingWritten) {
  temp_dir dir;
  const auto old_store = dir.path() / "dsr.sqlite3";
  {
    sqlite_store_options o;
    o.path = old_store;
    o.subject_key = std::string(32, '\xaa');
    auto s = open_sqlite_store(o);
    ASSERT_TRUE(s);
    const auto j = make_job("req-1", operation::delete_);
    ASSERT_TRUE((*s)->insert(std::span<const new_job>(&j, 1), 100));
  }
  const auto uri = pg_cluster::shared().create_database("migrate_refused");
  const auto cfg = config_for(dir, uri, "pg.toml");
  // A daemon's lock on the store.
  const auto lock = old_store.string() + ".lock";
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const auto held = run(
      DSR_BINARY, {"store", "migrate", "--from", "sqlite:" + old_store.string(), "--config", cfg});
  ::close(fd);
  EXPECT_EQ(held.exit_code, 1);
  EXPECT_THAT(held.output, HasSubstr("a dsr-connector daemon has"));
  // Refused before the database was touched: not even the schema was made.
  EXPECT_EQ(pg_query(uri, "SELECT count(*) FROM pg_tables WHERE tablename = 'jobs'")[0][0], "0");

  const auto bad_from =
      run(DSR_BINARY, {"store", "migrate", "--from", old_store.string(), "--config", cfg});
  EXPECT_EQ(bad_from.exit_code, 2);
  EXPECT_THAT(bad_from.output, HasSubstr("expected sqlite:PATH"));
  const auto sqlite_cfg =
      dir.write("sqlite.toml", "[store]\npath = \"x.sqlite3\"\n" + test_credentials());
  const auto wrong_engine =
      run(DSR_BINARY, {"store", "migrate", "--from", "sqlite:" + old_store.string(), "--config",
                       sqlite_cfg.string()});
  EXPECT_EQ(wrong_engine.exit_code, 2);
  EXPECT_THAT(wrong_engine.output, HasSubstr("set engine = \"postgresql\""));
}

// A daemon older than the database's schema refuses to start (exit 2), naming both versions.
TEST(StoreSchema, ADaemonOlderThanTheSchemaRefusesToStartNamingBothVersions) {
  temp_dir dir;
  const auto uri = pg_cluster::shared().create_database("schema_future");
  ASSERT_TRUE(open_postgres_store({uri, "", ""}));
  pg_query(uri, "UPDATE dsr_schema SET version = 99");
  const auto cfg = dir.write("dsr.toml", fmt::format("[server]\nlisten = \"127.0.0.1:0\"\n"
                                                     "[store]\nengine = \"postgresql\"\nurl = "
                                                     "\"{}\"\npath = \"dsr.sqlite3\"\n{}",
                                                     uri, test_credentials()));
  const auto served = run(DSR_BINARY, {"serve", "--config", cfg.string()});
  EXPECT_EQ(served.exit_code, 2) << served.output;
  EXPECT_THAT(served.output,
              HasSubstr(fmt::format("has schema version 99, newer than this build knows ({})",
                                    postgres_schema_version())));
}

}  // namespace
}  // namespace dsr::test
