// Fulfilment end to end: the real dsr-connector against the real exponea-sim, over loopback.

#include "dsr/jobs/store.hpp"
#include "dsr/mineos/signature.hpp"
#include "e2e/fulfilment_fixture.hpp"
#include "support/e2e_config.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/prometheus_text.hpp"
#include "support/sim_process.hpp"
#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace dsr::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(Fulfilment, DeleteOfAnExistingCustomerAnonymizesAndVerifies) {
  submit("delete", "req-jane", "Jane@Example.COM");  // mixed case: lower-cased as the ID
  const auto v = finished("req-jane");
  EXPECT_EQ(v["state"], "completed");
  EXPECT_EQ(v["outcome"], "Completed");
  EXPECT_EQ(holders("jane@example.com"), 0);
  std::vector<std::string> endpoints;
  for (const auto& c : calls_about("jane@example.com")) {
    endpoints.push_back(c["endpoint"]);
  }
  ASSERT_GE(endpoints.size(), 4u);
  EXPECT_EQ(endpoints[0], "export-one");
  EXPECT_EQ(endpoints[1], "track");
  EXPECT_EQ(endpoints[2], "anonymize");
  EXPECT_EQ(endpoints.back(), "export-one");  // verification saw it gone
  const auto track = calls_about("jane@example.com")[1];
  EXPECT_EQ(track["auth"], "token");
  const auto event = json::parse(track["body"].get<std::string>());
  EXPECT_EQ(event["properties"]["request_id"], "req-jane");
  EXPECT_EQ(event["properties"]["type"], "delete");
  EXPECT_THAT(event["properties"].dump(), Not(HasSubstr("@")));  // no personal data
}

TEST_F(Fulfilment, MetricsMoveWithADeleteAndKeepTheExpositionFormat) {
  const auto scrape = [&] {
    const auto r = request(daemon_->port(), "GET", "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    return parse_exposition(r.body);  // throws, failing the test, on a format error
  };
  const auto before = scrape();
  submit("delete", "req-metrics", "Jane@Example.com");
  EXPECT_EQ(wait_reported("req-metrics")["outcome"], "Completed");
  const auto after = scrape();
  const auto moved = [&](const std::string& series) {
    return after.value(series) - before.value(series);
  };
  EXPECT_EQ(moved(R"(dsr_webhooks_total{operation="delete",code="202"})"), 1);
  EXPECT_GE(moved(R"(dsr_exponea_requests_total{endpoint="export-one",code="200"})"), 2);
  EXPECT_EQ(moved(R"(dsr_exponea_requests_total{endpoint="track",code="200"})"), 1);
  EXPECT_EQ(moved(R"(dsr_exponea_requests_total{endpoint="anonymize",code="200"})"), 1);
  EXPECT_EQ(moved(R"(dsr_exponea_request_duration_seconds_count{endpoint="anonymize"})"), 1);
  EXPECT_EQ(moved(R"(dsr_job_duration_seconds_count{operation="delete",outcome="Completed"})"), 1);
  EXPECT_EQ(
      moved(R"(dsr_job_duration_seconds_bucket{operation="delete",outcome="Completed",le="+Inf"})"),
      1);
  EXPECT_EQ(moved(R"(dsr_reports_total{result="acknowledged"})"), 1);
  EXPECT_EQ(moved(R"(dsr_jobs{state="completed"})"), 1);
  EXPECT_EQ(after.value(R"(dsr_jobs{state="queued"})"), 0);
  EXPECT_EQ(after.value("dsr_dispatch_paused"), 0);
  EXPECT_EQ(after.value("dsr_jobs_overdue"), 0);
  EXPECT_EQ(after.value(fmt::format("dsr_build_info{{version=\"{}\",schema=\"{}\"}}", DSR_VERSION,
                                    sqlite_schema_version())),
            1);
  EXPECT_EQ(after.value("dsr_workers"), 1);
  // The periodic tasks ran once at start-up, here (one daemon: no one else to run them).
  EXPECT_EQ(after.value("dsr_periodic_runs_total{task=\"retention_purge\"}"), 1);
  // Prometheus's own linter, where Debian's prometheus package installed it.
  if (std::filesystem::exists("/usr/bin/promtool")) {
    const auto page = dir_.write("metrics.txt", request(daemon_->port(), "GET", "/metrics").body);
    const auto lint = run("/bin/sh", {"-c", "/usr/bin/promtool check metrics < " + page.string()});
    EXPECT_EQ(lint.exit_code, 0) << lint.output;
  }
}

TEST_F(Fulfilment, UnknownCustomerIsUserNotFoundAndNothingIsCreated) {
  submit("delete", "req-nobody", "nobody@example.com");
  submit("copy", "req-nobody-copy", "nobody2@example.com");
  EXPECT_EQ(finished("req-nobody")["outcome"], "UserNotFound");
  EXPECT_EQ(finished("req-nobody-copy")["state"], "user_not_found");
  for (const char* who : {"nobody@example.com", "nobody2@example.com"}) {
    for (const auto& c : calls_about(who)) {
      EXPECT_EQ(c["endpoint"], "export-one");  // no event, no anonymize
    }
    EXPECT_EQ(holders(who), 0);
  }
}

TEST_F(Fulfilment, CopyExportsTheCustomerAndTracksOneEvent) {
  submit("copy", "req-john", "john@example.com");
  const auto v = finished("req-john");
  EXPECT_EQ(v["outcome"], "Completed");
  // Exponea queues the event (300 ms here): wait for it to land, bounded.
  int events = 0;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (events == 0 && std::chrono::steady_clock::now() < until) {
    events = 0;
    for (const auto& c : sim("state")) {
      for (const auto& e : c["events"]) {
        if (e["type"] == "privacy_request") {
          ++events;
          EXPECT_EQ(e["properties"]["type"], "copy");
        }
      }
    }
    if (events == 0) {
      std::this_thread::sleep_for(20ms);
    }
  }
  EXPECT_EQ(events, 1);
  EXPECT_EQ(holders("john@example.com"), 1);
}

TEST_F(Fulfilment, TransientFaultsAreRetriedUntilDone) {
  fault(json::array({{{"endpoint", "export-one"}, {"status", 500}, {"body", "boom"}},
                     {{"endpoint", "export-one"}, {"status", 429}, {"retry_after", "1"}}}));
  const auto started = std::chrono::steady_clock::now();
  submit("delete", "req-retry", "jane@example.com");
  const auto v = finished("req-retry");
  EXPECT_EQ(v["state"], "completed");
  EXPECT_EQ(v["attempts"], 3);
  // The 429's Retry-After: 1 was honoured: the next call came no earlier than asked.
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1s);
  const auto calls = sim("calls");
  for (std::size_t i = 0; i + 1 < calls.size(); ++i) {
    if (calls[i]["status"] == 429) {
      EXPECT_GE(calls[i + 1]["at_ms"].get<std::int64_t>() - calls[i]["at_ms"].get<std::int64_t>(),
                1000);
    }
  }
  EXPECT_THAT(v["history"].dump(), HasSubstr("boom"));
}

TEST_F(Fulfilment, ARunOf429sSlowsTheLimiterButDoesNotHoldDispatchBack) {
  // Six 429s in a row, more than the breaker's five transient failures: Exponea is up and asks
  // for a second each time; that is the limiter's to honour, not an outage to wait out.
  json faults = json::array();
  for (int i = 0; i < 6; ++i) {
    faults.push_back({{"endpoint", "export-one"}, {"status", 429}, {"retry_after", "1"}});
  }
  fault(faults);
  for (int i = 0; i < 6; ++i) {
    submit("delete", "req-429-" + std::to_string(i), "nobody" + std::to_string(i) + "@example.com");
  }
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(finished("req-429-" + std::to_string(i))["state"], "user_not_found");
  }
  EXPECT_THAT(daemon_->output(), Not(HasSubstr("dispatch held back")));
}

TEST_F(Fulfilment, ResetsSlowAnswersAndLostAnswersStillEndInOneEventAndOneErasure) {
  ASSERT_EQ(request(sim_port_, "POST", "/_sim/settings", R"({"latency_ms":100})").status, 200);
  fault(json::array({
      {{"endpoint", "export-one"}, {"drop", true}},                  // connection reset
      {{"endpoint", "track"}, {"drop", true}, {"apply", true}},      // event queued, answer lost
      {{"endpoint", "anonymize"}, {"drop", true}, {"apply", true}},  // erased, answer lost
  }));
  submit("delete", "req-lost", "jane@example.com");
  const auto v = finished("req-lost");
  EXPECT_EQ(v["state"], "completed") << v.dump();
  EXPECT_EQ(holders("jane@example.com"), 0);
  int events = 0;
  for (const auto& c : sim("state")) {
    for (const auto& e : c["events"]) {
      events += e.value("type", "") == "privacy_request" &&
                        e["properties"].value("request_id", "") == "req-lost"
                    ? 1
                    : 0;
    }
  }
  EXPECT_EQ(events, 1);  // the lost answer did not lead to a second event
  int tracked = 0;
  for (const auto& c : sim("calls")) {
    tracked += c["endpoint"] == "track" ? 1 : 0;
  }
  EXPECT_EQ(tracked, 1);
  wait_reported("req-lost");
  EXPECT_EQ(json::parse(sim("mineos")[0]["body"].get<std::string>())["status"], "Completed");
}

TEST_F(Fulfilment, PermanentErrorFailsAtOnceWithAFailedReportQuotingExponea) {
  fault({{"endpoint", "anonymize"},
         {"status", 400},
         {"body", R"({"success":false,"message":"Invalid JSON"})"}});
  submit("delete", "req-bad", "jane@example.com");
  const auto v = finished("req-bad");
  EXPECT_EQ(v["state"], "failed");
  EXPECT_EQ(v["attempts"], 1);
  EXPECT_THAT(v["history"].dump(), HasSubstr("Invalid JSON"));
  wait_reported("req-bad");
  const auto report = json::parse(sim("mineos")[0]["body"].get<std::string>());
  EXPECT_EQ(report["status"], "Failed");
  EXPECT_THAT(report["message"].get<std::string>(), HasSubstr("Invalid JSON"));
}

TEST_F(Fulfilment, RequestsCommandListsRetriesAndCancelsJobs) {
  // The command reads the daemon's address and admin_token from a configuration file: the same
  // credentials, and the port the daemon actually bound.
  const auto cli_config = dir_.write(
      "cli.toml",
      fmt::format("[server]\nlisten = \"127.0.0.1:{}\"\n{}", daemon_->port(), test_credentials()));
  const auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"requests", "--config", cli_config.string()});
    return run(DSR_BINARY, args);
  };
  // A job that fails for good.
  fault({{"endpoint", "anonymize"},
         {"status", 400},
         {"body", R"({"success":false,"message":"Invalid JSON"})"}});
  submit("delete", "req-cli", "jane@example.com");
  EXPECT_EQ(finished("req-cli")["state"], "failed");
  wait_reported("req-cli");

  const auto failed = cli({"list", "--state", "failed"});
  EXPECT_EQ(failed.exit_code, 0) << failed.output;
  EXPECT_THAT(failed.output, HasSubstr("REQUEST ID"));
  EXPECT_THAT(failed.output, HasSubstr("req-cli"));
  EXPECT_THAT(failed.output, HasSubstr("failed"));
  const auto none = cli({"list", "--state", "cancelled"});
  EXPECT_THAT(none.output, HasSubstr("no jobs"));
  const auto as_json = cli({"list", "--json"});
  EXPECT_EQ(json::parse(as_json.output)["requests"][0]["requestId"], "req-cli");
  const auto shown = cli({"show", "req-cli"});
  EXPECT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_THAT(shown.output, HasSubstr("history:"));
  EXPECT_THAT(shown.output, HasSubstr("Invalid JSON"));

  // The fault is gone (it was used once): a retry runs the job to completion.
  const auto retried = cli({"retry", "req-cli"});
  EXPECT_EQ(retried.exit_code, 0) << retried.output;
  EXPECT_THAT(retried.output, HasSubstr("req-cli: queued again"));
  const auto done = finished("req-cli");
  EXPECT_EQ(done["state"], "completed") << done.dump();
  wait_reported("req-cli");  // else a retry would re-send its report (contract §7)
  // Not failed any more: the daemon answers 409 and the command says so.
  const auto again = cli({"retry", "req-cli"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.output, HasSubstr("409"));
  EXPECT_EQ(cli({"show", "no-such-request"}).exit_code, 1);

  // A job waiting for its next attempt (Exponea asked for a minute) is cancelled.
  fault({{"endpoint", "export-one"}, {"status", 503}, {"retry_after", "60"}});
  submit("delete", "req-wait", "john@example.com");
  json v = json::object();
  for (int i = 0; i < 500 && v.value("state", "") != "retrying"; ++i) {
    v = json::parse(request(daemon_->port(), "GET", "/v1/requests/req-wait", "", admin).body);
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
  }
  ASSERT_EQ(v["state"], "retrying") << v.dump();
  const auto cancelled = cli({"cancel", "req-wait"});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.output;
  EXPECT_EQ(wait_reported("req-wait")["state"], "cancelled");
  bool told = false;
  for (const auto& r : sim("mineos")) {
    const auto body = json::parse(r["body"].get<std::string>());
    if (r["ticket_id"] == "req-wait") {
      EXPECT_EQ(body["status"], "Failed");
      EXPECT_EQ(body["message"], "cancelled by operator");
      told = true;
    }
  }
  EXPECT_TRUE(told);
}

TEST_F(Fulfilment, HungCallTimesOutAndIsRetried) {
  // The first export-one answers only after 3 s; the daemon's timeout is 2 s.
  fault({{"endpoint", "export-one"}, {"delay_ms", 3000}});
  submit("delete", "req-hung", "jane@example.com");
  const auto v = finished("req-hung");
  EXPECT_EQ(v["state"], "completed");
  EXPECT_EQ(v["attempts"], 2);
  EXPECT_THAT(v["history"].dump(), HasSubstr("timed out"));
}

TEST_F(Fulfilment, OutcomeIsReportedOnceToThePublishedPathWithTheMineosKey) {
  submit("delete", "req-report", "jane@example.com");
  const auto v = wait_reported("req-report");
  EXPECT_EQ(v["reported"], true);
  EXPECT_TRUE(v["reportError"].is_null());
  const auto reports = sim("mineos");
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0]["status"], 200);  // MineOS's schema accepted the body
  EXPECT_EQ(reports[0]["ticket_id"], "req-report");
  EXPECT_EQ(reports[0]["integration_id"], "int-42");
  EXPECT_EQ(reports[0]["authorization"], "Bearer mineos-key-SECRET");
  EXPECT_EQ(json::parse(reports[0]["body"].get<std::string>()),
            (json{{"action", "Delete"},
                  {"status", "Completed"},
                  {"message", "Anonymized in Bloomreach and verified gone"}}));
}

TEST_F(Fulfilment, CopyReportCarriesTheDataAndTheExportIsDeletedAfterwards) {
  submit("copy", "req-copy", "john@example.com");
  wait_reported("req-copy");
  const auto body = json::parse(sim("mineos")[0]["body"].get<std::string>());
  EXPECT_EQ(body["status"], "Completed");
  EXPECT_EQ(body["data"]["properties"]["first_name"], "John");
  EXPECT_EQ(body["data"]["ids"]["registered"], "john@example.com");
  EXPECT_EQ(body["data"]["events"].size(), 1u);
  const auto exports = dir_.path() / "exports";
  EXPECT_TRUE(!std::filesystem::exists(exports) || std::filesystem::is_empty(exports));
}

TEST_F(Fulfilment, CopyWhoseExportWasLostIsReportedFailedAskingForARetry) {
  fault({{"endpoint", "mineos"}, {"status", 503}, {"count", 100000}});  // MineOS down for now
  submit("copy", "req-lost", "john@example.com");
  EXPECT_EQ(finished("req-lost")["state"], "completed");
  const auto exports = dir_.path() / "exports";
  std::vector<std::filesystem::path> kept;
  for (const auto& f : std::filesystem::directory_iterator(exports)) {
    kept.push_back(f.path());
  }
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].extension(), ".json");
  std::filesystem::remove(kept[0]);  // a disk problem, or an operator's mistake
  // A report already on its way had the file open; wait for one that started after the removal.
  const auto seen = sim("mineos").size();
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (sim("mineos").size() < seen + 2 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
  }
  ASSERT_EQ(request(sim_port_, "DELETE", "/_sim/faults").status, 200);  // MineOS is back
  wait_reported("req-lost");
  const auto reports = sim("mineos");
  const auto body = json::parse(reports.back()["body"].get<std::string>());
  EXPECT_EQ(body["status"], "Failed");  // never a Completed copy without its data
  EXPECT_THAT(body["message"].get<std::string>(), HasSubstr("retry"));
  EXPECT_FALSE(body.contains("data"));
}

TEST_F(Fulfilment, TheStoreNeverHoldsTheEmailInTheClear) {
  submit("delete", "req-private", "jane@example.com");
  submit("delete", "req-private-2", "Canary.Person@Example.com");
  wait_reported("req-private");
  wait_reported("req-private-2");
  std::string bytes;
  for (const char* f : {"dsr.sqlite3", "dsr.sqlite3-wal"}) {
    std::ifstream in(dir_.path() / f, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("jane@example.com"), std::string::npos);
  EXPECT_EQ(bytes.find("Canary.Person"), std::string::npos);
  EXPECT_EQ(bytes.find("canary.person"), std::string::npos);
}

TEST_F(Fulfilment, CopyExportWaitsOnDiskSealedWithTheStoreKey) {
  fault({{"endpoint", "mineos"}, {"status", 503}, {"count", 100000}});  // MineOS down for now
  submit("copy", "req-sealed", "john@example.com");
  EXPECT_EQ(finished("req-sealed")["state"], "completed");
  std::string bytes;
  for (const auto& f : std::filesystem::directory_iterator(dir_.path() / "exports")) {
    std::ifstream in(f.path(), std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find("john@example.com"), std::string::npos);
  EXPECT_EQ(bytes.find("Prague"), std::string::npos);
  ASSERT_EQ(request(sim_port_, "DELETE", "/_sim/faults").status, 200);  // MineOS is back
  wait_reported("req-sealed");
  const auto reports = sim("mineos");
  const auto body = json::parse(reports.back()["body"].get<std::string>());
  EXPECT_EQ(body["status"], "Completed");
  EXPECT_EQ(body["data"]["properties"]["city"], "Prague");  // decrypted for MineOS
}

TEST_F(Fulfilment, MineosAnswering503IsRetriedUntilAcknowledgedOnce) {
  fault({{"endpoint", "mineos"}, {"status", 503}, {"count", 3}});
  submit("delete", "req-503", "nobody@example.com");
  const auto v = wait_reported("req-503");
  EXPECT_EQ(v["reported"], true);
  const auto reports = sim("mineos");
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[3]["status"], 200);
  EXPECT_EQ(std::count_if(reports.begin(), reports.end(),
                          [](const json& r) { return r["status"] == 200; }),
            1);
}

TEST_F(Fulfilment, MineosRefusingAReportStopsItWithItsTextUntilRetried) {
  fault({{"endpoint", "mineos"},
         {"status", 400},
         {"body", R"({"internalErrorCode":"InvalidArgument","message":"Ticket is closed"})"}});
  submit("delete", "req-400", "nobody@example.com");
  json v;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < until) {
    v = json::parse(request(daemon_->port(), "GET", "/v1/requests/req-400", "", admin).body);
    if (!v["reportError"].is_null()) {
      break;
    }
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
  }
  std::this_thread::sleep_for(300ms);   // a second attempt would come within the backoff
  EXPECT_EQ(sim("mineos").size(), 1u);  // no retry loop
  v = json::parse(request(daemon_->port(), "GET", "/v1/requests/req-400", "", admin).body);
  EXPECT_EQ(v["reported"], false);
  EXPECT_EQ(v["reportError"], "MineOS answered 400: Ticket is closed");

  // The operator asks for the report again: MineOS takes it this time.
  ASSERT_EQ(request(daemon_->port(), "POST", "/v1/requests/req-400/retry", "", admin).status, 202);
  const auto again = wait_reported("req-400");
  EXPECT_EQ(again["reported"], true);
  EXPECT_TRUE(again["reportError"].is_null());
  EXPECT_EQ(sim("mineos").size(), 2u);
}

TEST_F(Fulfilment, MineosNotKnowingTheTicketStopsThatReportNamingIt) {
  fault({{"endpoint", "mineos"}, {"status", 404}, {"body", "no such integration"}});
  submit("delete", "req-404", "nobody@example.com");
  json v;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < until) {
    v = json::parse(request(daemon_->port(), "GET", "/v1/requests/req-404", "", admin).body);
    if (!v["reportError"].is_null()) {
      break;
    }
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
  }
  EXPECT_EQ(v["reported"], false);
  EXPECT_THAT(v["reportError"].get<std::string>(),
              HasSubstr("404 (unknown ticket or integrationId): no such integration"));
}

// The simulator saw only reads (system/time, export-one, consent/categories).
void expect_no_write(const json& calls) {
  for (const auto& c : calls) {
    EXPECT_THAT(c["endpoint"].get<std::string>(),
                ::testing::AnyOf("system/time", "export-one", "consent/categories"));
  }
}

TEST_F(Fulfilment, IsTestAnswersTheChecksAndWritesNothing) {
  const auto r =
      post_signed(daemon_->port(), "/v1/mineos/delete",
                  R"({"traceId":"t-test","integrationId":"int-42","isTest":true})", webhook_secret);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto body = json::parse(r.body);
  EXPECT_EQ(body["test"], true);
  EXPECT_EQ(body["ok"], true);
  EXPECT_GE(body["checks"].size(), 5u);
  expect_no_write(sim("calls"));
  EXPECT_TRUE(
      json::parse(request(daemon_->port(), "GET", "/v1/requests", "", admin).body)["requests"]
          .empty());
  EXPECT_TRUE(sim("mineos").empty());  // no request.id: no ticket to send a test call for
  EXPECT_THAT(body["checks"].dump(), HasSubstr("the isTest delivery carries no request.id"));
}

TEST_F(Fulfilment, IsTestWithATicketSendsOneTestStatusCall) {
  const auto r = post_signed(
      daemon_->port(), "/v1/mineos/copy",
      R"({"traceId":"t-test3","integrationId":"int-42","isTest":true,"request":{"id":"tk-test"}})",
      webhook_secret);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("MineOS accepted a test: true status call"));
  const auto reports = sim("mineos");
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0]["status"], 200);
  EXPECT_EQ(reports[0]["ticket_id"], "tk-test");
  EXPECT_EQ(json::parse(reports[0]["body"].get<std::string>()),
            (json{{"action", "Copy"},
                  {"status", "Completed"},
                  {"message", "dsr-connector test"},
                  {"test", true}}));
  expect_no_write(sim("calls"));

  // An integration id MineOS does not know is named.
  const auto unknown = post_signed(
      daemon_->port(), "/v1/mineos/delete",
      R"({"traceId":"t-test4","integrationId":"int-nope","isTest":true,"request":{"id":"tk-test"}})",
      webhook_secret);
  ASSERT_EQ(unknown.status, 503) << unknown.body;
  EXPECT_THAT(unknown.body, HasSubstr("integrationId int-nope"));
}

TEST_F(Fulfilment, IsTestAnswers503NamingARejectedValue) {
  fault({{"endpoint", "system/time"},
         {"status", 403},
         {"body", R"({"success":false,"error":"invalid secret"})"}});
  const auto r = post_signed(daemon_->port(), "/v1/mineos/delete",
                             R"({"traceId":"t-test2","isTest":true})", webhook_secret);
  ASSERT_EQ(r.status, 503) << r.body;
  const auto body = json::parse(r.body);
  EXPECT_EQ(body["ok"], false);
  EXPECT_THAT(body["checks"].dump(), HasSubstr("exponea_api_secret rejected"));
  expect_no_write(sim("calls"));
}

TEST_F(Fulfilment, PreviewSummarisesTheCustomerAndWritesNothing) {
  const auto found =
      post_signed(daemon_->port(), "/v1/mineos/preview",
                  R"({"traceId":"t-p1","userInfo":{"email":"Jane@Example.com"}})", webhook_secret);
  ASSERT_EQ(found.status, 200) << found.body;
  const auto records = json::parse(found.body)["records"];
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["properties"][0]["value"], "5");  // properties
  EXPECT_EQ(records[0]["properties"][1]["value"], "2");  // events
  const auto missing = post_signed(
      daemon_->port(), "/v1/mineos/preview",
      R"({"traceId":"t-p2","userInfo":{"email":"nobody@example.com"}})", webhook_secret);
  ASSERT_EQ(missing.status, 200);
  EXPECT_EQ(json::parse(missing.body), (json{{"records", json::array()}}));
  expect_no_write(sim("calls"));
}

TEST_F(Fulfilment, CheckCommandPassesAndNamesAWrongValue) {
  const auto good = run(DSR_BINARY, {"check", "--config", (dir_.path() / "dsr.toml").string()});
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_THAT(good.output, HasSubstr("OK      exponea_api_token"));
  EXPECT_THAT(good.output, HasSubstr("SKIPPED GDPR > Anonymize customer permission"));

  std::ifstream in(dir_.path() / "dsr.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text.replace(text.find("demo-api-token"), 14, "wrong-token-SECRET");
  const auto bad_cfg = dir_.write("bad.toml", text);
  const auto bad = run(DSR_BINARY, {"check", "--config", bad_cfg.string()});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output,
              HasSubstr("FAILED  exponea_api_token (system/time): exponea_api_token rejected"));
  EXPECT_THAT(bad.output, Not(HasSubstr("wrong-token-SECRET")));
  EXPECT_THAT(bad.output, Not(HasSubstr("demo-api-secret")));
  const auto as_json = run(DSR_BINARY, {"check", "--config", bad_cfg.string(), "--json"});
  EXPECT_EQ(json::parse(as_json.output)["ok"], false);
  expect_no_write(sim("calls"));
}

TEST_F(Fulfilment, CheckNamesAWrongConsentCategory) {
  std::ifstream in(dir_.path() / "dsr.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto cfg = dir_.write("consent.toml",
                              text + "\n[consent]\ncategories = [\"marketing\", \"marketting\"]\n");
  const auto r = run(DSR_BINARY, {"check", "--config", cfg.string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("FAILED  [consent] categories marketing, marketting"));
  EXPECT_THAT(r.output, HasSubstr("\"marketting\" is not a consent category of this project"));
  EXPECT_THAT(r.output, HasSubstr("OK      [mineos] api_base_url"));
  EXPECT_THAT(r.output, HasSubstr("SKIPPED mineos_api_key"));
  expect_no_write(sim("calls"));
  EXPECT_TRUE(sim("mineos").empty());  // check never writes to MineOS
}

// `check` downloads into a scratch directory of its own; the shared temp directory it is made in
// keeps its mode (run as root, chmod-ing /tmp to 0700 breaks every other program on the host).
TEST_F(Fulfilment, CheckLeavesTheSharedTempDirectoryAsItFoundIt) {
  const auto cfg = (dir_.path() / "dsr.toml").string();
  const auto mode_of = [](const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode;
  };
  const auto system_tmp = mode_of(std::filesystem::temp_directory_path());
  const auto shared = dir_.path() / "tmp";
  std::filesystem::create_directory(shared);
  ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);
  const auto r = run(DSR_BINARY, {"check", "--config", cfg}, {{"TMPDIR", shared.string()}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(mode_of(shared) & 07777, 01777u);
  EXPECT_TRUE(std::filesystem::is_empty(shared));  // its scratch directory is gone
  EXPECT_EQ(mode_of(std::filesystem::temp_directory_path()), system_tmp);

  // Under systemd, the runtime directory stands in for the temp directory.
  const auto runtime = dir_.path() / "run";
  std::filesystem::create_directory(runtime);
  ASSERT_EQ(::chmod(runtime.c_str(), 0755), 0);
  const auto under_systemd =
      run(DSR_BINARY, {"check", "--config", cfg}, {{"RUNTIME_DIRECTORY", runtime.string()}});
  EXPECT_EQ(under_systemd.exit_code, 0) << under_systemd.output;
  EXPECT_EQ(mode_of(runtime) & 07777, 0755u);
  EXPECT_TRUE(std::filesystem::is_empty(runtime));
}

}  // namespace
}  // namespace dsr::test

namespace dsr::test {
namespace {

class RateLimited : public Fulfilment {
 protected:
  RateLimited() { exponea_extra_ = "max_requests_per_second = 10"; }
};

TEST_F(RateLimited, NoSecondHoldsMoreCallsThanTheLimitAndExponeaNeverAnswers429) {
  // Exponea itself allows 10 calls per 1-second window and answers 429 beyond.
  ASSERT_EQ(request(sim_port_, "POST", "/_sim/settings", R"({"rate_limit_per_second":10})").status,
            200);
  constexpr int jobs = 100;  // unknown customers: one export-one each, 10 s at 10 per second
  for (int i = 0; i < jobs; ++i) {
    submit("delete", "req-rl-" + std::to_string(i), "nobody" + std::to_string(i) + "@example.com");
  }
  for (int i = 0; i < jobs; ++i) {
    EXPECT_EQ(finished("req-rl-" + std::to_string(i))["state"], "user_not_found");
  }
  std::vector<std::int64_t> at;
  for (const auto& c : sim("calls")) {
    EXPECT_NE(c["status"], 429) << c.dump();
    at.push_back(c["at_ms"].get<std::int64_t>());
  }
  ASSERT_EQ(at.size(), static_cast<std::size_t>(jobs));
  std::sort(at.begin(), at.end());
  for (std::size_t i = 10; i < at.size(); ++i) {
    EXPECT_GE(at[i] - at[i - 10], 1000) << "11 calls within one second, ending at call " << i;
  }
}

// The status page in Debian's Chromium, driven by Playwright (tests/e2e/browser/status_page.mjs):
// with a 1-day deadline every unfinished job is overdue.
class StatusPage : public Fulfilment {
 protected:
  StatusPage() { extra_config_ = "[jobs]\ndeadline_days = 1\n"; }
};

TEST_F(StatusPage, ChromiumShowsWhatMetricsSayAndRetriesAFailedJob) {
  const std::filesystem::path browser_dir = DSR_SOURCE_DIR "/tests/e2e/browser";
  ASSERT_TRUE(std::filesystem::exists(browser_dir / "node_modules/playwright-core"))
      << "playwright-core is missing: run scripts/install-deps (it runs npm ci in " << browser_dir
      << ")";
  ASSERT_TRUE(std::filesystem::exists("/usr/bin/chromium"))
      << "Chromium is missing: run scripts/install-deps (Debian's chromium package)";

  // A demo run: a delete done, a copy done after a transient 503, a delete failed for good.
  submit("delete", "req-done", "jane@example.com");
  EXPECT_EQ(wait_reported("req-done")["state"], "completed");
  fault({{"endpoint", "export-one"}, {"status", 503}});
  submit("copy", "req-flaky", "john@example.com");
  EXPECT_EQ(wait_reported("req-flaky")["attempts"], 2);
  fault({{"endpoint", "anonymize"},
         {"status", 400},
         {"body", R"({"success":false,"message":"Invalid JSON"})"}});
  submit("delete", "req-failed", "john@example.com");
  const auto failed = wait_reported("req-failed");
  ASSERT_EQ(failed["state"], "failed") << failed.dump();
  EXPECT_EQ(failed["deadline"], "overdue");  // the job view flags it too

  const char* wanted = std::getenv("DSR_STATUS_PAGE_PNG");  // make status-page-screenshot
  const auto png =
      wanted != nullptr ? std::filesystem::path(wanted) : dir_.path() / "status-page.png";
  const auto browser = run("/usr/bin/node",
                           {(browser_dir / "status_page.mjs").string(),
                            fmt::format("http://127.0.0.1:{}", daemon_->port()),
                            "admin-token-of-the-e2e-tests-SECRET", "req-failed", png.string()},
                           {}, 120s);
  ASSERT_EQ(browser.exit_code, 0) << browser.output;
  const auto checked = json::parse(browser.output.substr(browser.output.rfind("{\"")));
  EXPECT_GE(checked["figures"].get<int>(), 13) << browser.output;
  EXPECT_EQ(checked["retried"], "req-failed");

  std::ifstream shot(png, std::ios::binary);
  std::string magic(8, '\0');
  shot.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
  EXPECT_GT(std::filesystem::file_size(png), 20'000u);
  // The click re-ran the job; the fault was used once, so it completes.
  EXPECT_EQ(finished("req-failed")["state"], "completed");
}

}  // namespace
}  // namespace dsr::test
