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
                      std::optional<std::string> auth = basic) {
    http::request req;
    req.method = std::move(method);
    req.target = std::move(path);
    req.body = std::move(body);
    if (auth) {
      req.headers.push_back({"Authorization", *auth});
    }
    http::response out;
    sim_->handle(std::move(req), [&](http::response r) { out = std::move(r); });
    return out;
  }
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

}  // namespace
}  // namespace dsr::sim
