#include "dsr/sim/exponea_sim.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/exponea/client.hpp"
#include "fakes/fake_clock.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace dsr::sim {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string basic = "Basic " + crypto::base64_encode("demo-api-key:demo-api-secret");
const std::string token = "Token demo-api-token";
const std::string mineos_key = "Bearer mineos-key-SECRET";
const std::string ticket = "3664feb0-b48c-4a8a-a81d-1303a4efc64f";

json seed() {
  std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
  auto s = json::parse(in);
  s["write_delay_ms"] = 0;
  return s;
}

class ExponeaSim : public ::testing::Test {
 protected:
  explicit ExponeaSim(json s = seed()) : sim_(make(std::move(s))) {}

  std::unique_ptr<exponea_simulator> make(json s) {
    return std::make_unique<exponea_simulator>(s, clock_, [](auto, auto fn) { fn(); });
  }
  // Starts over with another seed (same helpers, same clock).
  void reseed(json s) { sim_ = make(std::move(s)); }

  http::response call(std::string method, std::string path, std::string body = "",
                      std::optional<std::string> auth = basic,
                      std::optional<std::string> content_type = std::nullopt) {
    http::request req;
    req.method = std::move(method);
    req.target = std::move(path);
    req.body = std::move(body);
    if (auth) {
      req.headers.push_back({"Authorization", *auth});
    }
    if (content_type) {
      req.headers.push_back({"Content-Type", *content_type});
    }
    http::response out;
    sim_->handle(std::move(req), [&](http::response r) { out = std::move(r); });
    return out;
  }
  // A status report to the fake MineOS API, as the daemon sends it.
  http::response report(const std::string& body, std::optional<std::string> auth = mineos_key,
                        const std::string& integration = "int-42",
                        std::string content_type = "application/json") {
    return call("POST", "/api/ticket/" + ticket + "/custom-integrations/" + integration, body,
                std::move(auth), std::move(content_type));
  }
  // The InvalidArgument message of a 400, or what came instead.
  std::string rejected(const json& body) {
    const auto r = report(body.dump());
    if (r.status != 400) {
      return "status " + std::to_string(r.status);
    }
    const auto error = json::parse(r.body);
    EXPECT_EQ(error["internalErrorCode"], "InvalidArgument");
    return error["message"];
  }
  http::response track_event(const json& body, std::optional<std::string> auth = basic) {
    return call("POST", "/track/v2/projects/demo-project-token/customers/events", body.dump(),
                std::move(auth));
  }
  http::response consent(const std::string& email, const json& properties, json timestamp) {
    return track_event({{"customer_ids", {{"registered", email}}},
                        {"event_type", "consent"},
                        {"timestamp", std::move(timestamp)},
                        {"properties", properties}});
  }
  http::response categories(std::optional<std::string> auth = basic) {
    return call("GET", "/data/v2/projects/demo-project-token/consent/categories", "",
                std::move(auth));
  }
  json consents_of(const std::string& email) {
    for (const auto& c : customers()) {
      if (c["ids"].value("registered", "") == email) {
        return c["consents"];
      }
    }
    return nullptr;
  }
  static std::optional<std::string> header(const http::response& r, std::string_view name) {
    for (const auto& h : r.headers) {
      if (h.name == name) {
        return h.value;
      }
    }
    return std::nullopt;
  }
  json now_seconds() const { return clock_->now().time_since_epoch().count() / 1000; }
  http::response export_one(const std::string& email, std::optional<std::string> auth = basic) {
    return call("POST", "/data/v2/projects/demo-project-token/customers/export-one",
                json{{"customer_ids", {{"registered", email}}}}.dump(), auth);
  }
  http::response anonymize(const std::string& email) {
    return call("POST", "/data/v2/projects/demo-project-token/customers/anonymize",
                json{{"customer_ids", {{"registered", email}}}}.dump());
  }
  http::response track(const std::string& email, std::optional<std::string> auth = token,
                       std::string type = "privacy_request") {
    return call("POST", "/track/v2/projects/demo-project-token/customers/events",
                json{{"customer_ids", {{"registered", email}}},
                     {"event_type", type},
                     {"timestamp", 1764410000},
                     {"properties", {{"request_id", "r1"}}}}
                    .dump(),
                auth);
  }
  // How the daemon's client would classify this answer.
  static exponea::call_error classified(const http::response& r, exponea::auth a,
                                        exponea::endpoint ep) {
    std::optional<std::string_view> retry;
    for (const auto& h : r.headers) {
      if (h.name == "Retry-After") {
        retry = h.value;
      }
    }
    return exponea::classify(r.status, r.body, retry, a, ep, time_point{});
  }
  json customers() { return sim_->state(); }
  http::response batch(const json& body, std::optional<std::string> auth = basic) {
    return call("POST", "/track/v2/projects/demo-project-token/batch", body.dump(),
                std::move(auth));
  }
  http::response update(const json& body, std::optional<std::string> auth = token) {
    return call("POST", "/track/v2/projects/demo-project-token/customers", body.dump(),
                std::move(auth));
  }
  // The events export-one shows for a customer, or null when it is unknown.
  json events_of(const std::string& email) {
    const auto r = export_one(email);
    return r.status == 200 ? json::parse(r.body)["events"] : json();
  }
  static json event_command(const std::string& email, const std::string& type,
                            const std::string& id) {
    return {{"name", "customers/events"},
            {"command_id", id},
            {"data",
             {{"customer_ids", {{"registered", email}}},
              {"event_type", type},
              {"timestamp", nullptr},
              {"properties", nullptr}}}};
  }

  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  std::unique_ptr<exponea_simulator> sim_;
};

TEST_F(ExponeaSim, AuthenticationErrorsFollowTheReference) {
  const std::string time = "/track/v2/projects/demo-project-token/system/time";
  EXPECT_EQ(call("GET", time).status, 200u);
  EXPECT_EQ(call("GET", time, "", token).status, 200u);
  auto r = call("GET", "/track/v2/projects/wrong-token/system/time");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(classified(r, exponea::auth::basic, exponea::endpoint::system_time).value,
            "exponea_project_token");
  r = call("GET", time, "", std::nullopt);
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(json::parse(r.body)["error"], "Access key not provided");
  r = call("GET", time, "", "Basic " + crypto::base64_encode("other-key:demo-api-secret"));
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(classified(r, exponea::auth::basic, exponea::endpoint::system_time).value,
            "exponea_api_key");
  r = call("GET", time, "", "Basic " + crypto::base64_encode("demo-api-key:wrong"));
  EXPECT_EQ(r.status, 403u);
  EXPECT_EQ(classified(r, exponea::auth::basic, exponea::endpoint::system_time).value,
            "exponea_api_secret");
  r = call("GET", time, "", "Token wrong");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(classified(r, exponea::auth::token, exponea::endpoint::system_time).value,
            "exponea_api_token");
  EXPECT_EQ(call("GET", "/nope").status, 404u);
}

TEST_F(ExponeaSim, ExportOneReturnsTheCustomerOr404) {
  auto r = export_one("jane@example.com");
  ASSERT_EQ(r.status, 200u);
  const auto body = json::parse(r.body);
  EXPECT_EQ(body["success"], true);
  EXPECT_EQ(body["properties"]["first_name"], "Jane");
  EXPECT_EQ(body["events"].size(), 2u);
  r = export_one("nobody@example.com");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(classified(r, exponea::auth::basic, exponea::endpoint::export_one).kind,
            exponea::answer_class::not_found);
  // Hard IDs are case-sensitive, as in Bloomreach.
  EXPECT_EQ(export_one("Jane@Example.com").status, 404u);
  // The data API refuses public tokens.
  EXPECT_EQ(export_one("jane@example.com", token).status, 403u);
}

TEST_F(ExponeaSim, MissingPermissionsAreReportedAsTheApiDoes) {
  auto s = seed();
  s["private_keys"][0]["permissions"] = json::array();
  s["public_tokens"][0]["events"] = json::array({"other_event"});
  reseed(s);
  auto r = export_one("jane@example.com");
  EXPECT_EQ(r.status, 403u);
  EXPECT_EQ(json::parse(r.body)["error"], "No permission to export customer");
  r = track("jane@example.com");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["success"], false);
  EXPECT_EQ(classified(r, exponea::auth::token, exponea::endpoint::track).kind,
            exponea::answer_class::rejected);
}

TEST_F(ExponeaSim, TrackingAnUnknownIdCreatesACustomer) {
  ASSERT_EQ(track("new@example.com").status, 200u);
  const auto r = export_one("new@example.com");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["events"][0]["type"], "privacy_request");
}

TEST_F(ExponeaSim, AnonymizeRemovesIdsAndPersonalDataAndAssignsACookie) {
  ASSERT_EQ(track("jane@example.com").status, 200u);
  ASSERT_EQ(anonymize("jane@example.com").status, 200u);
  EXPECT_EQ(export_one("jane@example.com").status, 404u);
  const auto jane = customers()[0];
  EXPECT_EQ(jane["ids"].size(), 1u);
  EXPECT_TRUE(jane["ids"].contains("cookie"));
  EXPECT_FALSE(jane["properties"].contains("email"));
  EXPECT_FALSE(jane["properties"].contains("first_name"));
  EXPECT_EQ(jane["properties"]["loyalty_tier"], "gold");              // not personal: kept
  EXPECT_EQ(jane["events"].size(), 3u);                               // events are kept...
  EXPECT_FALSE(jane["events"][1]["properties"].contains("address"));  // ...minus personal data
  EXPECT_EQ(jane["events"][1]["properties"]["total_price"], 49.9);
  EXPECT_EQ(anonymize("nobody@example.com").status, 404u);
}

TEST_F(ExponeaSim, LookupsFollowIdsAsTheyChange) {
  // Anonymized: no longer found by the e-mail, found by the new cookie.
  ASSERT_EQ(anonymize("jane@example.com").status, 200u);
  const auto cookie = customers()[0]["ids"]["cookie"][0];
  const auto by_cookie = [&] {
    return call("POST", "/data/v2/projects/demo-project-token/customers/export-one",
                json{{"customer_ids", {{"cookie", cookie}}}}.dump());
  };
  ASSERT_EQ(by_cookie().status, 200u);
  EXPECT_EQ(export_one("jane@example.com").status, 404u);
  // Tracking the old e-mail creates a new customer: the one found by it, not the anonymized one.
  ASSERT_EQ(track("jane@example.com").status, 200u);
  const auto jane = json::parse(export_one("jane@example.com").body);
  EXPECT_EQ(jane["events"].size(), 1u);
  EXPECT_EQ(jane["ids"]["registered"], "jane@example.com");
  EXPECT_FALSE(json::parse(by_cookie().body)["ids"].contains("registered"));
}

TEST_F(ExponeaSim, WritesAreQueued) {
  auto s = seed();
  s["write_delay_ms"] = 500;
  reseed(s);
  ASSERT_EQ(anonymize("jane@example.com").status, 200u);
  EXPECT_EQ(export_one("jane@example.com").status, 200u);  // not yet
  clock_->advance(500ms);
  EXPECT_EQ(export_one("jane@example.com").status, 404u);  // now gone
}

TEST_F(ExponeaSim, RateLimitAnswers429AndDropsTheData) {
  auto s = seed();
  s["rate_limit_per_second"] = 2;
  reseed(s);
  std::vector<unsigned> statuses;
  for (int i = 0; i < 3; ++i) {
    statuses.push_back(track("x@example.com").status);
  }
  EXPECT_EQ(statuses, (std::vector<unsigned>{200, 200, 429}));
  clock_->advance(1s);
  EXPECT_EQ(track("x@example.com").status, 200u);
  EXPECT_EQ(customers().back()["events"].size(), 3u);  // the rejected call stored nothing
}

TEST_F(ExponeaSim, InjectedFaults) {
  ASSERT_EQ(call("POST", "/_sim/faults",
                 R"([{"endpoint":"anonymize","status":503,"retry_after":"2"},
                     {"endpoint":"export-one","drop":true},
                     {"endpoint":"anonymize","drop":true,"apply":true}])")
                .status,
            200u);
  auto r = anonymize("jane@example.com");
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(classified(r, exponea::auth::basic, exponea::endpoint::anonymize).retry_after, 2s);
  EXPECT_EQ(export_one("jane@example.com").status, 0u);    // connection dropped, no answer
  EXPECT_EQ(export_one("jane@example.com").status, 200u);  // the fault is used up
  // A lost answer: the anonymization took effect, the answer never came.
  EXPECT_EQ(anonymize("jane@example.com").status, 0u);
  EXPECT_EQ(export_one("jane@example.com").status, 404u);
}

TEST_F(ExponeaSim, MalformedRequests) {
  auto r = call("POST", "/data/v2/projects/demo-project-token/customers/export-one", "{oops");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(json::parse(r.body)["message"], "Invalid JSON");
  r = call("POST", "/data/v2/projects/demo-project-token/customers/export-one",
           R"({"customer_ids":{}})");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["success"], false);
}

TEST_F(ExponeaSim, CallLogRecordsEveryApiCall) {
  export_one("jane@example.com");
  track("jane@example.com");
  const auto calls = sim_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["endpoint"], "export-one");
  EXPECT_EQ(calls[0]["auth"], "basic");
  EXPECT_EQ(calls[1]["endpoint"], "track");
  EXPECT_EQ(calls[1]["auth"], "token");
  EXPECT_EQ(calls[1]["status"], 200);
}

const json delete_completed{
    {"action", "Delete"}, {"status", "Completed"}, {"message", "Anonymized and verified gone"}};

TEST_F(ExponeaSim, MineosAcceptsValidReportsAndRecordsThem) {
  const auto copy = json{
      {"action", "Copy"},
      {"status", "Completed"},
      {"message", nullptr},
      {"data", {{"ids", {{"registered", "jane@example.com"}}}}},
      {"files",
       {{{"fileName", "r.json"}, {"description", nullptr}, {"url", "https://x.example/r.json"}}}},
      {"test", true}}.dump();
  auto r = report(delete_completed.dump());
  EXPECT_EQ(r.status, 200u) << r.body;
  r = report(copy, mineos_key, "demo-integration", "application/json; charset=utf-8");
  EXPECT_EQ(r.status, 200u) << r.body;
  // The other media types the API declares.
  EXPECT_EQ(report(delete_completed.dump(), mineos_key, "int-42", "text/json").status, 200u);
  EXPECT_EQ(
      report(delete_completed.dump(), mineos_key, "int-42", "application/json-patch+json").status,
      200u);
  EXPECT_EQ(call("POST", "/mineos/status", delete_completed.dump(), mineos_key).status, 404u);

  const auto reports = sim_->reports();
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0]["ticket_id"], ticket);
  EXPECT_EQ(reports[0]["integration_id"], "int-42");
  EXPECT_EQ(reports[0]["authorization"], mineos_key);
  EXPECT_EQ(reports[0]["body"], delete_completed.dump());
  EXPECT_EQ(reports[0]["status"], 200);
  EXPECT_EQ(reports[0]["at_ms"], clock_->now().time_since_epoch().count());
  EXPECT_EQ(reports[1]["integration_id"], "demo-integration");
  EXPECT_EQ(reports[1]["body"], copy);
  // The control endpoint lists the same records.
  EXPECT_EQ(json::parse(call("GET", "/_sim/mineos").body), reports);
}

TEST_F(ExponeaSim, MineosRejectsAMissingOrWrongKey) {
  const std::vector<std::optional<std::string>> wrong{std::nullopt, "Bearer wrong",
                                                      "mineos-key-SECRET", basic};
  for (const auto& auth : wrong) {
    const auto r = report(delete_completed.dump(), auth);
    EXPECT_EQ(r.status, 401u) << auth.value_or("(none)");
    EXPECT_EQ(r.body, "");
  }
  // The key is checked before the body.
  EXPECT_EQ(report(R"({"action":"Remove"})", "Bearer wrong").status, 401u);
  const auto reports = sim_->reports();
  ASSERT_EQ(reports.size(), 5u);
  EXPECT_EQ(reports[1]["authorization"], "Bearer wrong");
  EXPECT_EQ(reports[1]["status"], 401);

  // Without a key in the seed any Bearer token will do, but not none.
  auto s = seed();
  s["mineos"].erase("api_key");
  reseed(s);
  EXPECT_EQ(report(delete_completed.dump(), "Bearer anything").status, 200u);
  EXPECT_EQ(report(delete_completed.dump(), "Bearer ").status, 401u);
  EXPECT_EQ(report(delete_completed.dump(), std::nullopt).status, 401u);
}

// MineOS limits writes (about 800 a minute per workspace) and answers 429 without Retry-After; a
// refused call does not count, and the window moves with the clock.
TEST_F(ExponeaSim, MineosRefusesCallsBeyondItsMinuteLimit) {
  auto s = seed();
  s["mineos"]["rate_limit_per_minute"] = 3;
  reseed(s);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(report(delete_completed.dump()).status, 200u) << i;
    clock_->advance(10s);
  }
  const auto refused = report(delete_completed.dump());
  ASSERT_EQ(refused.status, 429u);
  for (const auto& h : refused.headers) {
    EXPECT_NE(h.name, "Retry-After");  // MineOS sends none
  }
  EXPECT_EQ(json::parse(refused.body)["internalErrorCode"], "TooManyRequests");
  EXPECT_EQ(sim_->reports()[3]["status"], 429);
  clock_->advance(30s);  // the first call is now 60 s old: its place is free
  EXPECT_EQ(report(delete_completed.dump()).status, 200u);
  EXPECT_EQ(report(delete_completed.dump()).status, 429u);
}

TEST_F(ExponeaSim, MineosAnswers404ForAnUnknownIntegration) {
  // Checked after the key, before the body.
  EXPECT_EQ(report("{}", "Bearer wrong", "int-99").status, 401u);
  const auto r = report("{}", mineos_key, "int-99");
  ASSERT_EQ(r.status, 404u);
  EXPECT_EQ(json::parse(r.body)["internalErrorCode"], "NotFound");
  EXPECT_NE(json::parse(r.body)["message"].get<std::string>().find("int-99"), std::string::npos);
  EXPECT_EQ(sim_->reports()[1]["status"], 404);

  auto s = seed();
  s.erase("mineos");
  reseed(s);
  EXPECT_EQ(report(delete_completed.dump(), "Bearer x", "int-99").status, 200u);
}

TEST_F(ExponeaSim, MineosRejectsBodiesOutsideTheSchema) {
  const auto with = [](json patch) {
    auto b = delete_completed;
    b.merge_patch(patch);
    return b;
  };
  const auto says = [](const std::string& message, std::string_view field) {
    return message.find(field) != std::string::npos ? ::testing::AssertionSuccess()
                                                    : ::testing::AssertionFailure() << message;
  };
  // The schema forbids other fields (additionalProperties: false).
  EXPECT_TRUE(says(rejected(with({{"traceId", "t-1"}})), "'traceId'"));
  // data and files are "For use with 'Copy' action only".
  EXPECT_TRUE(says(rejected(with({{"data", {{"ids", json::object()}}}})), "'data'"));
  EXPECT_TRUE(says(rejected(with({{"files", json::array()}})), "'files'"));
  // Enums are exact.
  EXPECT_TRUE(says(rejected(with({{"action", "delete"}})), "'action'"));
  EXPECT_TRUE(says(rejected(with({{"status", "Done"}})), "'status'"));
  EXPECT_TRUE(says(rejected({{"action", "Delete"}}), "'status' is required"));
  // Types.
  EXPECT_TRUE(says(rejected(with({{"message", 42}})), "'message'"));
  EXPECT_TRUE(says(rejected(with({{"test", "yes"}})), "'test'"));
  EXPECT_TRUE(says(rejected(with({{"action", "Copy"}, {"data", json::array({1})}})), "'data'"));
  EXPECT_TRUE(says(rejected(with({{"action", "Copy"}, {"files", {{{"name", "r.json"}}}}})),
                   "'files[0].name'"));
  EXPECT_TRUE(
      says(rejected(with({{"action", "Copy"}, {"files", {{{"url", 7}}}}})), "'files[0].url'"));
  EXPECT_TRUE(says(rejected(json::array()), "object"));
  // Not JSON, or not declared as JSON.
  auto r = report("{oops");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(json::parse(r.body)["internalErrorCode"], "InvalidArgument");
  r = report(delete_completed.dump(), mineos_key, "int-42", "text/plain");
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(json::parse(r.body)["message"].get<std::string>().find("Content-Type"),
            std::string::npos);
  // Null is allowed where the schema says nullable.
  EXPECT_EQ(rejected(with({{"message", nullptr}, {"data", nullptr}, {"files", nullptr}})),
            "status 200");
  // Every call is recorded, accepted or not.
  EXPECT_EQ(sim_->reports().size(), 15u);
}

TEST_F(ExponeaSim, MineosFaultsAnswerFirst) {
  ASSERT_EQ(call("POST", "/_sim/faults",
                 R"([{"endpoint":"mineos","status":429,"body":"slow down"},
                     {"endpoint":"mineos","drop":true,"apply":true},
                     {"endpoint":"mineos","drop":true}])")
                .status,
            200u);
  // Even without a key: the fault answers first, its body as is, no Retry-After unless asked.
  auto r = report("not json", std::nullopt);
  EXPECT_EQ(r.status, 429u);
  EXPECT_EQ(r.body, "slow down");
  EXPECT_FALSE(header(r, "Retry-After"));
  // A lost answer: MineOS took the report, the connection dropped.
  EXPECT_EQ(report(delete_completed.dump()).status, 0u);
  // Dropped before MineOS looked at it.
  EXPECT_EQ(report(delete_completed.dump()).status, 0u);
  EXPECT_EQ(report(delete_completed.dump()).status, 200u);  // the faults are used up
  const auto reports = sim_->reports();
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0]["status"], 429);
  EXPECT_EQ(reports[1]["status"], 200);
  EXPECT_EQ(reports[2]["status"], 0);
}

TEST_F(ExponeaSim, ConsentCategoriesAreListedForAnyPrivateKey) {
  auto r = categories();
  ASSERT_EQ(r.status, 200u);
  auto body = json::parse(r.body);
  EXPECT_EQ(body["success"], true);
  ASSERT_EQ(body["results"].size(), 3u);
  EXPECT_EQ(body["results"][0]["id"], "marketing");
  EXPECT_EQ(body["results"][0]["sources"]["private_api"], true);
  EXPECT_EQ(body["results"][2]["id"], "newsletter");
  EXPECT_EQ(body["results"][2]["sources"]["private_api"], false);
  // The usual auth errors; the data API refuses public tokens.
  EXPECT_EQ(categories(std::nullopt).status, 401u);
  EXPECT_EQ(categories("Basic " + crypto::base64_encode("demo-api-key:wrong")).status, 403u);
  EXPECT_EQ(categories(token).status, 403u);
  EXPECT_EQ(call("GET", "/data/v2/projects/wrong-token/consent/categories").status, 400u);

  // No permission needed; no categories seeded: an empty list.
  auto s = seed();
  s["private_keys"][0]["permissions"] = json::array();
  s.erase("consent_categories");
  reseed(s);
  r = categories();
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["results"], json::array());
}

TEST_F(ExponeaSim, ConsentEventsNeedTheConsentPermissionWithBasic) {
  const json reject{{"action", "reject"}, {"category", "marketing"}, {"valid_until", "unlimited"}};
  auto r = consent("jane@example.com", reject, 1764410000);
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["success"], true);

  auto s = seed();
  s["private_keys"][0]["permissions"] = json::array({"export", "anonymize", "track"});
  s["public_tokens"][0]["events"] = json::array({"privacy_request", "consent"});
  reseed(s);
  r = consent("jane@example.com", reject, 1764410000);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body),
            (json{{"success", false},
                  {"errors", json::array({"Not authorized to add event of specified type"})}}));
  EXPECT_EQ(consents_of("jane@example.com"), json::object());
  // With a public token, its event list decides.
  r = track_event({{"customer_ids", {{"registered", "jane@example.com"}}},
                   {"event_type", "consent"},
                   {"properties", reject}},
                  token);
  EXPECT_EQ(json::parse(r.body)["success"], true);
  EXPECT_EQ(consents_of("jane@example.com")["marketing"]["action"], "reject");
}

TEST_F(ExponeaSim, ConsentStateFollowsTheLatestValidFrom) {
  auto s = seed();
  s["write_delay_ms"] = 500;
  reseed(s);
  const json accept{{"action", "accept"}, {"category", "marketing"}, {"valid_until", "unlimited"}};
  const json reject{{"action", "reject"}, {"category", "marketing"}, {"valid_until", "unlimited"}};
  ASSERT_EQ(consent("jane@example.com", accept, 1764400000).status, 200u);
  ASSERT_EQ(consent("jane@example.com", reject, 1764410000).status, 200u);
  EXPECT_EQ(consents_of("jane@example.com"), json::object());  // writes are queued
  clock_->advance(500ms);
  EXPECT_EQ(consents_of("jane@example.com")["marketing"],
            (json{{"action", "reject"}, {"valid_from", 1764410000}, {"valid_until", "unlimited"}}));
  // An accept tracked later but valid from earlier does not override the reject.
  ASSERT_EQ(consent("jane@example.com", accept, 1764405000).status, 200u);
  clock_->advance(500ms);
  EXPECT_EQ(consents_of("jane@example.com")["marketing"]["action"], "reject");
  // The events are stored like any other, as export-one shows.
  const auto events = json::parse(export_one("jane@example.com").body)["events"];
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[3],
            (json{{"type", "consent"}, {"timestamp", 1764410000}, {"properties", reject}}));

  // An accept with a UNIX-time valid_until is revoked once that time passes.
  const auto until = now_seconds().get<long long>() + 60;
  const json until_then{
      {"action", "accept"}, {"category", "personalisation"}, {"valid_until", until}};
  ASSERT_EQ(consent("john@example.com", until_then, now_seconds()).status, 200u);
  clock_->advance(500ms);
  EXPECT_EQ(consents_of("john@example.com")["personalisation"]["action"], "accept");
  clock_->advance(60s);
  EXPECT_EQ(consents_of("john@example.com")["personalisation"]["action"], "reject");
}

TEST_F(ExponeaSim, AnInvalidConsentEventRevokesItsCategory) {
  const json accept{{"action", "accept"}, {"category", "marketing"}, {"valid_until", "unlimited"}};
  ASSERT_EQ(consent("jane@example.com", accept, 1764400000).status, 200u);
  ASSERT_EQ(
      consent("jane@example.com",
              {{"action", "accept"}, {"category", "personalisation"}, {"valid_until", "unlimited"}},
              1764400000)
          .status,
      200u);
  ASSERT_EQ(consent("john@example.com", accept, 1764400000).status, 200u);
  EXPECT_EQ(consents_of("jane@example.com")["marketing"]["action"], "accept");
  // accept without valid_until; an action that is not lower-case accept/reject.
  ASSERT_EQ(
      consent("jane@example.com", {{"action", "accept"}, {"category", "marketing"}}, 1764410000)
          .status,
      200u);
  ASSERT_EQ(consent("john@example.com",
                    {{"action", "Accept"}, {"category", "marketing"}, {"valid_until", "unlimited"}},
                    1764410000)
                .status,
            200u);
  // Without a category there is nothing to revoke.
  ASSERT_EQ(consent("jane@example.com", {{"action", "reject"}}, 1764420000).status, 200u);
  const auto jane = consents_of("jane@example.com");
  EXPECT_EQ(jane["marketing"],
            (json{{"action", "reject"}, {"valid_from", 1764410000}, {"valid_until", "unlimited"}}));
  EXPECT_EQ(jane["personalisation"]["action"], "accept");
  EXPECT_EQ(jane.size(), 2u);
  EXPECT_EQ(consents_of("john@example.com")["marketing"]["action"], "reject");
}

TEST_F(ExponeaSim, NullTimestampAndPropertiesAreStoredAsTrackingTimeAndNone) {
  // As Exponea's own SDK sends them when the caller gives none.
  const auto r = track_event({{"customer_ids", {{"registered", "jane@example.com"}}},
                              {"event_type", "privacy_request"},
                              {"timestamp", nullptr},
                              {"properties", nullptr}},
                             token);
  ASSERT_EQ(json::parse(r.body)["success"], true);
  const auto tracked = json::parse(export_one("jane@example.com").body)["events"].back();
  EXPECT_EQ(tracked["timestamp"], now_seconds());
  EXPECT_EQ(tracked["properties"], json::object());
  // A consent event without a timestamp is valid from the time of tracking.
  ASSERT_EQ(consent("jane@example.com",
                    {{"action", "reject"}, {"category", "marketing"}, {"valid_until", "unlimited"}},
                    nullptr)
                .status,
            200u);
  EXPECT_EQ(consents_of("jane@example.com")["marketing"]["valid_from"], now_seconds());
}

const json invalid_ids{{"success", false},
                       {"errors", json::array({"At least one valid id should be specified"})}};
const json not_authorized{
    {"success", false}, {"errors", json::array({"Not authorized to add event of specified type"})}};

TEST_F(ExponeaSim, AMistypedEventTypeIsA400AndTheSimulatorKeepsServing) {
  // Exponea's own SDK tests once sent an object here: the simulator threw.
  for (const auto& type :
       {json{{"name", "privacy_request"}}, json(42), json::array({"a"}), json(true)}) {
    const auto r = track_event({{"customer_ids", {{"registered", "jane@example.com"}}},
                                {"event_type", type},
                                {"properties", {{"request_id", "r1"}}}},
                               token);
    EXPECT_EQ(r.status, 400u) << type.dump();
    EXPECT_EQ(json::parse(r.body),
              (json{{"success", false}, {"errors", json::array({"event_type must be a string"})}}));
  }
  auto r = track_event({{"customer_ids", {{"registered", "jane@example.com"}}}}, token);
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(json::parse(r.body)["errors"][0], "event_type is required");
  EXPECT_EQ(events_of("jane@example.com").size(), 2u);  // none of them stored
  r = track("jane@example.com");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["success"], true);
  EXPECT_EQ(sim_->calls().size(), 7u);  // every call logged, the refused ones too
}

TEST_F(ExponeaSim, WronglyTypedCustomerIdsGetTheDocumentedAnswer) {
  const std::vector<json> shapes{json::array({"jane@example.com"}),
                                 "jane@example.com",
                                 42,
                                 nullptr,
                                 json::object(),
                                 {{"registered", 42}},
                                 {{"registered", {{"email", "jane@example.com"}}}},
                                 {{"registered", json::array({"jane@example.com"})}},
                                 {{"registered", "jane@example.com"}, {"cookie", 7}},
                                 {{"registered", "--@."}},
                                 {{"registered", "undefined"}},
                                 {{"", "jane@example.com"}}};
  const std::vector<std::string> paths{"/track/v2/projects/demo-project-token/customers/events",
                                       "/track/v2/projects/demo-project-token/customers",
                                       "/data/v2/projects/demo-project-token/customers/export-one",
                                       "/data/v2/projects/demo-project-token/customers/anonymize"};
  auto s = seed();
  s["public_tokens"][0]["properties"] = json::array({"*"});
  reseed(s);
  for (const auto& path : paths) {
    for (const auto& ids : shapes) {
      const json body{{"customer_ids", ids},
                      {"event_type", "privacy_request"},
                      {"properties", {{"city", "Brno"}}}};
      const auto r = call("POST", path, body.dump(), path.starts_with("/track") ? token : basic);
      EXPECT_EQ(r.status, 200u) << path << " " << ids.dump();
      EXPECT_EQ(json::parse(r.body), invalid_ids) << path << " " << ids.dump();
    }
  }
  EXPECT_EQ(customers().size(), 2u);  // nothing created, nothing anonymized
  EXPECT_EQ(events_of("jane@example.com").size(), 2u);
}

TEST_F(ExponeaSim, PropertiesAndTimestampOfTheWrongTypeAre400) {
  const auto with = [](const json& patch) {
    json body{{"customer_ids", {{"registered", "jane@example.com"}}},
              {"event_type", "privacy_request"}};
    body.merge_patch(patch);
    return body;
  };
  for (const auto& properties : {json("x"), json::array({1}), json(5), json(false)}) {
    const auto r = track_event(with({{"properties", properties}}), token);
    EXPECT_EQ(r.status, 400u) << properties.dump();
    EXPECT_EQ(json::parse(r.body)["errors"][0], "properties must be an object");
  }
  for (const auto& timestamp : {json("yesterday"), json("2025-11-29"), json("2025-11-29T10:00:00"),
                                json("2025-02-30T10:00:00Z"), json(true), json::object()}) {
    const auto r = track_event(with({{"timestamp", timestamp}}), token);
    EXPECT_EQ(r.status, 400u) << timestamp.dump();
    EXPECT_EQ(json::parse(r.body)["success"], false);
    EXPECT_NE(json::parse(r.body)["errors"][0].get<std::string>().find("timestamp"),
              std::string::npos);
  }
  EXPECT_EQ(events_of("jane@example.com").size(), 2u);
  // An RFC 3339 date-time is taken and stored as UNIX seconds, as the API exports it.
  ASSERT_EQ(track_event(with({{"timestamp", "2025-11-29T10:00:00Z"}}), token).status, 200u);
  ASSERT_EQ(track_event(with({{"timestamp", "2025-11-29T11:00:00.5+01:00"}}), token).status, 200u);
  const auto events = events_of("jane@example.com");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2]["timestamp"], 1764410400);
  EXPECT_EQ(events[3]["timestamp"], 1764410400.5);
}

TEST_F(ExponeaSim, BodiesThatAreNotObjectsOrNestTooDeeplyAreInvalidJson) {
  const std::string nested = std::string(600, '[') + std::string(600, ']');
  const std::vector<std::string> bodies{
      "{oops",
      "[]",
      "\"text\"",
      "null",
      "",
      R"({"customer_ids":{"registered":"jane@example.com"},"event_type":"privacy_request",)"
      R"("properties":{"deep":)" +
          nested + "}}"};
  for (const auto& body : bodies) {
    const auto r =
        call("POST", "/track/v2/projects/demo-project-token/customers/events", body, token);
    EXPECT_EQ(r.status, 400u) << body.substr(0, 40);
    EXPECT_EQ(json::parse(r.body), (json{{"success", false}, {"message", "Invalid JSON"}}));
  }
  EXPECT_EQ(events_of("jane@example.com").size(), 2u);
}

TEST_F(ExponeaSim, ABatchAnswersEachCommandInOrder) {
  // The seed's private key may track consent events, not privacy_request.
  const auto r = batch({{"commands",
                         {{{"name", "system/time"}, {"command_id", "time"}},
                          event_command("jane@example.com", "consent", "c-1"),
                          event_command("jane@example.com", "privacy_request", "p-1")}}});
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto body = json::parse(r.body);
  EXPECT_EQ(body["success"], true);
  const auto now = static_cast<double>(clock_->now().time_since_epoch().count()) / 1000.0;
  EXPECT_EQ(body["start_time"], now);
  EXPECT_EQ(body["end_time"], now);
  EXPECT_EQ(
      body["results"],
      (json::array(
          {{{"success", true}, {"time", now}, {"command_id", "time"}},
           {{"success", true}, {"command_id", "c-1"}},
           {{"success", false}, {"errors", not_authorized["errors"]}, {"command_id", "p-1"}}})));
  // Only the accepted event is stored: null timestamp and properties as for the single call.
  const auto events = events_of("jane@example.com");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(
      events[2],
      (json{{"type", "consent"}, {"timestamp", now_seconds()}, {"properties", json::object()}}));
  // Logged once, as "batch", with its body.
  const auto calls = sim_->calls();
  EXPECT_EQ(calls[0]["endpoint"], "batch");
  EXPECT_EQ(json::parse(calls[0]["body"].get<std::string>())["commands"].size(), 3u);
}

TEST_F(ExponeaSim, ABatchChecksEachCommandAsItsSingleCall) {
  auto s = seed();
  s["public_tokens"][0]["properties"] = json::array({"loyalty_tier"});
  reseed(s);
  auto mistyped = event_command("jane@example.com", "privacy_request", "4");
  mistyped["data"]["event_type"] = {{"name", "privacy_request"}};
  auto bad_ids = event_command("jane@example.com", "privacy_request", "5");
  bad_ids["data"]["customer_ids"] = json::array({"jane@example.com"});
  const auto r = batch({{"commands",
                         {{{"name", "customers/delete"}, {"data", json::object()}},
                          {{"name", "customers/events"}},
                          {{"name", "customers"}, {"data", "x"}},
                          mistyped,
                          bad_ids,
                          {{"name", "customers"},
                           {"data",
                            {{"customer_ids", {{"registered", "jane@example.com"}}},
                             {"properties", {{"loyalty_tier", "platinum"}}},
                             {"update_timestamp", 1764410000}}}},
                          {{"name", "customers"},
                           {"data",
                            {{"customer_ids", {{"registered", "jane@example.com"}}},
                             {"properties", {{"first_name", "Eve"}}}}}},
                          event_command("new@example.com", "privacy_request", "8")}}},
                       token);
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto results = json::parse(r.body)["results"];
  ASSERT_EQ(results.size(), 8u);
  for (int i : {0, 1, 2, 3, 4, 6}) {
    EXPECT_EQ(results[i]["success"], false) << i;
    EXPECT_EQ(results[i]["errors"].size(), 1u) << i;
  }
  EXPECT_EQ(results[3]["errors"][0], "event_type must be a string");
  EXPECT_EQ(results[3]["command_id"], "4");
  EXPECT_EQ(results[4]["errors"], invalid_ids["errors"]);
  EXPECT_EQ(results[5], (json{{"success", true}}));
  EXPECT_EQ(results[7], (json{{"success", true}, {"command_id", "8"}}));
  const auto jane = json::parse(export_one("jane@example.com").body);
  EXPECT_EQ(jane["properties"]["loyalty_tier"], "platinum");
  EXPECT_EQ(jane["properties"]["first_name"], "Jane");  // the token may not set it
  EXPECT_EQ(jane["events"].size(), 2u);
  EXPECT_EQ(events_of("new@example.com").size(), 1u);  // created by tracking
}

TEST_F(ExponeaSim, ABatchWithoutCommandsOrMalformedIsRefusedWhole) {
  const auto says = [&](const json& body, const std::string& message) {
    const auto r = call("POST", "/track/v2/projects/demo-project-token/batch",
                        body.is_string() ? body.get<std::string>() : body.dump());
    EXPECT_EQ(r.status, 400u) << body.dump();
    EXPECT_EQ(json::parse(r.body), (json{{"success", false}, {"message", message}})) << body.dump();
  };
  says(json::object(), "No commands");
  says({{"commands", json::array()}}, "No commands");
  says({{"commands", nullptr}}, "No commands");
  says({{"commands", json::object()}}, "Invalid JSON");
  says({{"commands", "system/time"}}, "Invalid JSON");
  // A command that is not an object fails the whole batch: the others are not applied.
  says({{"commands", {event_command("jane@example.com", "consent", "1"), 1}}}, "Invalid JSON");
  says("{oops", "Invalid JSON");
  says(json::array(), "Invalid JSON");
  EXPECT_EQ(events_of("jane@example.com").size(), 2u);
}

TEST_F(ExponeaSim, ABatchHoldsAtMost50Commands) {
  json commands = json::array();
  for (int i = 0; i < 51; ++i) {
    commands.push_back(event_command("jane@example.com", "consent", std::to_string(i)));
  }
  auto r = batch({{"commands", commands}});
  EXPECT_EQ(r.status, 400u);
  const auto body = json::parse(r.body);
  EXPECT_EQ(body["success"], false);
  EXPECT_NE(body["message"].get<std::string>().find("at most 50"), std::string::npos);
  EXPECT_EQ(events_of("jane@example.com").size(), 2u);  // none applied
  commands.erase(commands.size() - 1);
  r = batch({{"commands", commands}});
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["results"].size(), 50u);
  EXPECT_EQ(events_of("jane@example.com").size(), 52u);
}

TEST_F(ExponeaSim, ABatchIsOneRequestForTheRateLimitAndHasItsOwnFaults) {
  auto s = seed();
  s["rate_limit_per_second"] = 2;
  s["write_delay_ms"] = 500;
  reseed(s);
  json commands = json::array();
  for (int i = 0; i < 3; ++i) {
    commands.push_back(event_command("jane@example.com", "consent", std::to_string(i)));
  }
  // Three commands count once: one more request fits in the second, a third does not.
  EXPECT_EQ(batch({{"commands", commands}}).status, 200u);
  EXPECT_EQ(track("jane@example.com").status, 200u);
  EXPECT_EQ(batch({{"commands", commands}}).status, 429u);
  EXPECT_EQ(customers()[0]["events"].size(), 2u);  // the batch's writes are queued too
  clock_->advance(1s);
  EXPECT_EQ(events_of("jane@example.com").size(), 6u);  // the refused batch stored nothing

  ASSERT_EQ(call("POST", "/_sim/faults",
                 R"([{"endpoint":"batch","status":503,"retry_after":"3"},
                     {"endpoint":"batch","drop":true,"apply":true}])")
                .status,
            200u);
  const auto r = batch({{"commands", commands}});
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(header(r, "Retry-After"), "3");
  clock_->advance(1s);
  EXPECT_EQ(batch({{"commands", commands}}).status, 0u);  // applied, answer lost
  clock_->advance(1s);
  EXPECT_EQ(events_of("jane@example.com").size(), 9u);
  const auto calls = sim_->calls();
  EXPECT_EQ(calls[calls.size() - 2]["endpoint"], "batch");
  EXPECT_EQ(calls[calls.size() - 2]["status"], 0);  // no answer
}

TEST_F(ExponeaSim, PrivateKeysAreGrantedEventsPerType) {
  auto s = seed();
  s["private_keys"][0]["permissions"] = json::array({"export"});
  s["private_keys"][0]["events"] = json::array({"privacy_request"});
  reseed(s);
  EXPECT_EQ(json::parse(track("jane@example.com", basic, "privacy_request").body)["success"], true);
  EXPECT_EQ(json::parse(track("jane@example.com", basic, "consent").body), not_authorized);
  EXPECT_EQ(json::parse(track("jane@example.com", basic, "purchase").body), not_authorized);
  // The same grants apply to each command of a batch.
  auto r = batch({{"commands",
                   {event_command("jane@example.com", "purchase", "1"),
                    event_command("jane@example.com", "privacy_request", "2")}}});
  EXPECT_EQ(json::parse(r.body)["results"][0]["success"], false);
  EXPECT_EQ(json::parse(r.body)["results"][1]["success"], true);
  EXPECT_EQ(events_of("jane@example.com").size(), 4u);

  // "*" grants every type, consent too.
  s["private_keys"][0]["events"] = json::array({"*"});
  reseed(s);
  EXPECT_EQ(json::parse(track("jane@example.com", basic, "consent").body)["success"], true);
  // The coarse shorthands keep their meaning: "consent" is the consent type, "track" every
  // other type (ConsentEventsNeedTheConsentPermissionWithBasic shows track without consent).
  s["private_keys"][0].erase("events");
  s["private_keys"][0]["permissions"] = json::array({"consent"});
  reseed(s);
  EXPECT_EQ(json::parse(track("jane@example.com", basic, "consent").body)["success"], true);
  EXPECT_EQ(json::parse(track("jane@example.com", basic, "purchase").body), not_authorized);
  s["private_keys"][0]["permissions"] = json::array({"track"});
  reseed(s);
  EXPECT_EQ(json::parse(track("jane@example.com", basic, "purchase").body)["success"], true);
}

TEST_F(ExponeaSim, UpdatingCustomerPropertiesNeedsThePropertyGrant) {
  const json jane_tier{{"customer_ids", {{"registered", "jane@example.com"}}},
                       {"properties", {{"loyalty_tier", "platinum"}}}};
  // The seed's token may set no property.
  auto r = update(jane_tier);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body),
            (json{{"success", false},
                  {"errors", json::array({"Not authorized to update specified properties"})}}));

  auto s = seed();
  s["public_tokens"][0]["properties"] = json::array({"loyalty_tier", "city"});
  s["write_delay_ms"] = 500;
  reseed(s);
  r = update(jane_tier);
  EXPECT_EQ(json::parse(r.body), (json{{"errors", json::array()}, {"success", true}}));
  EXPECT_EQ(json::parse(export_one("jane@example.com").body)["properties"]["loyalty_tier"],
            "gold");  // queued
  clock_->advance(500ms);
  const auto jane = json::parse(export_one("jane@example.com").body)["properties"];
  EXPECT_EQ(jane["loyalty_tier"], "platinum");
  EXPECT_EQ(jane["first_name"], "Jane");  // the others are kept
  // An unknown ID creates the customer; properties of the wrong type are a 400.
  ASSERT_EQ(update({{"customer_ids", {{"registered", "new@example.com"}}},
                    {"properties", {{"city", "Brno"}}}})
                .status,
            200u);
  r = update({{"customer_ids", {{"registered", "new@example.com"}}}, {"properties", "Brno"}});
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(json::parse(r.body)["errors"][0], "properties must be an object");
  clock_->advance(500ms);
  EXPECT_EQ(json::parse(export_one("new@example.com").body)["properties"],
            (json{{"city", "Brno"}}));
  EXPECT_EQ(sim_->calls()[0]["endpoint"], "customers");
}

TEST_F(ExponeaSim, MalformedControlBodiesAre400AndChangeNothing) {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"/_sim/faults", "[1]"},
      {"/_sim/faults", R"({"endpoint":5})"},
      {"/_sim/faults", R"({"endpoint":"exports"})"},
      {"/_sim/faults", R"({"status":"503"})"},
      {"/_sim/faults", R"({"status":42})"},
      {"/_sim/faults", R"({"count":-1})"},
      {"/_sim/faults", R"({"delay_ms":1.5})"},
      {"/_sim/faults", R"({"drop":"yes"})"},
      {"/_sim/faults", R"([{"endpoint":"track","status":503},{"body":7}])"},
      {"/_sim/settings", "[]"},
      {"/_sim/settings", R"({"latency_ms":"100"})"},
      {"/_sim/settings", R"({"write_delay_ms":-1})"},
      {"/_sim/settings", R"({"latency_ms":100,"rate_limit_per_second":true})"},
      {"/_sim/customers", "{}"},
      {"/_sim/customers", "[]"},
      {"/_sim/customers", R"({"ids":"x@example.com"})"},
      {"/_sim/customers", R"({"ids":{"registered":"x@example.com"},"properties":[]})"},
      {"/_sim/customers", R"({"ids":{"registered":"x@example.com"},"events":{}})"},
      {"/_sim/customers", "{oops"}};
  for (const auto& [path, body] : bad) {
    const auto r = call("POST", path, body, std::nullopt);
    EXPECT_EQ(r.status, 400u) << path << " " << body;
    EXPECT_FALSE(json::parse(r.body)["detail"].get<std::string>().empty()) << path << " " << body;
  }
  // Nothing was queued, changed or added.
  EXPECT_EQ(track("jane@example.com").status, 200u);
  EXPECT_EQ(customers().size(), 2u);
  EXPECT_EQ(json::parse(call("POST", "/_sim/faults", "[]", std::nullopt).body)["faults"], 0);
  EXPECT_EQ(call("POST", "/_sim/settings", R"({"latency_ms":0})", std::nullopt).status, 200u);
}

}  // namespace
}  // namespace dsr::sim
