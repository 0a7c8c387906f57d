// Reliability end to end: the real daemon against the real exponea-sim, with rejected
// credentials fixed by a reload, and a graceful stop in the middle of work.

#include "support/e2e_config.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/sim_process.hpp"
#include "support/sim_state.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <set>
#include <thread>

namespace dsr::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::map<std::string, std::string> admin = {
    {"Authorization", "Bearer admin-token-of-the-e2e-tests-SECRET"}};

class Reliability : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
    auto seed = json::parse(in);
    seed["write_delay_ms"] = 200;
    for (int i = 0; i < 20; ++i) {  // customers enough for a batch of jobs
      seed["customers"].push_back({{"ids", {{"registered", fmt::format("c{}@example.com", i)}}},
                                   {"properties", {{"first_name", "C"}}},
                                   {"events", json::array()}});
    }
    sim_ = start_sim(dir_.write("seed.json", seed.dump()), dir_.path() / "sim.log", sim_port_);
    ASSERT_NE(sim_port_, 0) << sim_->output();
  }
  void TearDown() override {
    if (daemon_) {
      daemon_->signal(SIGTERM);
      daemon_->wait_exit();
    }
    sim_->signal(SIGTERM);
  }

  // Starts (or restarts) the daemon on the same store; `secret` goes into the secret file.
  void start_daemon(const std::string& secret = "demo-api-secret") {
    dir_.write("api-secret", secret + "\n");
    write_config();
    ++runs_;
    daemon_ = std::make_unique<process>(
        DSR_BINARY,
        std::vector<std::string>{"serve", "--config", (dir_.path() / "dsr.toml").string()},
        std::map<std::string, std::string>{}, dir_.path() / fmt::format("daemon-{}.log", runs_));
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->output();
  }
  // `store_extra`: lines added to [store].
  void write_config(const std::string& store_extra = "") {
    dir_.write("dsr.toml",
               fmt::format(R"(
[server]
listen = "127.0.0.1:0"
[store]
path = "dsr.sqlite3"
{2}
[exponea]
base_url = "http://127.0.0.1:{0}"
timeout_seconds = 5
verify_timeout_seconds = 30
[mineos]
api_base_url = "http://127.0.0.1:{0}"
[retry]
initial_backoff_ms = 20
max_attempts = 3
pause_probe_seconds = 1
[jobs]
shutdown_grace_seconds = 5
{1}
)",
                           sim_port_,
                           test_credentials(fmt::format(R"(exponea_api_secret_file = "{}")",
                                                        (dir_.path() / "api-secret").string())),
                           store_extra));
  }

  void submit(const std::string& op, const std::string& request_id, const std::string& email) {
    const auto r = post_signed(daemon_->port(), "/v1/mineos/" + op,
                               webhook_body("trace-" + request_id, request_id, email),
                               "webhook-secret-e2e-SECRET");
    ASSERT_EQ(r.status, 202) << r.body;
  }
  json view(const std::string& request_id) {
    return json::parse(
        request(daemon_->port(), "GET", "/v1/requests/" + request_id, "", admin).body);
  }
  // Polls (bounded) until `done(view)` holds; returns the last view.
  template <class Pred>
  json wait_for(const std::string& request_id, Pred done, std::chrono::seconds limit = 30s) {
    json v;
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      v = view(request_id);
      if (done(v)) {
        return v;
      }
      std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
    }
    ADD_FAILURE() << request_id << " never reached the expected state: " << v.dump();
    return v;
  }
  json sim(const std::string& what) {
    return json::parse(request(sim_port_, "GET", "/_sim/" + what).body);
  }
  http_reply readyz() { return request(daemon_->port(), "GET", "/readyz", "", {}); }

  temp_dir dir_;
  std::unique_ptr<process> sim_;
  std::unique_ptr<process> daemon_;
  std::uint16_t sim_port_ = 0;
  int runs_ = 0;
};

TEST_F(Reliability, WrongSecretPausesWithoutUsingAttemptsAndAReloadResumes) {
  start_daemon("not-the-secret");
  for (int i = 0; i < 5; ++i) {
    submit("delete", fmt::format("req-p{}", i), fmt::format("c{}@example.com", i));
  }
  // The first call meets "invalid secret": dispatch pauses, /readyz says which value.
  const auto until = std::chrono::steady_clock::now() + 20s;
  auto ready = readyz();
  while (ready.status != 503 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
    ready = readyz();
  }
  ASSERT_EQ(ready.status, 503) << ready.body;
  EXPECT_THAT(ready.body, HasSubstr("exponea_api_secret"));
  EXPECT_THAT(ready.body, Not(HasSubstr("not-the-secret")));
  // A preview meanwhile says so rather than waiting (docs/contract.md §4).
  const auto preview = post_signed(daemon_->port(), "/v1/mineos/preview",
                                   webhook_body("trace-preview", "req-preview", "c1@example.com"),
                                   "webhook-secret-e2e-SECRET");
  EXPECT_EQ(preview.status, 503);
  EXPECT_FALSE(preview.header("retry-after").empty());
  EXPECT_THAT(preview.body, HasSubstr("exponea_api_secret"));
  // Probes keep testing it (pause_probe_seconds = 1) while every job waits, no attempt used.
  std::this_thread::sleep_for(2500ms);  // lets probes happen; nothing is timed
  for (int i = 0; i < 5; ++i) {
    const auto v = view(fmt::format("req-p{}", i));
    EXPECT_EQ(v["state"], "queued") << v.dump();
    EXPECT_EQ(v["attempts"], 0) << v.dump();
  }
  const auto calls = sim("calls");
  EXPECT_GE(calls.size(), 2u);  // the first rejection and at least one probe
  for (const auto& c : calls) {
    EXPECT_EQ(c["status"], 403) << c.dump();  // nothing else was tried
  }

  // The operator fixes the file and reloads: every job completes, none failed.
  dir_.write("api-secret", "demo-api-secret\n");
  daemon_->signal(SIGHUP);
  for (int i = 0; i < 5; ++i) {
    const auto v = wait_for(fmt::format("req-p{}", i),
                            [](const json& j) { return j.value("reported", false); });
    EXPECT_EQ(v["state"], "completed") << v.dump();
    EXPECT_EQ(v["attempts"], 1) << v.dump();
  }
  EXPECT_EQ(readyz().status, 200);
  EXPECT_THAT(daemon_->output(), HasSubstr("dispatch paused"));
  EXPECT_THAT(daemon_->output(), Not(HasSubstr("not-the-secret")));
}

TEST_F(Reliability, FailedReloadKeepsTheRunningValues) {
  start_daemon();
  dir_.write("dsr.toml", "[server]\nlisten = 7\n");
  daemon_->signal(SIGHUP);
  submit("delete", "req-after", "c1@example.com");
  const auto v = wait_for("req-after", [](const json& j) { return j.value("reported", false); });
  EXPECT_EQ(v["state"], "completed");
  EXPECT_THAT(daemon_->output(), HasSubstr("reload failed, keeping the running configuration"));
}

TEST_F(Reliability, FullStoreAnswers503NeverAcceptsAndRecoversWithoutARestart) {
  // The store may not grow beyond 1 MiB: a full disk, without root tricks.
  dir_.write("api-secret", "demo-api-secret\n");
  write_config("max_size_mb = 1");
  runs_ = 1;
  daemon_ = std::make_unique<process>(
      DSR_BINARY,
      std::vector<std::string>{"serve", "--config", (dir_.path() / "dsr.toml").string()},
      std::map<std::string, std::string>{}, dir_.path() / "daemon-1.log");
  ASSERT_TRUE(daemon_->wait_listening()) << daemon_->output();
  const std::string pad(200, 'p');  // long ids fill the store faster
  std::set<std::string> accepted;
  http_reply refused;
  std::string refused_body;
  for (int i = 0; i < 5000 && refused.status == 0; ++i) {
    const auto id = fmt::format("req-full-{}-{}", i, pad.substr(0, 100));  // 128 at most
    const auto body = webhook_body(fmt::format("trace-{}-{}", i, pad), id,
                                   fmt::format("nobody{}@example.com", i));
    const auto r =
        post_signed(daemon_->port(), "/v1/mineos/delete", body, "webhook-secret-e2e-SECRET");
    if (r.status == 202) {
      accepted.insert(id);
    } else {
      refused = r;
      refused_body = body;
    }
  }
  ASSERT_EQ(refused.status, 503) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  EXPECT_GT(accepted.size(), 10u);
  // While full: never a 202 for a request that does not fit (MineOS retrying the refused one:
  // whether another key would fit depends on which b-tree page it lands in), and the process
  // stays up.
  for (int i = 0; i < 5; ++i) {
    const auto r = post_signed(daemon_->port(), "/v1/mineos/delete", refused_body,
                               "webhook-secret-e2e-SECRET");
    EXPECT_EQ(r.status, 503);
    EXPECT_FALSE(r.header("retry-after").empty());
  }
  // Space comes back (the operator raises the cap and reloads): accepting resumes, no restart.
  write_config("max_size_mb = 64");
  daemon_->signal(SIGHUP);
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (status != 202 && std::chrono::steady_clock::now() < until) {
    status = post_signed(daemon_->port(), "/v1/mineos/delete",
                         webhook_body("trace-back-" + pad, "req-back-" + pad.substr(0, 100),
                                      "x@example.com"),
                         "webhook-secret-e2e-SECRET")
                 .status;
    std::this_thread::sleep_for(50ms);  // polling for an event, not timing it
  }
  EXPECT_EQ(status, 202);
  EXPECT_EQ(readyz().status, 200);
  // Every request that got a 202 is there.
  for (const auto& id : accepted) {
    ASSERT_EQ(request(daemon_->port(), "GET", "/v1/requests/" + id, "", admin).status, 200) << id;
  }
  EXPECT_EQ(daemon_->wait_exit(0ms), std::nullopt);  // still running
}

TEST_F(Reliability, SigtermDuringWorkExitsWithinTheGraceAndLosesOrRepeatsNothing) {
  // Slow calls keep jobs mid-flow when the stop comes.
  ASSERT_EQ(request(sim_port_, "POST", "/_sim/settings", R"({"latency_ms":150})").status, 200);
  start_daemon();
  constexpr int jobs = 12;
  for (int i = 0; i < jobs; ++i) {
    submit(i % 3 == 0 ? "copy" : "delete", fmt::format("req-s{}", i),
           fmt::format("c{}@example.com", i));
  }
  std::this_thread::sleep_for(400ms);  // some jobs are between calls now; nothing is timed
  const auto stop_at = std::chrono::steady_clock::now();
  daemon_->signal(SIGTERM);
  const auto code = daemon_->wait_exit(5s + 5s);  // shutdown_grace_seconds + 5 s
  ASSERT_TRUE(code) << "did not exit within the grace period + 5 s";
  EXPECT_EQ(*code, 0) << daemon_->output();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_at, 10s);
  // Running jobs stopped between two steps and went back to the queue.
  EXPECT_THAT(daemon_->output(), HasSubstr("stopped by a shutdown"));

  start_daemon();
  for (int i = 0; i < jobs; ++i) {
    const auto v = wait_for(fmt::format("req-s{}", i),
                            [](const json& j) { return j.value("reported", false); });
    EXPECT_EQ(v["state"], "completed") << v.dump();
  }
  // Each request reported once, each customer given one audit event per request.
  std::map<std::string, int> reports;
  for (const auto& r : sim("mineos")) {
    if (r["status"] == 200) {
      ++reports[r["ticket_id"].get<std::string>()];
    }
  }
  EXPECT_EQ(reports.size(), static_cast<std::size_t>(jobs));
  for (const auto& [id, n] : reports) {
    EXPECT_EQ(n, 1) << id;
  }
  // Each job's event is in Exponea once, whether it went alone or inside a batch.
  std::this_thread::sleep_for(400ms);  // Exponea's queued writes land
  const auto events = audit_events(sim("state"));
  for (const auto& [id, n] : reports) {
    const auto e = events.find(id);
    EXPECT_EQ(e == events.end() ? 0 : e->second, 1) << id;
  }
}

}  // namespace
}  // namespace dsr::test
