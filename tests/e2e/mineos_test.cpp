// MineOS's protocol end to end (docs/contract.md §4, §6): every request MineOS can send to the
// Delete and Copy URLs, reported through MineOS's published status API (the simulator refuses any
// body that breaks MineOS's schema), with the real dsr-connector and exponea-sim over loopback.

#include "e2e/fulfilment_fixture.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <thread>

namespace dsr::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

json body_for(const std::string& request_id, json request_type, json user) {
  json request{{"id", request_id}, {"type", "Delete"}};
  if (!request_type.is_null()) {
    request["requestType"] = std::move(request_type);
  }
  return {{"traceId", "trace-" + request_id},
          {"integrationId", "int-42"},
          {"request", std::move(request)},
          {"userInfo", std::move(user)}};
}

class MineosProtocol : public Fulfilment {
 protected:
  MineosProtocol() {
    exponea_extra_ = R"(custom_field_ids = [{field = "$internalId", id = "customer_id"}])";
    extra_config_ = "[consent]\ncategories = [\"marketing\", \"personalisation\"]\n";
    extra_customers_ = {
        {{"ids", {{"registered", "olga@example.com"}}}, {"properties", {{"first_name", "Olga"}}}},
        {{"ids", {{"registered", "ed@example.com"}}}, {"properties", {{"first_name", "Ed"}}}},
        {{"ids", {{"customer_id", "C-1042"}, {"registered", "kim@example.com"}}},
         {"properties", {{"first_name", "Kim"}}}},
    };
  }

  void send(const std::string& path, const json& body) {
    const auto r = post_signed(daemon_->port(), path, body.dump(), webhook_secret);
    ASSERT_EQ(r.status, 202) << r.body;
  }
  // The status calls MineOS received for one ticket.
  std::vector<json> reports_for(const std::string& ticket) {
    std::vector<json> out;
    for (const auto& r : sim("mineos")) {
      if (r["ticket_id"] == ticket) {
        out.push_back(r);
      }
    }
    return out;
  }
  // Requests that went at the same time may share a bulk call (contract §5): a `batch` command
  // counts here as the tracking call it stands for, an `anonymize_bulk` as its anonymize.
  std::vector<std::string> endpoints_about(const std::string& needle) {
    std::vector<std::string> out;
    for (const auto& c : calls_about(needle)) {
      const auto ep = c["endpoint"].get<std::string>();
      out.push_back(ep == "batch" ? "track" : ep == "anonymize_bulk" ? "anonymize" : ep);
    }
    return out;
  }
  // Events of `type` on customers holding `email` (a consent event's category as `detail`).
  std::vector<std::string> events_of(const std::string& email, const std::string& type) {
    std::vector<std::string> out;
    for (const auto& c : sim("state")) {
      if (c["ids"].value("registered", "") != email) {
        continue;
      }
      for (const auto& e : c["events"]) {
        if (e.value("type", "") == type) {
          out.push_back(type == "consent" ? e["properties"].value("category", "")
                                          : e["properties"].value("request_id", ""));
        }
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

TEST_F(MineosProtocol, EveryKindOfRequestIsReportedOnceWithOnlyTheCallsItNeeds) {
  send("/v1/mineos/delete",
       body_for("r-del", {{"id", "delete"}, {"name", "Delete"}}, {{"email", "jane@example.com"}}));
  send("/v1/mineos/copy", body_for("r-copy", nullptr, {{"email", "john@example.com"}}));
  send("/v1/mineos/delete", body_for("r-unknown", nullptr, {{"email", "nobody@example.com"}}));
  send("/v1/mineos/delete", body_for("r-noid", nullptr, {{"name", "No Mail"}}));
  send("/v1/mineos/delete", body_for("r-optout", {{"id", "dns"}, {"name", "Do Not Sell"}},
                                     {{"email", "olga@example.com"}}));
  send("/v1/mineos/delete", body_for("r-edit", {{"id", "rte"}, {"name", "Right to Edit"}},
                                     {{"email", "ed@example.com"}}));

  struct expected {
    std::string ticket, action, status, state, operation;
  };
  for (const auto& e : std::vector<expected>{
           {"r-del", "Delete", "Completed", "completed", "delete"},
           {"r-copy", "Copy", "Completed", "completed", "copy"},
           {"r-unknown", "Delete", "UserNotFound", "user_not_found", "delete"},
           {"r-noid", "Delete", "MissingIdentifiers", "missing_identifiers", "delete"},
           {"r-optout", "Delete", "Completed", "completed", "opt_out"},
           {"r-edit", "Delete", "Failed", "failed", "delete"},
       }) {
    const auto v = wait_reported(e.ticket);
    EXPECT_EQ(v["state"], e.state) << v.dump();
    EXPECT_EQ(v["operation"], e.operation) << e.ticket;
    const auto reports = reports_for(e.ticket);
    ASSERT_EQ(reports.size(), 1u) << e.ticket;  // exactly one, and MineOS's schema took it
    EXPECT_EQ(reports[0]["status"], 200) << reports[0].dump();
    EXPECT_EQ(reports[0]["integration_id"], "int-42");
    const auto body = json::parse(reports[0]["body"].get<std::string>());
    EXPECT_EQ(body["action"], e.action) << e.ticket;
    EXPECT_EQ(body["status"], e.status) << e.ticket;
    EXPECT_FALSE(body["message"].get<std::string>().empty()) << e.ticket;
  }
  // What MineOS is told is what a privacy team can act on.
  const auto message = [&](const std::string& ticket) {
    return json::parse(reports_for(ticket)[0]["body"].get<std::string>())["message"]
        .get<std::string>();
  };
  EXPECT_EQ(message("r-del"), "Anonymized in Bloomreach and verified gone");
  EXPECT_EQ(message("r-optout"), "Consent revoked in Bloomreach: marketing, personalisation");
  EXPECT_EQ(message("r-edit"), "request type \"Right to Edit\" is not handled by this integration");
  EXPECT_THAT(message("r-noid"), HasSubstr("no e-mail address"));
  const auto copy = json::parse(reports_for("r-copy")[0]["body"].get<std::string>());
  EXPECT_EQ(copy["data"]["properties"]["first_name"], "John");
  EXPECT_THAT(copy["message"].get<std::string>(), HasSubstr("Exported"));

  // The Exponea calls the contract lists for each, and no others.
  const auto del = endpoints_about("jane@example.com");
  ASSERT_GE(del.size(), 4u);
  EXPECT_EQ((std::vector<std::string>(del.begin(), del.begin() + 3)),
            (std::vector<std::string>{"export-one", "track", "anonymize"}));
  EXPECT_EQ(endpoints_about("john@example.com"), (std::vector<std::string>{"export-one", "track"}));
  EXPECT_EQ(endpoints_about("nobody@example.com"), (std::vector<std::string>{"export-one"}));
  EXPECT_EQ(endpoints_about("olga@example.com"),
            (std::vector<std::string>{"export-one", "track", "track", "track"}));  // no anonymize
  EXPECT_TRUE(endpoints_about("ed@example.com").empty());  // an unhandled right calls nothing
  EXPECT_EQ(holders("olga@example.com"), 1);
  EXPECT_EQ(holders("ed@example.com"), 1);
  // No call for the request without an identifier: every call names one of the others.
  for (const auto& c : sim("calls")) {
    const auto b = c["body"].get<std::string>();
    EXPECT_TRUE(b.empty() || b.find("@example.com") != std::string::npos) << c.dump();
  }
  const auto optout =
      json::parse(request(daemon_->port(), "GET", "/v1/requests/r-optout", "", admin).body);
  EXPECT_EQ(optout["requestType"], "Do Not Sell");
  for (const auto& c : calls_about("olga@example.com")) {
    const auto body = json::parse(c["body"].get<std::string>());
    if (body.value("event_type", "") == "consent") {
      EXPECT_EQ(c["auth"], "basic");
      EXPECT_EQ(body["properties"]["action"], "reject");
    }
  }
  // Counted by operation in /metrics.
  const auto metrics = request(daemon_->port(), "GET", "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr(R"(dsr_requests_accepted_total{operation="opt_out"} 1)"));
  EXPECT_THAT(metrics, HasSubstr(R"(dsr_requests_accepted_total{operation="delete"} 4)"));
  EXPECT_THAT(metrics, HasSubstr(R"(dsr_requests_accepted_total{operation="copy"} 1)"));
}

TEST_F(MineosProtocol, AnAlternativeIdentifierIsTheOnlyIdInEveryCall) {
  send("/v1/mineos/delete",
       body_for("r-kim", nullptr, {{"customFields", {{"$internalId", "C-1042"}}}}));
  EXPECT_EQ(wait_reported("r-kim")["state"], "completed");
  const auto calls = calls_about("C-1042");
  ASSERT_GE(calls.size(), 4u);
  for (const auto& c : calls) {
    EXPECT_EQ(json::parse(c["body"].get<std::string>())["customer_ids"],
              (json{{"customer_id", "C-1042"}}))
        << c.dump();
  }
  EXPECT_TRUE(calls_about("kim@example.com").empty());  // never a second ID in customer_ids
  EXPECT_EQ(holders("kim@example.com"), 0);             // anonymized all the same
}

// kill -9 while each side-effecting call of an opt-out is on its way (its `started` journaled,
// Exponea already holding the event): the restarted daemon finishes the job, and each event is
// there exactly once.
TEST_F(MineosProtocol, AnOptOutKilledDuringEachCallFinishesWithEveryEventTrackedOnce) {
  // The 1st track call is the audit event, the 2nd and 3rd the consent rejects.
  for (int k = 1; k <= 3; ++k) {
    SCOPED_TRACE(fmt::format("killed during track call {}", k));
    const std::string id = fmt::format("r-crash-{}", k);
    const std::string email = fmt::format("crash{}@example.com", k);
    ASSERT_EQ(
        request(sim_port_, "POST", "/_sim/customers", json{{"ids", {{"registered", email}}}}.dump())
            .status,
        200);
    json faults = json::array();
    for (int i = 1; i < k; ++i) {
      faults.push_back({{"endpoint", "track"}});  // answered as usual
    }
    faults.push_back({{"endpoint", "track"}, {"delay_ms", 10000}});  // the answer never comes
    fault(faults);
    send("/v1/mineos/delete",
         body_for(id, {{"id", "unsubscribe"}, {"name", "Unsubscribe"}}, {{"email", email}}));
    const auto until = std::chrono::steady_clock::now() + 20s;
    const auto tracked = [&] {
      const auto seen = endpoints_about(email);
      return static_cast<int>(std::count(seen.begin(), seen.end(), "track"));
    };
    while (std::chrono::steady_clock::now() < until && tracked() < k) {
      std::this_thread::sleep_for(10ms);  // polling for the call, not timing it
    }
    ASSERT_EQ(tracked(), k);
    daemon_->signal(SIGKILL);
    daemon_->wait_exit();
    ASSERT_EQ(request(sim_port_, "DELETE", "/_sim/faults").status, 200);
    start_daemon();
    const auto v = wait_reported(id);
    EXPECT_EQ(v["state"], "completed") << v.dump();
    std::this_thread::sleep_for(400ms);  // Exponea's queued writes (300 ms) land
    EXPECT_EQ(events_of(email, "privacy_request"), (std::vector<std::string>{id}));
    EXPECT_EQ(events_of(email, "consent"),
              (std::vector<std::string>{"marketing", "personalisation"}));
    for (const auto& e : endpoints_about(email)) {
      EXPECT_NE(e, "anonymize");
    }
    EXPECT_EQ(reports_for(id).size(), 1u);
  }
}

// A company's own right, mapped after its first request failed: the retried job is routed again
// as it runs, and runs as configured now.
TEST_F(MineosProtocol, ARightMappedLaterRunsWhenItsFailedJobIsRetried) {
  send("/v1/mineos/delete", body_for("r-later", {{"id", "rte"}, {"name", "Right to Edit"}},
                                     {{"email", "ed@example.com"}}));
  EXPECT_EQ(wait_reported("r-later")["state"], "failed");
  EXPECT_TRUE(endpoints_about("ed@example.com").empty());
  daemon_->signal(SIGTERM);
  ASSERT_EQ(daemon_->wait_exit(), 0);
  {
    std::ofstream cfg(config_, std::ios::app);
    cfg << "\n[requests]\nopt_out_types = [\"Right to Edit\", \"donotsell\"]\n";
  }
  start_daemon();
  ASSERT_EQ(request(daemon_->port(), "POST", "/v1/requests/r-later/retry", "", admin).status, 202);
  const auto v = wait_reported("r-later");
  EXPECT_EQ(v["state"], "completed") << v.dump();
  EXPECT_EQ(v["operation"], "opt_out");
  EXPECT_EQ(endpoints_about("ed@example.com"),
            (std::vector<std::string>{"export-one", "track", "track", "track"}));
  EXPECT_EQ(holders("ed@example.com"), 1);
}

class MineosKeyRotation : public MineosProtocol {
 protected:
  MineosKeyRotation() {
    key_file_ = dir_.write("mineos_api_key", "wrong-mineos-SECRET\n");
    extra_config_ = fmt::format("mineos_api_key_file = \"{}\"\n", key_file_.string());
  }
  std::filesystem::path key_file_;
};

TEST_F(MineosKeyRotation, A401PausesReportingNotJobsAndAReloadSendsEachReportOnce) {
  send("/v1/mineos/delete", body_for("r-k1", nullptr, {{"email", "nobody1@example.com"}}));
  send("/v1/mineos/delete", body_for("r-k2", nullptr, {{"email", "nobody2@example.com"}}));
  // The jobs finish; their reports are refused (401) and reporting pauses, naming the key.
  json ready;
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    const auto r = request(daemon_->port(), "GET", "/readyz");
    ready = json::parse(r.body);
    if (r.status == 503) {
      break;
    }
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
  }
  EXPECT_THAT(ready.value("reason", ""), HasSubstr("mineos_api_key"));
  EXPECT_EQ(finished("r-k1")["state"], "user_not_found");
  EXPECT_EQ(finished("r-k2")["state"], "user_not_found");  // jobs went on
  std::this_thread::sleep_for(300ms);
  // One refused call, then nothing until the pause's probe (60 s) or a reload.
  EXPECT_EQ(sim("mineos").size(), 1u);
  EXPECT_EQ(sim("mineos")[0]["status"], 401);
  const auto paused =
      json::parse(request(daemon_->port(), "GET", "/v1/requests/r-k1", "", admin).body);
  EXPECT_EQ(paused["reported"], false);

  // The operator fixes the key and reloads: reporting resumes at once.
  dir_.write("mineos_api_key", "mineos-key-SECRET\n");
  daemon_->signal(SIGHUP);
  EXPECT_EQ(wait_reported("r-k1")["reported"], true);
  EXPECT_EQ(wait_reported("r-k2")["reported"], true);
  for (const char* ticket : {"r-k1", "r-k2"}) {
    const auto reports = reports_for(ticket);
    EXPECT_EQ(std::count_if(reports.begin(), reports.end(),
                            [](const json& r) { return r["status"] == 200; }),
              1)
        << ticket;
  }
  EXPECT_EQ(request(daemon_->port(), "GET", "/readyz").status, 200);
  EXPECT_THAT(daemon_->output(), Not(HasSubstr("wrong-mineos-SECRET")));
}

// Foreign text from both peers: a character cut by a byte limit, and escape sequences.
TEST_F(MineosProtocol, BrokenAndHostileTextFromPeersEndsCleanAndNothingStops) {
  // Exponea: 299 ASCII bytes and an "é" (cut at 300 bytes, it used to leave half a character).
  fault({{"endpoint", "anonymize"}, {"status", 400}, {"body", std::string(299, 'x') + "\xC3\xA9"}});
  send("/v1/mineos/delete", body_for("r-utf8", nullptr, {{"email", "jane@example.com"}}));
  const auto failed = wait_reported("r-utf8");
  EXPECT_EQ(failed["state"], "failed");
  const auto text = json::parse(reports_for("r-utf8")[0]["body"].get<std::string>())["message"]
                        .get<std::string>();
  EXPECT_EQ(text, "Bloomreach anonymize: 400 " + std::string(299, 'x'));

  // MineOS: a raw 199-byte answer and an "é" (cut at 200 bytes).
  fault({{"endpoint", "mineos"}, {"status", 400}, {"body", std::string(199, 'y') + "\xC3\xA9"}});
  send("/v1/mineos/delete", body_for("r-mineos-utf8", nullptr, {{"email", "nobody@example.com"}}));
  json v;
  auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    v = json::parse(request(daemon_->port(), "GET", "/v1/requests/r-mineos-utf8", "", admin).body);
    if (!v["reportError"].is_null()) {
      break;
    }
    std::this_thread::sleep_for(20ms);  // polling for an event, not timing it
  }
  EXPECT_EQ(v["reportError"], "MineOS answered 400: " + std::string(199, 'y'));

  // Exponea: an error text holding ESC/OSC sequences (a link, a colour, a title change).
  fault({{"endpoint", "export-one"},
         {"status", 422},
         {"body",
          R"({"error":"\u001b]8;;http://evil.example\u0007click\u001b]8;;\u0007 \u001b[31mred)"
          R"(\u001b[0m \u001b]0;title\u0007\u009b2J"})"}});
  send("/v1/mineos/delete", body_for("r-esc", nullptr, {{"email", "john@example.com"}}));
  EXPECT_EQ(wait_reported("r-esc")["state"], "failed");
  const auto report = reports_for("r-esc")[0]["body"].get<std::string>();
  EXPECT_EQ(report.find('\x1b'), std::string::npos);
  EXPECT_EQ(report.find("\\u001b"), std::string::npos);
  EXPECT_EQ(report.find("\xC2\x9B"), std::string::npos);

  // The daemon kept running: the CLI lists and shows everything, with no escape sequence.
  const auto cli_config = dir_.write(
      "cli.toml",
      fmt::format("[server]\nlisten = \"127.0.0.1:{}\"\n{}", daemon_->port(), test_credentials()));
  const auto list = run(DSR_BINARY, {"requests", "--config", cli_config.string(), "list"});
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("r-utf8"));
  const auto show = run(DSR_BINARY, {"requests", "--config", cli_config.string(), "show", "r-esc"});
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("click"));
  EXPECT_EQ(show.output.find('\x1b'), std::string::npos);
  EXPECT_EQ(show.output.find("\xC2\x9B"), std::string::npos);
  EXPECT_EQ(daemon_->output().find('\x1b'), std::string::npos);
  // Later reports go out as usual.
  send("/v1/mineos/delete", body_for("r-after", nullptr, {{"email", "nobody3@example.com"}}));
  EXPECT_EQ(wait_reported("r-after")["reported"], true);
  EXPECT_EQ(request(daemon_->port(), "GET", "/v1/requests", "", admin).status, 200);
}

}  // namespace
}  // namespace dsr::test
