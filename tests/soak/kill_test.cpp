// The kill test (reliability issue): N delete and copy jobs for N seeded customers; the daemon is
// kill -9'ed at random moments K times, during intake and during execution, and restarted each
// time; then every job must be terminal, none failed, every report acknowledged, no customer
// given two audit events for one request, no erased customer re-created. Reports sent twice are
// counted: a repeat is allowed only where a kill fell between MineOS's answer and its record (at
// most one per kill: reports go out one at a time).
//
// `make test` runs a short form (DSR_SOAK_JOBS=40, DSR_SOAK_KILLS=2); `make soak` the full one
// (200 jobs, 5 kills). Loopback only; every process is stopped at the end.

#include "support/e2e_config.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/sim_process.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <thread>

namespace dsr::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

const std::map<std::string, std::string> admin = {
    {"Authorization", "Bearer admin-token-of-the-e2e-tests-SECRET"}};

TEST(KillTest, NothingLostFailedOrDoneTwiceAcrossKillNine) {
  const int jobs = env_int("DSR_SOAK_JOBS", 40);
  const int kills = env_int("DSR_SOAK_KILLS", 2);
  std::mt19937 random(static_cast<unsigned>(env_int("DSR_SOAK_SEED", 1)));
  temp_dir dir;

  std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
  auto seed = json::parse(in);
  seed["customers"] = json::array();
  seed["write_delay_ms"] = 100;  // Exponea queues writes
  seed["latency_ms"] = 5;
  for (int i = 0; i < jobs; ++i) {
    seed["customers"].push_back({{"ids", {{"registered", fmt::format("s{}@example.com", i)}}},
                                 {"properties", {{"email", fmt::format("s{}@example.com", i)}}},
                                 {"events", json::array()}});
  }
  std::uint16_t sim_port = 0;
  const auto sim = start_sim(dir.write("seed.json", seed.dump()), dir.path() / "sim.log", sim_port);
  ASSERT_NE(sim_port, 0) << sim->output();
  const auto cfg = dir.write("dsr.toml", fmt::format(R"(
[server]
listen = "127.0.0.1:0"
[store]
path = "dsr.sqlite3"
[exponea]
base_url = "http://127.0.0.1:{0}"
timeout_seconds = 5
verify_timeout_seconds = 60
[mineos]
api_base_url = "http://127.0.0.1:{0}"
[retry]
initial_backoff_ms = 50
max_backoff_seconds = 2
[jobs]
concurrency = 8
{1}
)",
                                                     sim_port, test_credentials()));
  int run = 0;
  std::unique_ptr<process> daemon;
  const auto start = [&] {
    daemon = std::make_unique<process>(
        DSR_BINARY, std::vector<std::string>{"serve", "--config", cfg.string()},
        std::map<std::string, std::string>{}, dir.path() / fmt::format("daemon-{}.log", ++run));
    ASSERT_TRUE(daemon->wait_listening()) << daemon->output();
  };
  start();

  // Intake in K + 1 slices with a kill after each of the first K, at a random moment. A request
  // whose answer was lost is sent again after the restart, as MineOS would.
  std::set<std::string> accepted;
  const auto send = [&](int i) {
    const auto id = fmt::format("req-k{}", i);
    const auto body = webhook_body("trace-" + id, id, fmt::format("s{}@example.com", i));
    const auto r = post_signed(daemon->port(), i % 3 == 0 ? "/v1/mineos/copy" : "/v1/mineos/delete",
                               body, "webhook-secret-e2e-SECRET");
    if (r.status == 202) {
      accepted.insert(id);
    }
  };
  int next = 0;
  for (int k = 0; k <= kills; ++k) {
    const int until = jobs * (k + 1) / (kills + 1);
    std::uniform_int_distribution<int> cut(next, std::max(next, until - 1));
    const int kill_during_intake_at = cut(random);
    for (; next < until; ++next) {
      send(next);
      if (k < kills && next == kill_during_intake_at && k % 2 == 1) {
        break;  // every other kill falls in the middle of intake
      }
    }
    if (k == kills) {
      break;
    }
    std::uniform_int_distribution<int> pause_ms(50, 600);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));  // a random moment
    daemon->signal(SIGKILL);
    daemon->wait_exit();
    start();
  }
  for (int i = 0; i < jobs; ++i) {  // whatever the kills cut off
    if (!accepted.contains(fmt::format("req-k{}", i))) {
      send(i);
    }
  }
  ASSERT_EQ(accepted.size(), static_cast<std::size_t>(jobs));

  // Drain: every job terminal and reported (bounded).
  const auto deadline = std::chrono::steady_clock::now() + 180s;
  std::map<std::string, json> views;
  for (const auto& id : accepted) {
    for (;;) {
      auto v = json::parse(request(daemon->port(), "GET", "/v1/requests/" + id, "", admin).body);
      if (v.value("reported", false) || std::chrono::steady_clock::now() > deadline) {
        views[id] = v;
        break;
      }
      std::this_thread::sleep_for(50ms);  // polling for an event, not timing it
    }
  }
  int failed = 0;
  for (const auto& [id, v] : views) {
    EXPECT_EQ(v.value("reported", false), true) << v.dump();
    const auto state = v.value("state", "");
    EXPECT_TRUE(state == "completed") << v.dump();
    failed += state == "failed" ? 1 : 0;
  }

  const auto state = json::parse(request(sim_port, "GET", "/_sim/state").body);
  std::map<std::string, int> events;
  for (const auto& c : state) {
    for (const auto& e : c["events"]) {
      if (e.value("type", "") == "privacy_request") {
        ++events[e["properties"].value("request_id", "")];
      }
    }
  }
  int double_events = 0;
  for (const auto& id : accepted) {
    EXPECT_EQ(events[id], 1) << id;
    double_events += events[id] > 1 ? 1 : 0;
  }
  int recreated = 0;
  for (const auto& c : state) {
    const auto email = c["ids"].value("registered", "");
    if (email.empty()) {
      continue;
    }
    const int i = std::atoi(email.substr(1).c_str());
    recreated += i % 3 != 0 ? 1 : 0;  // a delete subject still (or again) holds its ID
  }
  EXPECT_EQ(recreated, 0);
  std::map<std::string, int> reports;
  for (const auto& r : json::parse(request(sim_port, "GET", "/_sim/mineos").body)) {
    if (r["status"] == 200) {
      ++reports[r["ticket_id"].get<std::string>()];
    }
  }
  int repeated = 0;
  for (const auto& [id, n] : reports) {
    repeated += n - 1;
  }
  EXPECT_EQ(reports.size(), static_cast<std::size_t>(jobs));
  EXPECT_LE(repeated, kills) << "more repeated reports than kills";
  std::printf(
      "kill test: %d jobs, %d kills: lost %zu, failed %d, double events %d, re-created %d, "
      "repeated reports %d\n",
      jobs, kills, static_cast<std::size_t>(jobs) - views.size(), failed, double_events, recreated,
      repeated);
  daemon->signal(SIGTERM);
  daemon->wait_exit();
  sim->signal(SIGTERM);
}

}  // namespace
}  // namespace dsr::test
