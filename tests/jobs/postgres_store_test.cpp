// What only the PostgreSQL engine has: a server that goes away and comes back, daemons that start
// together, a password that must never show.

#include "dsr/jobs/store.hpp"

#include "support/pg_cluster.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

namespace dsr {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using kind = insert_outcome::kind;
using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

new_job make_job(std::string request_id) {
  new_job j;
  j.request_id = request_id;
  j.trace_id = "t-" + request_id;
  j.integration_id = "int-42";
  j.source = "Form";
  j.request_type = "delete";
  j.received_at = t0;
  j.subject = "jane@example.com";
  return j;
}

std::string fresh_database() {
  static int n = 0;
  return test::pg_cluster::shared().create_database("pg_store_" + std::to_string(++n));
}

result<std::vector<insert_outcome>> insert(job_store& s, const new_job& j) {
  return s.insert(std::span<const new_job>(&j, 1), 100);
}

// The server stopped: every verb fails with store_unavailable naming the store (nothing is
// reported committed), and the store carries on by itself once the server is back.
TEST(PostgresStore, AServerThatGoesAwayFailsEveryVerbUntilItIsBack) {
  auto& cluster = test::pg_cluster::shared();
  const auto uri = fresh_database();
  auto s = open_postgres_store({uri, "", std::string(32, 'k')});
  ASSERT_TRUE(s) << s.error().detail;
  ASSERT_TRUE(insert(**s, make_job("before")));
  cluster.stop();
  auto refused = insert(**s, make_job("during"));
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(errc::store_unavailable));
  EXPECT_THAT(refused.error().detail, HasSubstr("job store postgresql://postgres@"));
  EXPECT_FALSE((*s)->claim_next("w", t0, 1min));
  EXPECT_FALSE((*s)->probe_write(t0));
  cluster.start();
  auto again = insert(**s, make_job("after"));
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_EQ((*again)[0].result, kind::inserted);
  EXPECT_TRUE(*(*s)->find("before"));
  EXPECT_FALSE(*(*s)->find("during"));
  EXPECT_EQ(*(*s)->count_active(), 2u);
}

// A crash of the server keeps every committed job: 202 meant committed.
TEST(PostgresStore, ACrashedServerKeepsEveryCommittedJob) {
  auto& cluster = test::pg_cluster::shared();
  const auto uri = fresh_database();
  auto s = open_postgres_store({uri, "", ""});
  ASSERT_TRUE(s) << s.error().detail;
  std::vector<new_job> batch;
  for (int i = 0; i < 50; ++i) {
    batch.push_back(make_job("r" + std::to_string(i)));
  }
  ASSERT_TRUE((*s)->insert(batch, 1000));
  cluster.kill9();
  cluster.start();
  EXPECT_EQ(*(*s)->count_active(), 50u);
}

// Daemons starting together on an empty database: one migrates, the others wait for it and find
// the schema in place.
TEST(PostgresStore, DaemonsStartingTogetherMigrateOnce) {
  const auto uri = fresh_database();
  constexpr int daemons = 4;
  std::vector<std::string> errors(daemons);
  std::vector<std::thread> threads;
  for (int i = 0; i < daemons; ++i) {
    threads.emplace_back([&, i] {
      auto s = open_postgres_store({uri, "", ""});
      if (!s) {
        errors[i] = s.error().detail;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& e : errors) {
    EXPECT_EQ(e, "");
  }
  const auto rows = test::pg_query(uri, "SELECT version FROM dsr_schema");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], std::to_string(postgres_schema_version()));  // every migration, once
}

// store_password goes to libpq, never into a message; the URL is shown without its options.
TEST(PostgresStore, ThePasswordIsNeverInAMessage) {
  postgres_store_options o;
  o.url = "postgresql://dsr@/nodb?host=/nonexistent-dir&port=1&sslmode=disable";
  o.password = "S3cret-store-password";
  o.connect_timeout = 2s;
  auto s = open_postgres_store(o);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(errc::store_unavailable));
  EXPECT_THAT(s.error().detail,
              AllOf(HasSubstr("job store postgresql://dsr@/nonexistent-dir:1/nodb: cannot connect"),
                    Not(HasSubstr("S3cret"))));
}

}  // namespace
}  // namespace dsr

namespace dsr {
namespace {

// Several daemons on one database (docs/contract.md §8): what they share, judged by the database's
// clock. Time is moved by rewriting the stored times, never by sleeping.
class Cluster : public ::testing::Test {
 protected:
  void SetUp() override {
    uri_ = fresh_database();
    a_ = open();
    b_ = open();
  }
  std::unique_ptr<job_store> open() {
    auto s = open_postgres_store({uri_, "", ""});
    EXPECT_TRUE(s) << s.error().detail;
    return s ? std::move(*s) : nullptr;
  }
  void sql(const std::string& text) { test::pg_query(uri_, text); }

  std::string uri_;
  std::unique_ptr<job_store> a_;
  std::unique_ptr<job_store> b_;
};

// A lease runs out by the database's clock: a daemon whose own clock runs a day ahead expires
// nothing, and one whose clock is behind still sees the lease run out.
TEST_F(Cluster, LeasesAreJudgedByTheDatabasesClockNotTheCallers) {
  ASSERT_TRUE(insert(*a_, make_job("a")));
  auto j = a_->claim_next("a:1/1", t0, 1min);
  ASSERT_TRUE(j && *j);
  EXPECT_EQ(*b_->expire_leases(t0 + std::chrono::days(365 * 10)), 0u);
  sql("UPDATE jobs SET lease_expires_at_ms = lease_expires_at_ms - 61000");
  EXPECT_EQ(*b_->expire_leases(t0 - std::chrono::days(365)), 1u);
  auto again = b_->claim_next("b:2/1", t0, 1min);
  ASSERT_TRUE(again && *again);
  EXPECT_TRUE(a_->renew_lease((*j)->id, "a:1/1", t0, 1min).error().is(errc::lease_lost));
  const auto left = b_->renew_lease((*j)->id, "b:2/1", t0 - std::chrono::days(365), 1min);
  ASSERT_TRUE(left);
  EXPECT_GT(*left, 55s);
  EXPECT_LE(*left, 1min);
}

// Each daemon's heartbeat counts the live ones; one not seen within live_for is not counted, and
// a long-gone one's row goes.
TEST_F(Cluster, HeartbeatsCountTheLiveDaemons) {
  const worker_beat one{"a:1", "a", "0.1.0", 30s};
  const worker_beat two{"b:2", "b", "0.1.0", 30s};
  EXPECT_EQ(a_->heartbeat(one)->live_workers, 1u);
  EXPECT_EQ(b_->heartbeat(two)->live_workers, 2u);
  EXPECT_EQ(a_->heartbeat(one)->live_workers, 2u);
  sql("UPDATE workers SET seen_at_ms = seen_at_ms - 31000 WHERE owner = 'b:2'");
  EXPECT_EQ(a_->heartbeat(one)->live_workers, 1u);
  sql("UPDATE workers SET seen_at_ms = seen_at_ms - 300000 WHERE owner = 'b:2'");
  ASSERT_TRUE(a_->heartbeat(one));
  EXPECT_EQ(test::pg_query(uri_, "SELECT COUNT(*) FROM workers")[0][0], "1");
  EXPECT_EQ(a_->heartbeat(one)->schema, postgres_schema_version());
}

// A newer daemon's migration shows in the heartbeat of an older one, whatever else it changed.
TEST_F(Cluster, AHeartbeatSeesANewerSchema) {
  sql("UPDATE dsr_schema SET version = version + 1; DROP TABLE call_limits");
  const auto seen = a_->heartbeat({"a:1", "a", "0.1.0", 30s});
  ASSERT_TRUE(seen) << seen.error().detail;
  EXPECT_EQ(seen->schema, postgres_schema_version() + 1);
}

// The shared rate limit: turns from two daemons are one interval apart, in the order taken.
TEST_F(Cluster, TurnsFromTwoDaemonsAreOneIntervalApart) {
  constexpr auto interval = std::chrono::microseconds(200000);
  std::vector<std::chrono::microseconds> waits;
  for (int i = 0; i < 6; ++i) {
    auto t = (i % 2 == 0 ? a_ : b_)->take_turn(call_limit::exponea, interval);
    ASSERT_TRUE(t) << t.error().detail;
    EXPECT_EQ(t->blocked.count(), 0);
    waits.push_back(t->wait);
  }
  // Taken within a few ms of each other: each turn waits one interval more than the one before.
  for (std::size_t i = 1; i < waits.size(); ++i) {
    const auto step = waits[i] - waits[i - 1];
    EXPECT_GT(step, interval - 50ms) << i;
    EXPECT_LE(step, interval) << i;
  }
}

// A 429's Retry-After holds every daemon: no turn is handed out while it lasts, and heartbeats
// carry it to the daemons that take no turn.
TEST_F(Cluster, ARetryAfterMetByOneDaemonHoldsThemAll) {
  ASSERT_TRUE(a_->block_calls(call_limit::exponea, 20s));
  const auto t = b_->take_turn(call_limit::exponea, std::chrono::microseconds(1000));
  ASSERT_TRUE(t);
  EXPECT_GT(t->blocked, 19s);
  EXPECT_EQ(t->wait.count(), 0);
  EXPECT_GT(b_->heartbeat({"b:2", "b", "0.1.0", 30s})->calls_blocked_for, 19s);
  ASSERT_TRUE(a_->block_calls(call_limit::exponea, 1s));  // a shorter one never shortens it
  EXPECT_GT(b_->take_turn(call_limit::exponea, std::chrono::microseconds(1000))->blocked, 18s);
  sql("UPDATE call_limits SET blocked_until_ms = blocked_until_ms - 21000");
  const auto after = b_->take_turn(call_limit::exponea, std::chrono::microseconds(1000));
  EXPECT_EQ(after->blocked.count(), 0);
}

// MineOS's limit is a row of its own, made by its first turn: its turns and Retry-Afters neither
// take nor hold Exponea's, and Exponea's do not hold it.
TEST_F(Cluster, MineOsStatusCallsHaveTheirOwnSharedLimit) {
  constexpr auto interval = std::chrono::microseconds(200000);
  std::vector<std::chrono::microseconds> waits;
  for (int i = 0; i < 4; ++i) {
    auto t = (i % 2 == 0 ? a_ : b_)->take_turn(call_limit::mineos, interval);
    ASSERT_TRUE(t) << t.error().detail;
    waits.push_back(t->wait);
  }
  EXPECT_LT(waits[0], 1ms);  // a new row: the first turn is now
  for (std::size_t i = 1; i < waits.size(); ++i) {
    EXPECT_GT(waits[i] - waits[i - 1], interval - 50ms) << i;
  }
  // Exponea's row was not moved by them.
  EXPECT_LT(a_->take_turn(call_limit::exponea, interval)->wait, 1ms);

  ASSERT_TRUE(a_->block_calls(call_limit::mineos, 20s));
  EXPECT_GT(b_->take_turn(call_limit::mineos, interval)->blocked, 19s);
  EXPECT_EQ(b_->take_turn(call_limit::exponea, interval)->blocked.count(), 0);
  EXPECT_EQ(b_->heartbeat({"b:2", "b", "0.1.0", 30s})->calls_blocked_for.count(), 0);
  ASSERT_TRUE(b_->block_calls(call_limit::exponea, 5s));
  EXPECT_GT(a_->take_turn(call_limit::mineos, interval)->blocked, 18s);  // its own, not 5 s
}

TEST_F(Cluster, TheCircuitBreakerIsShared) {
  ASSERT_TRUE(a_->set_breaker(10s, "5 transient failures in a row"));
  const auto seen = b_->heartbeat({"b:2", "b", "0.1.0", 30s});
  EXPECT_GT(seen->breaker_open_for, 9s);
  EXPECT_EQ(seen->breaker_reason, "5 transient failures in a row");
  ASSERT_TRUE(a_->set_breaker(0s, ""));
  EXPECT_EQ(b_->heartbeat({"b:2", "b", "0.1.0", 30s})->breaker_open_for.count(), 0);
}

// One daemon at a time runs a periodic task, at most once a period; once the period has passed
// (and no daemon holds it), any daemon may run it.
TEST_F(Cluster, APeriodicTaskRunsOnOneDaemonOncePerPeriod) {
  EXPECT_TRUE(*a_->claim_periodic("retention_purge", "a:1", 1h, 10min));
  EXPECT_FALSE(*b_->claim_periodic("retention_purge", "b:2", 1h, 10min));
  EXPECT_FALSE(*a_->claim_periodic("retention_purge", "a:1", 1h, 10min));
  EXPECT_TRUE(*b_->claim_periodic("deadline_warning", "b:2", 24h, 10min));
  // An hour later, but a's run still holds it: nobody; once its hold lapses, b.
  sql("UPDATE periodic_tasks SET last_run_at_ms = last_run_at_ms - 3600000, held_until_ms = "
      "held_until_ms + 3600000 WHERE task = 'retention_purge'");
  EXPECT_FALSE(*b_->claim_periodic("retention_purge", "b:2", 1h, 10min));
  sql("UPDATE periodic_tasks SET held_until_ms = 0 WHERE task = 'retention_purge'");
  EXPECT_TRUE(*b_->claim_periodic("retention_purge", "b:2", 1h, 10min));
  EXPECT_EQ(test::pg_query(uri_,
                           "SELECT owner FROM periodic_tasks WHERE task = "
                           "'retention_purge'")[0][0],
            "b:2");
}

// With SQLite one daemon holds the store: there is nothing to share, and it says so.
TEST(SqliteStore, HasNothingToShare) {
  auto s = open_sqlite_store({":memory:"});
  ASSERT_TRUE(s);
  const auto beat = (*s)->heartbeat({"a:1", "a", "0.1.0", 30s});
  ASSERT_FALSE(beat);
  EXPECT_TRUE(beat.error().is(errc::unsupported));
}

}  // namespace
}  // namespace dsr
