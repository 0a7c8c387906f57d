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
  EXPECT_EQ(rows[0][0], "2");  // every migration, once
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
