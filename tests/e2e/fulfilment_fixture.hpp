#pragma once
// The end-to-end fixture of the fulfilment tests: the real exponea-sim (which plays MineOS's
// status API too) and the real dsr-connector against it, over loopback, with helpers to submit
// requests, wait for jobs and read what the simulator saw.

#include "dsr/mineos/signature.hpp"
#include "support/e2e_config.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/sim_process.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace dsr::test {

using json = nlohmann::json;
using namespace std::chrono_literals;

inline const std::map<std::string, std::string> admin = {
    {"Authorization", "Bearer admin-token-of-the-e2e-tests-SECRET"}};
inline constexpr std::string_view webhook_secret = "webhook-secret-e2e-SECRET";

class Fulfilment : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
    auto seed = json::parse(in);
    seed["write_delay_ms"] = 300;  // Exponea queues writes
    for (auto& c : extra_customers_) {
      seed["customers"].push_back(c);
    }
    sim_ = start_sim(dir_.write("seed.json", seed.dump()), dir_.path() / "sim.log", sim_port_,
                     sim_start_timeout_);
    ASSERT_NE(sim_port_, 0) << sim_->output();
    const auto cfg = dir_.write(
        "dsr.toml", fmt::format(R"(
[server]
listen = "127.0.0.1:0"
[store]
{}
[exponea]
base_url = "http://127.0.0.1:{}"
timeout_seconds = {}
verify_timeout_seconds = 30
{}
[mineos]
api_base_url = "http://127.0.0.1:{}"
{}
[retry]
initial_backoff_ms = 20
max_attempts = 4
{}
)",
                                store_config_, sim_port_, exponea_timeout_seconds_,
                                exponea_extra_, sim_port_,
                                mineos_extra_, test_credentials() + extra_config_));
    config_ = cfg;
    start_daemon();
  }

  // Starts the daemon (again, after a kill: on the same store and configuration).
  void start_daemon() {
    ++starts_;
    daemon_ = std::make_unique<process>(
        DSR_BINARY, std::vector<std::string>{"serve", "--config", config_.string()},
        std::map<std::string, std::string>{},
        dir_.path() /
            (starts_ == 1 ? std::string("daemon.log") : fmt::format("daemon-{}.log", starts_)));
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->output();
  }

  int exponea_timeout_seconds_ = 2;
  std::chrono::milliseconds sim_start_timeout_{20s};
  // How long finished() and wait_reported() wait for a job.
  std::chrono::milliseconds wait_limit_{30s};
  // Customers added to the simulator's seed.
  std::vector<json> extra_customers_;
  // Lines added to the [mineos] section.
  std::string mineos_extra_;
  std::filesystem::path config_;
  int starts_ = 0;

  // The [store] section's lines (PostgreSQL's tests put engine and url here).
  std::string store_config_ = R"(path = "dsr.sqlite3")";
  // Lines added to the [exponea] section of the daemon's configuration.
  std::string exponea_extra_;
  // Sections added at the end of the daemon's configuration.
  std::string extra_config_;

  void TearDown() override {
    if (!daemon_) {
      return;  // SetUp failed, and said why
    }
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait_exit(), 0) << daemon_->output();
    const auto out = daemon_->output();
    for (const char* s :
         {"demo-api-secret", "demo-project-token", "demo-api-token", "webhook-secret-e2e-SECRET",
          "admin-token-of-the-e2e-tests-SECRET", "mineos-key-SECRET"}) {
      EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr(s)));
    }
    EXPECT_THAT(
        out, ::testing::Not(::testing::HasSubstr("@example.com")));  // e-mails only at trace level
    sim_->signal(SIGTERM);
  }

  void submit(const std::string& op, const std::string& request_id, const std::string& email) {
    const auto r =
        post_signed(daemon_->port(), "/v1/mineos/" + op,
                    webhook_body("trace-" + request_id, request_id, email), webhook_secret);
    ASSERT_EQ(r.status, 202);
  }

  // Waits (bounded) until the job reaches a final state; returns its view.
  json finished(const std::string& request_id) {
    json v;
    const auto until = std::chrono::steady_clock::now() + wait_limit_;
    while (std::chrono::steady_clock::now() < until) {
      v = json::parse(
          request(daemon_->port(), "GET", "/v1/requests/" + request_id, "", admin).body);
      const auto state = v.value("state", "");
      if (state != "queued" && state != "running" && state != "retrying") {
        return v;
      }
      std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
    }
    ADD_FAILURE() << "job " << request_id << " did not finish: " << v.dump();
    return v;
  }

  // Waits (bounded) until MineOS has acknowledged the job's report; returns the job view.
  json wait_reported(const std::string& request_id) {
    json v;
    const auto until = std::chrono::steady_clock::now() + wait_limit_;
    while (std::chrono::steady_clock::now() < until) {
      v = json::parse(
          request(daemon_->port(), "GET", "/v1/requests/" + request_id, "", admin).body);
      if (v.value("reported", false)) {
        return v;
      }
      std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
    }
    ADD_FAILURE() << "job " << request_id << " was not reported: " << v.dump();
    return v;
  }

  json sim(const std::string& what) {
    return json::parse(request(sim_port_, "GET", "/_sim/" + what).body);
  }
  void fault(const json& f) {
    ASSERT_EQ(request(sim_port_, "POST", "/_sim/faults", f.dump()).status, 200);
  }
  // The calls the simulator saw whose body mentions `needle` (the subject's e-mail).
  std::vector<json> calls_about(const std::string& needle) {
    std::vector<json> out;
    for (const auto& c : sim("calls")) {
      if (c["body"].get<std::string>().find(needle) != std::string::npos) {
        out.push_back(c);
      }
    }
    return out;
  }
  int holders(const std::string& email) {
    int n = 0;
    for (const auto& c : sim("state")) {
      n += c["ids"].value("registered", "") == email ? 1 : 0;
    }
    return n;
  }

  temp_dir dir_;
  std::unique_ptr<process> sim_;
  std::uint16_t sim_port_ = 0;
  std::unique_ptr<process> daemon_;
};

}  // namespace dsr::test
