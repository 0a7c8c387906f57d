// Several daemons on one PostgreSQL database (docs/contract.md §8), end to end: the real
// dsr-connector binaries against the real exponea-sim (which plays MineOS too) and a throwaway
// cluster of this binary that also listens on loopback TCP, so that one daemon can reach it
// through a userland proxy the test cuts. Lease expiry is driven by a short lease (5 s, over the
// 2 s Exponea timeout), never by sleeping for a fixed time: the tests poll for what they wait for.
//
// `make test` runs the short forms; `make soak` the long ones (DSR_SOAK_CLUSTER_JOBS=500).

#include "dsr/jobs/store.hpp"
#include "dsr/mineos/signature.hpp"
#include "support/e2e_config.hpp"
#include "support/http_client.hpp"
#include "support/pg_cluster.hpp"
#include "support/process.hpp"
#include "support/sim_process.hpp"
#include "support/sim_state.hpp"
#include "support/tcp_proxy.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace dsr::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::map<std::string, std::string> admin = {
    {"Authorization", "Bearer admin-token-of-the-e2e-tests-SECRET"}};
constexpr std::string_view secret = "webhook-secret-e2e-SECRET";

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// This binary's cluster, listening on loopback TCP as well as its socket.
pg_cluster& tcp_cluster() {
  static pg_cluster c(pg_cluster::options{.fsync = false, .tcp = true});
  return c;
}

// Polls `done` (an event, not a duration) until it holds or `limit` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 60s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(50ms);  // polling for an event, not timing it
  }
  return done();
}

class Cluster : public ::testing::Test {
 protected:
  // The simulator with `customers` customers c<i>@example.com, R calls a second at most.
  void start_sim(int customers, unsigned rate_limit, int write_delay_ms = 300) {
    std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
    auto seed = json::parse(in);
    seed["write_delay_ms"] = write_delay_ms;
    seed["rate_limit_per_second"] = rate_limit;
    for (int i = 0; i < customers; ++i) {
      const auto email = fmt::format("c{}@example.com", i);
      seed["customers"].push_back({{"ids", {{"registered", email}}},
                                   {"properties", {{"email", email}}},
                                   {"events", json::array()}});
    }
    sim_ = test::start_sim(dir_.write("seed.json", seed.dump()), dir_.path() / "sim.log", sim_port_,
                           20s);
    ASSERT_NE(sim_port_, 0) << sim_->output();
  }

  // A database of its own; `url` is how daemons reach it (the socket, or a proxy's port).
  void make_database() {
    static int n = 0;
    db_ = "cluster_" + std::to_string(++n);
    uri_ = tcp_cluster().create_database(db_);
  }

  // Daemon `name`'s configuration in a folder of its own (its scratch folder is there).
  std::filesystem::path configure(const std::string& name, const std::string& url,
                                  double per_second, int reports_per_minute = 600) {
    std::filesystem::create_directories(dir_.path() / name);
    return dir_.write(name + "/dsr.toml",
                      fmt::format(R"(
[server]
listen = "127.0.0.1:0"
[store]
engine = "postgresql"
url = "{}"
path = "{}/dsr.sqlite3"
[exponea]
base_url = "http://127.0.0.1:{}"
timeout_seconds = 2
verify_timeout_seconds = 30
max_requests_per_second = {}
[mineos]
api_base_url = "http://127.0.0.1:{}"
max_requests_per_minute = {}
[retry]
initial_backoff_ms = 20
max_attempts = 6
[jobs]
lease_seconds = 5
concurrency = 8
worker_name = "{}"
{}
)",
                                  url, (dir_.path() / name).string(), sim_port_, per_second,
                                  sim_port_, reports_per_minute, name, test_credentials()));
  }

  std::unique_ptr<process> start(const std::string& name, const std::filesystem::path& cfg) {
    auto p = std::make_unique<process>(DSR_BINARY,
                                       std::vector<std::string>{"serve", "--config", cfg.string()},
                                       std::map<std::string, std::string>{},
                                       dir_.path() / fmt::format("{}-{}.log", name, ++starts_));
    EXPECT_TRUE(p->wait_listening()) << p->output();
    return p;
  }

  void stop(std::unique_ptr<process>& p) {
    if (!p) {
      return;
    }
    p->signal(SIGTERM);
    EXPECT_EQ(p->wait_exit(), 0) << p->output();
    const auto out = p->output();
    for (const char* s : {"demo-api-secret", "webhook-secret-e2e-SECRET",
                          "admin-token-of-the-e2e-tests-SECRET", "mineos-key-SECRET"}) {
      EXPECT_THAT(out, ::testing::Not(HasSubstr(s)));
    }
    EXPECT_THAT(out, ::testing::Not(HasSubstr("@example.com")));
    p.reset();
  }

  void TearDown() override {
    if (sim_) {
      sim_->signal(SIGTERM);
    }
  }

  static int post(std::uint16_t port, const std::string& op, const std::string& id,
                  const std::string& email) {
    return post_signed(port, "/v1/mineos/" + op, webhook_body("trace-" + id, id, email), secret)
        .status;
  }
  static json view(std::uint16_t port, const std::string& id) {
    return json::parse(request(port, "GET", "/v1/requests/" + id, "", admin).body);
  }
  static json jobs(std::uint16_t port, const std::string& query) {
    return json::parse(request(port, "GET", "/v1/requests?" + query, "", admin).body);
  }
  json sim(const std::string& what) {
    return json::parse(request(sim_port_, "GET", "/_sim/" + what).body);
  }
  void fault(const json& f) {
    ASSERT_EQ(request(sim_port_, "POST", "/_sim/faults", f.dump()).status, 200);
  }
  // privacy_request events per request id, and customers per e-mail, as the simulator holds them.
  std::map<std::string, int> events() { return audit_events(sim("state")); }
  std::map<std::string, int> holders() {
    std::map<std::string, int> out;
    for (const auto& c : sim("state")) {
      ++out[c["ids"].value("registered", "")];
    }
    return out;
  }
  // Reports MineOS acknowledged, per ticket.
  std::map<std::string, int> reports() { return acknowledged_reports(sim("mineos")); }
  // The largest number of Exponea calls the simulator saw in any 1-second window, and its 429s.
  std::pair<std::size_t, std::size_t> busiest_second() {
    std::vector<std::int64_t> at;
    std::size_t throttled = 0;
    for (const auto& c : sim("calls")) {
      at.push_back(c["at_ms"].get<std::int64_t>());
      throttled += c["status"] == 429 ? 1 : 0;
    }
    std::sort(at.begin(), at.end());
    std::size_t most = 0;
    for (std::size_t i = 0, j = 0; j < at.size(); ++j) {
      while (at[j] - at[i] >= 1000) {
        ++i;
      }
      most = std::max(most, j - i + 1);
    }
    return {most, throttled};
  }

  temp_dir dir_;
  std::unique_ptr<process> sim_;
  std::uint16_t sim_port_ = 0;
  std::string db_;
  std::string uri_;
  int starts_ = 0;
};

// Two daemons, one database, jobs sent to both listeners; one daemon killed with -9 three times
// and restarted. Every job finishes once: no event twice, no customer re-created, one report per
// request (a second only across a crash); a killed daemon's running jobs are taken over by the
// other; no second of the simulator's log holds more than R calls from both together.
TEST_F(Cluster, TwoDaemonsLoseNothingWhenOneIsKilledThreeTimes) {
  const int n = env_int("DSR_SOAK_CLUSTER_JOBS", 120);
  constexpr unsigned rate = 40;
  start_sim(n, rate);
  make_database();
  const auto cfg_a = configure("dsr-a", uri_, rate);
  const auto cfg_b = configure("dsr-b", uri_, rate);
  auto a = start("dsr-a", cfg_a);
  auto b = start("dsr-b", cfg_b);
  // Three waves, one before each kill, sent to both listeners; each kill waits until dsr-b runs a
  // job. The first kill keeps dsr-b down until dsr-a has taken its running jobs over and finished
  // them.
  std::vector<std::string> ids;
  std::set<std::string> taken_over;
  for (int kill = 0; kill < 3; ++kill) {
    for (int i = kill * n / 3; i < (kill + 1) * n / 3; ++i) {
      const auto id = fmt::format("req-{}", i);
      const auto op = i % 4 == 3 ? "copy" : "delete";
      ASSERT_EQ(post(i % 2 == 0 ? a->port() : b->port(), op, id, fmt::format("c{}@example.com", i)),
                202);
      ids.push_back(id);
    }
    std::vector<std::string> running_on_b;
    ASSERT_TRUE(eventually([&] {
      running_on_b.clear();
      const auto running = jobs(a->port(), "state=running&limit=100");
      for (const auto& j : running["requests"]) {
        if (j.value("worker", "") == "dsr-b") {
          running_on_b.push_back(j["requestId"]);
        }
      }
      return !running_on_b.empty();
    })) << "dsr-b never ran a job before kill "
        << kill + 1;
    b->signal(SIGKILL);
    b->wait_exit();
    if (kill == 0) {
      for (const auto& id : running_on_b) {
        ASSERT_TRUE(eventually([&] {
          const auto state = view(a->port(), id).value("state", "");
          return state != "queued" && state != "running" && state != "retrying";
        })) << id;
        EXPECT_EQ(view(a->port(), id).value("worker", ""), "dsr-a") << id;
        taken_over.insert(id);
      }
    }
    b = start("dsr-b", cfg_b);
  }
  EXPECT_FALSE(taken_over.empty());
  for (const auto& id : ids) {
    ASSERT_TRUE(eventually([&] { return view(b->port(), id).value("reported", false); }, 120s))
        << view(b->port(), id).dump();
  }
  const auto ev = events();
  const auto held = holders();
  const auto acked = reports();
  int repeated_reports = 0;
  for (int i = 0; i < static_cast<int>(ids.size()); ++i) {
    const auto v = view(a->port(), ids[i]);
    EXPECT_EQ(v["state"], "completed") << v.dump();
    EXPECT_EQ(ev.count(ids[i]) ? ev.at(ids[i]) : 0, 1) << ids[i];
    const auto email = fmt::format("c{}@example.com", i);
    EXPECT_EQ(held.count(email) ? held.at(email) : 0, i % 4 == 3 ? 1 : 0) << email;
    const int sent = acked.count(ids[i]) ? acked.at(ids[i]) : 0;
    EXPECT_GE(sent, 1) << ids[i];
    EXPECT_LE(sent, 2) << ids[i];
    repeated_reports += sent > 1 ? 1 : 0;
  }
  // A second report only for a report in flight when dsr-b died: at most its concurrency a kill.
  EXPECT_LE(repeated_reports, 3 * 16);
  const auto [most, throttled] = busiest_second();
  EXPECT_LE(most, rate);
  EXPECT_EQ(throttled, 0u);
  const auto metrics = request(a->port(), "GET", "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("dsr_workers 2"));
  EXPECT_THAT(metrics, HasSubstr(fmt::format("dsr_build_info{{version=\"{}\",schema=\"{}\"}} 1",
                                             DSR_VERSION, postgres_schema_version())));
  stop(a);
  stop(b);
}

// The same request delivered to both daemons at once makes one job, whichever commits first.
TEST_F(Cluster, TheSameRequestToBothDaemonsAtOnceIsOneJob) {
  start_sim(20, 0);
  make_database();
  auto a = start("dsr-a", configure("dsr-a", uri_, 50));
  auto b = start("dsr-b", configure("dsr-b", uri_, 50));
  for (int i = 0; i < 20; ++i) {
    const auto id = fmt::format("twice-{}", i);
    const auto email = fmt::format("c{}@example.com", i);
    int sa = 0;
    int sb = 0;
    std::thread ta([&] { sa = post(a->port(), "delete", id, email); });
    std::thread tb([&] { sb = post(b->port(), "delete", id, email); });
    ta.join();
    tb.join();
    EXPECT_EQ(sa, 202);
    EXPECT_EQ(sb, 202);
  }
  for (int i = 0; i < 20; ++i) {
    const auto id = fmt::format("twice-{}", i);
    ASSERT_TRUE(eventually([&] { return view(a->port(), id).value("reported", false); })) << id;
  }
  const auto all = jobs(b->port(), "limit=100")["requests"];
  EXPECT_EQ(all.size(), 20u);
  const auto ev = events();
  const auto acked = reports();
  for (int i = 0; i < 20; ++i) {
    const auto id = fmt::format("twice-{}", i);
    EXPECT_EQ(ev.count(id) ? ev.at(id) : 0, 1) << id;
    EXPECT_EQ(acked.count(id) ? acked.at(id) : 0, 1) << id;
  }
  stop(a);
  stop(b);
}

// A 429 with Retry-After: N met by one daemon holds both: no call reaches Exponea for N seconds
// but the ones already under way when it came; preview answers 503 with Retry-After meanwhile.
TEST_F(Cluster, ARetryAfterMetByOneDaemonHoldsBoth) {
  start_sim(60, 0);
  make_database();
  auto a = start("dsr-a", configure("dsr-a", uri_, 20));
  auto b = start("dsr-b", configure("dsr-b", uri_, 20));
  fault({{"endpoint", "export-one"}, {"status", 429}, {"retry_after", "4"}, {"count", 1}});
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(post(i % 2 == 0 ? a->port() : b->port(), "delete", fmt::format("r-{}", i),
                   fmt::format("c{}@example.com", i)),
              202);
  }
  std::int64_t throttled_at = 0;
  ASSERT_TRUE(eventually([&] {
    for (const auto& c : sim("calls")) {
      if (c["status"] == 429) {
        throttled_at = c["at_ms"].get<std::int64_t>();
        return true;
      }
    }
    return false;
  }));
  // Both daemons learn of it: the one that met it at once, the other from the store.
  for (auto* d : {a.get(), b.get()}) {
    ASSERT_TRUE(eventually(
        [&] {
          const auto r =
              post_signed(d->port(), "/v1/mineos/preview",
                          R"({"traceId":"t-prev","userInfo":{"email":"c59@example.com"}})", secret);
          return r.status == 503 && !r.header("retry-after").empty();
        },
        10s));
  }
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(eventually([&] {
      return view(a->port(), fmt::format("r-{}", i))["state"] == "completed";
    })) << i;
  }
  // Calls under way when the 429 came may still arrive just after it.
  std::size_t during = 0;
  for (const auto& c : sim("calls")) {
    const auto t = c["at_ms"].get<std::int64_t>();
    during += t > throttled_at + 300 && t < throttled_at + 4000 ? 1 : 0;
  }
  EXPECT_EQ(during, 0u);
  stop(a);
  stop(b);
}

// MineOS's limit is the whole cluster's (contract §6): two daemons at 60 status calls a minute
// send one report per 1.08 s between them, not one each; MineOS's 429 met by one holds both for
// its Retry-After (6 s here). Every request is still reported once.
TEST_F(Cluster, TwoDaemonsShareMineOsLimitAndItsRetryAfter) {
  start_sim(0, 0);  // no customer: each job ends user_not_found after its lookup
  make_database();
  auto a = start("dsr-a", configure("dsr-a", uri_, 50, 60));
  auto b = start("dsr-b", configure("dsr-b", uri_, 50, 60));
  fault({{"endpoint", "mineos"}, {"status", 429}, {"retry_after", "6"}, {"count", 1}});
  constexpr int requests = 8;
  for (int i = 0; i < requests; ++i) {
    ASSERT_EQ(post(i % 2 == 0 ? a->port() : b->port(), "delete", fmt::format("r-{}", i),
                   fmt::format("gone{}@example.com", i)),
              202);
  }
  ASSERT_TRUE(eventually([&] { return reports().size() == requests; }, 90s))
      << sim("mineos").dump();
  for (const auto& [ticket, n] : reports()) {
    EXPECT_EQ(n, 1) << ticket;
  }
  std::vector<std::int64_t> at;
  std::int64_t throttled_at = -1;
  for (const auto& r : sim("mineos")) {
    at.push_back(r["at_ms"].get<std::int64_t>());
    if (r["status"] == 429) {
      throttled_at = at.back();
    }
  }
  ASSERT_GE(throttled_at, 0);
  std::sort(at.begin(), at.end());
  // One call per 1.08 s across both: no 2-second window holds three (one each per 1.08 s would
  // put four there).
  for (std::size_t i = 2; i < at.size(); ++i) {
    EXPECT_GE(at[i] - at[i - 2], 2000) << i;
  }
  // Nothing from either daemon during the Retry-After, but for a turn the other daemon was given
  // before the hold reached the store (a commit away: on a loaded machine, the next turn too);
  // without the shared hold it would send again every 1.08 s.
  for (const auto t : at) {
    EXPECT_FALSE(t > throttled_at + 2500 && t < throttled_at + 6000) << t - throttled_at;
  }
  stop(a);
  stop(b);
}

// A newer daemon migrated the schema while this one runs: it stops claiming jobs and says why on
// /readyz, naming both versions; it still takes webhooks; nothing is lost once it is upgraded (the
// version set back here stands for that).
TEST_F(Cluster, ADaemonOlderThanTheSchemaStopsClaimingAndSaysWhy) {
  start_sim(5, 0);
  make_database();
  auto a = start("dsr-a", configure("dsr-a", uri_, 50));
  const auto newer = postgres_schema_version() + 1;
  pg_query(uri_, fmt::format("UPDATE dsr_schema SET version = {}", newer));
  http_reply ready;
  ASSERT_TRUE(eventually(
      [&] {
        ready = request(a->port(), "GET", "/readyz");
        return ready.status == 503;
      },
      20s));
  EXPECT_THAT(ready.body, HasSubstr(fmt::format("schema version {}", newer)));
  EXPECT_THAT(ready.body, HasSubstr(fmt::format("this daemon's ({})", postgres_schema_version())));
  ASSERT_EQ(post(a->port(), "delete", "held", "c0@example.com"), 202);
  ASSERT_TRUE(a->wait_output("not claiming jobs: the job store has schema version"));
  EXPECT_EQ(view(a->port(), "held")["state"], "queued");
  pg_query(uri_, fmt::format("UPDATE dsr_schema SET version = {}", postgres_schema_version()));
  ASSERT_TRUE(eventually([&] { return view(a->port(), "held").value("reported", false); }));
  EXPECT_EQ(view(a->port(), "held")["state"], "completed");
  EXPECT_EQ(request(a->port(), "GET", "/readyz").status, 200);
  stop(a);
}

// A daemon cut from the database mid-job (its connection through a proxy the test cuts) writes
// nothing more; the other takes the job over once the lease runs out by the database's clock and
// completes it once; when the cut one comes back it writes nothing for that job.
TEST_F(Cluster, ADaemonCutFromTheDatabaseIsTakenOverAndWritesNothingAfter) {
  start_sim(5, 0);
  make_database();
  tcp_proxy proxy("127.0.0.1", tcp_cluster().port());
  auto a = start("dsr-a", configure("dsr-a", tcp_cluster().tcp_uri(db_, proxy.port()), 50));
  // dsr-a's first look-up hangs for a while: it is mid-job when the cut comes.
  fault({{"endpoint", "export-one"}, {"delay_ms", 3000}, {"count", 1}});
  ASSERT_EQ(post(a->port(), "delete", "cut", "c1@example.com"), 202);
  ASSERT_TRUE(eventually(
      [&] {
        const auto v = view(a->port(), "cut");
        return v["state"] == "running" && v.value("worker", "") == "dsr-a";
      },
      20s));
  auto b = start("dsr-b", configure("dsr-b", uri_, 50));
  proxy.cut();
  ASSERT_TRUE(eventually([&] { return view(b->port(), "cut").value("reported", false); }, 60s));
  const auto done = view(b->port(), "cut");
  EXPECT_EQ(done["state"], "completed");
  EXPECT_EQ(done.value("worker", ""), "dsr-b");
  proxy.restore();
  // dsr-a reaches the store again: its next write for the job is refused (the lease is dsr-b's
  // run's), and it claims jobs again.
  ASSERT_TRUE(a->wait_output("[R cut] stopped: job", 1, 60s)) << a->output();
  EXPECT_THAT(a->output(), HasSubstr("is not leased by dsr-a:"));
  ASSERT_TRUE(eventually([&] { return request(a->port(), "GET", "/readyz").status == 200; }));
  const auto after = view(b->port(), "cut");
  EXPECT_EQ(after["history"], done["history"]);
  EXPECT_EQ(after["updatedAt"], done["updatedAt"]);
  EXPECT_EQ(events()["cut"], 1);
  EXPECT_EQ(holders()["c1@example.com"], 0);
  EXPECT_EQ(reports()["cut"], 1);
  stop(a);
  stop(b);
}

}  // namespace
}  // namespace dsr::test
