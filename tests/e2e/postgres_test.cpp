// The daemon end to end on PostgreSQL ([store] engine = "postgresql", a database of its own in
// this binary's throwaway cluster): delete and copy as on SQLite; kill -9 right after a burst of
// 202s and mid-job; the database stopped and started under load.

#include "fulfilment_fixture.hpp"

#include "support/pg_cluster.hpp"
#include "support/sim_state.hpp"

#include <set>

namespace dsr::test {
namespace {

using ::testing::HasSubstr;

class OnPostgres : public Fulfilment {
 protected:
  void SetUp() override {
    static int n = 0;
    uri_ = pg_cluster::shared().create_database("e2e_" + std::to_string(++n));
    // `path` only places the daemon's scratch folder: jobs and exports are in PostgreSQL.
    store_config_ =
        fmt::format("engine = \"postgresql\"\nurl = \"{}\"\npath = \"dsr.sqlite3\"", uri_);
    extra_customers_ = seeded(30);
    // A killed daemon's jobs are taken over by the next one after 5 s (lease > the 2 s timeout).
    extra_config_ = "[jobs]\nlease_seconds = 5\nconcurrency = 8\n";
    wait_limit_ = 60s;
    Fulfilment::SetUp();
  }

  // Seeds `n` customers s<i>@example.com for the load tests.
  static std::vector<json> seeded(int n) {
    std::vector<json> out;
    for (int i = 0; i < n; ++i) {
      const auto email = fmt::format("s{}@example.com", i);
      out.push_back({{"ids", {{"registered", email}}},
                     {"properties", {{"email", email}}},
                     {"events", json::array()}});
    }
    return out;
  }

  int post(const std::string& op, const std::string& request_id, const std::string& email) {
    return post_signed(daemon_->port(), "/v1/mineos/" + op,
                       webhook_body("trace-" + request_id, request_id, email), webhook_secret)
        .status;
  }

  void kill_and_restart() {
    daemon_->signal(SIGKILL);
    daemon_->wait_exit();
    start_daemon();
  }

  // privacy_request events per request id, as the simulator holds them.
  std::map<std::string, int> events() { return audit_events(sim("state")); }

  // Status reports MineOS acknowledged, per ticket.
  std::map<std::string, int> reports() { return acknowledged_reports(sim("mineos")); }

  std::string uri_;
};

TEST_F(OnPostgres, DeleteAndCopyCompleteAsOnSqlite) {
  submit("delete", "req-jane", "Jane@Example.COM");
  submit("copy", "req-john", "john@example.com");
  submit("delete", "req-nobody", "nobody@example.com");
  const auto jane = wait_reported("req-jane");
  EXPECT_EQ(jane["state"], "completed");
  EXPECT_EQ(jane["outcome"], "Completed");
  EXPECT_EQ(holders("jane@example.com"), 0);
  const auto john = wait_reported("req-john");
  EXPECT_EQ(john["state"], "completed");
  EXPECT_EQ(holders("john@example.com"), 1);
  EXPECT_EQ(wait_reported("req-nobody")["outcome"], "UserNotFound");
  std::vector<std::string> endpoints;
  for (const auto& c : calls_about("jane@example.com")) {
    endpoints.push_back(c["endpoint"]);
  }
  ASSERT_GE(endpoints.size(), 4u);
  EXPECT_EQ(endpoints[0], "export-one");
  // Jane's and John's events were due at once: they may share one batch (contract §5).
  EXPECT_THAT(endpoints[1], ::testing::AnyOf("track", "batch"));
  EXPECT_EQ(endpoints[2], "anonymize");
  const auto r = reports();
  EXPECT_EQ(r.size(), 3u);
  for (const auto& [ticket, n] : r) {
    EXPECT_EQ(n, 1) << ticket;
  }
  // The jobs are in PostgreSQL, the e-mails sealed; nothing in an SQLite file.
  const auto rows = pg_query(uri_, "SELECT count(*) FROM jobs");
  EXPECT_EQ(rows[0][0], "3");
  const auto raw = pg_query(uri_, "SELECT encode(subject, 'escape') FROM jobs");
  for (const auto& row : raw) {
    EXPECT_THAT(row[0].value_or(""), ::testing::Not(HasSubstr("@example.com")));
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "dsr.sqlite3"));
}

// A copy's export is kept in the database (sealed) until MineOS acknowledges the report that
// carries it: no file on the daemon's disk, so any daemon could deliver it.
TEST_F(OnPostgres, ACopysExportIsKeptSealedInTheDatabaseUntilDelivered) {
  fault({{"endpoint", "mineos"}, {"status", 503}, {"count", 100000}});  // MineOS down for now
  submit("copy", "req-john", "john@example.com");
  EXPECT_EQ(finished("req-john")["state"], "completed");
  const auto kept = pg_query(uri_, "SELECT chunks FROM exports");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0][0], "1");
  const auto raw = pg_query(uri_, "SELECT encode(data, 'escape') FROM export_chunks");
  ASSERT_EQ(raw.size(), 1u);
  EXPECT_THAT(raw[0][0].value_or(""), ::testing::Not(HasSubstr("john@example.com")));
  const auto exports = dir_.path() / "exports";
  if (std::filesystem::exists(exports)) {
    for (const auto& f : std::filesystem::directory_iterator(exports)) {
      EXPECT_NE(f.path().extension(), ".json") << f.path();  // no export on the daemon's disk
    }
  }
  ASSERT_EQ(request(sim_port_, "DELETE", "/_sim/faults").status, 200);  // MineOS is back
  wait_reported("req-john");
  const auto body = json::parse(sim("mineos").back()["body"].get<std::string>());
  EXPECT_EQ(body["status"], "Completed");
  EXPECT_EQ(body["data"]["ids"]["registered"], "john@example.com");
  EXPECT_EQ(pg_query(uri_, "SELECT count(*) FROM exports")[0][0], "0");  // delivered: gone
  EXPECT_EQ(pg_query(uri_, "SELECT count(*) FROM export_chunks")[0][0], "0");
  if (std::filesystem::exists(exports)) {
    for (const auto& f : std::filesystem::directory_iterator(exports)) {
      ADD_FAILURE() << "left on the daemon's disk: " << f.path();  // no scratch copy stays
    }
  }
}

// kill -9 right after a burst of 202s, then again while jobs run: every accepted job completes,
// each customer gets one audit event per request, no erased customer comes back, and a report
// goes out twice only across a kill.
TEST_F(OnPostgres, KillNineAfterABurstAndMidJobLosesNothing) {
  constexpr int jobs = 24;
  std::set<std::string> accepted;
  for (int i = 0; i < jobs / 2; ++i) {
    const auto id = fmt::format("req-b{}", i);
    if (post(i % 3 == 0 ? "copy" : "delete", id, fmt::format("s{}@example.com", i)) == 202) {
      accepted.insert(id);
    }
  }
  kill_and_restart();  // right after the burst's last 202
  for (int i = jobs / 2; i < jobs; ++i) {
    const auto id = fmt::format("req-b{}", i);
    if (post(i % 3 == 0 ? "copy" : "delete", id, fmt::format("s{}@example.com", i)) == 202) {
      accepted.insert(id);
    }
  }
  // Mid-job: once some jobs have finished and others are running.
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < until &&
         pg_query(uri_, "SELECT count(*) FROM jobs WHERE state = 'completed'")[0][0] == "0") {
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
  }
  kill_and_restart();
  ASSERT_EQ(accepted.size(), static_cast<std::size_t>(jobs));
  for (const auto& id : accepted) {
    const auto v = wait_reported(id);
    EXPECT_EQ(v["state"], "completed") << v.dump();
  }
  std::this_thread::sleep_for(400ms);  // Exponea's queued writes (300 ms) of the last jobs land
  const auto ev = events();
  for (const auto& id : accepted) {
    EXPECT_EQ(ev.count(id) ? ev.at(id) : 0, 1) << id;
  }
  for (int i = 0; i < jobs; ++i) {
    if (i % 3 != 0) {
      EXPECT_EQ(holders(fmt::format("s{}@example.com", i)), 0) << "re-created: s" << i;
    }
  }
  int repeated = 0;
  const auto r = reports();
  EXPECT_EQ(r.size(), accepted.size());
  for (const auto& [ticket, n] : r) {
    repeated += n - 1;
  }
  EXPECT_LE(repeated, 2) << "more repeated reports than kills";
}

// The database stopped and started under load: a request is answered 202 only once committed
// (every one of them completes), 503 with Retry-After while the database is away, and /readyz
// says why; all resumes when it is back.
TEST_F(OnPostgres, TheDatabaseStoppedAndStartedUnderLoadLosesNothingAccepted) {
  constexpr int jobs = 30;
  auto& cluster = pg_cluster::shared();
  std::set<std::string> accepted;
  bool saw_503 = false;
  for (int i = 0; i < jobs; ++i) {
    if (i == jobs / 3) {
      cluster.stop();
    }
    const auto id = fmt::format("req-d{}", i);
    const auto r = post_signed(daemon_->port(), "/v1/mineos/delete",
                               webhook_body("trace-" + id, id, fmt::format("s{}@example.com", i)),
                               webhook_secret);
    if (r.status == 202) {
      accepted.insert(id);
    } else {
      EXPECT_EQ(r.status, 503) << r.body;
      EXPECT_FALSE(r.header("retry-after").empty());
      saw_503 = true;
    }
    if (i == jobs / 3) {
      const auto ready = request(daemon_->port(), "GET", "/readyz");
      EXPECT_EQ(ready.status, 503);
      EXPECT_THAT(ready.body, HasSubstr("job store postgresql://"));
    }
    if (i == 2 * jobs / 3) {
      cluster.start();
      // The store thread finds it back within its probe interval (1 s).
      const auto until = std::chrono::steady_clock::now() + 20s;
      while (std::chrono::steady_clock::now() < until &&
             request(daemon_->port(), "GET", "/readyz").status != 200) {
        std::this_thread::sleep_for(50ms);  // polling for an event, not timing it
      }
    }
  }
  EXPECT_TRUE(saw_503);
  // What was refused is sent again, as MineOS does.
  for (int i = 0; i < jobs; ++i) {
    const auto id = fmt::format("req-d{}", i);
    if (!accepted.contains(id)) {
      ASSERT_EQ(post("delete", id, fmt::format("s{}@example.com", i)), 202) << id;
      accepted.insert(id);
    }
  }
  for (const auto& id : accepted) {
    EXPECT_EQ(wait_reported(id)["state"], "completed") << id;
  }
  const auto ev = events();
  for (const auto& id : accepted) {
    EXPECT_EQ(ev.count(id) ? ev.at(id) : 0, 1) << id;
  }
  // The outage is told once, and its end once, not once per worker and poll (8 workers polling
  // every second): at most once more per store connection whose first claim after the outage
  // finds it broken (a write is never sent twice).
  const auto log = daemon_->output();
  const auto count = [&log](std::string_view line) {
    std::size_t n = 0;
    for (auto at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_GE(count("cannot claim jobs"), 1u) << log;  // the workers met the outage
  EXPECT_LE(count("cannot claim jobs"), 4u) << log;
  EXPECT_EQ(count("cannot claim jobs"), count("claiming jobs again")) << log;
}

}  // namespace
}  // namespace dsr::test
