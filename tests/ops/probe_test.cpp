#include "dsr/ops/probe.hpp"

#include "dsr/sim/exponea_sim.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "fakes/handler_client.hpp"
#include "support/run_sync.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

namespace dsr::exponea {
namespace {

using json = nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using status = check::status;

json seed() {
  std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
  auto s = json::parse(in);
  s["write_delay_ms"] = 0;
  return s;
}

class ProbeTest : public ::testing::Test {
 protected:
  ProbeTest() {
    creds_.set(credential::exponea_api_key, "demo-api-key")
        .set(credential::exponea_api_secret, "demo-api-secret")
        .set(credential::exponea_project_token, "demo-project-token")
        .set(credential::exponea_api_token, "demo-api-token");
  }
  std::vector<check> run(json s = seed()) {
    sim_ = std::make_unique<sim::exponea_simulator>(s, clock_, [](auto, auto fn) { fn(); });
    auto a = make_api(std::make_unique<test::handler_client>(*sim_), creds_, clock_);
    return test::run_sync(ioc_, run_checks(*a, cfg_, {}));
  }
  // With reporting on: the simulator plays MineOS too; `test` is an isTest delivery's ticket.
  std::vector<check> run_with_mineos(std::optional<mineos::test_call> test, json s = seed()) {
    sim_ = std::make_unique<sim::exponea_simulator>(s, clock_, [](auto, auto fn) { fn(); });
    auto a = make_api(std::make_unique<test::handler_client>(*sim_), creds_, clock_);
    test::handler_client mineos(*sim_);
    cfg_.mineos.api_base_url = "https://api.portal.saymine.com";
    return test::run_sync(ioc_, run_checks(*a, cfg_, {&mineos, &creds_, std::move(test)}));
  }
  json mineos_calls() const { return sim_->reports(); }
  static const check& named(const std::vector<check>& cs, std::string_view part) {
    for (const auto& c : cs) {
      if (c.name.find(part) != std::string::npos) {
        return c;
      }
    }
    throw std::runtime_error("no such check");
  }
  static std::vector<std::string> failed_values(const std::vector<check>& cs) {
    std::vector<std::string> out;
    for (const auto& c : cs) {
      if (c.result == status::failed) {
        out.push_back(c.detail);
      }
    }
    return out;
  }

  boost::asio::io_context ioc_;
  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  test::fake_credentials creds_;
  config cfg_;
  std::unique_ptr<sim::exponea_simulator> sim_;
};

TEST_F(ProbeTest, GoodValuesPassAndWhatNeedsAWriteIsSkipped) {
  const auto checks = run();
  EXPECT_TRUE(all_passed(checks)) << checks_text(checks);
  EXPECT_EQ(named(checks, "base_url").result, status::ok);
  EXPECT_EQ(named(checks, "exponea_api_key + exponea_api_secret").result, status::ok);
  EXPECT_EQ(named(checks, "exponea_api_token (system/time)").result, status::ok);
  EXPECT_EQ(named(checks, "Export customer").result, status::ok);
  EXPECT_EQ(named(checks, "Anonymize customer").result, status::skipped);
  EXPECT_EQ(named(checks, "may track").result, status::skipped);
  EXPECT_EQ(named(checks, "mineos_api_key").result, status::skipped);
  EXPECT_EQ(named(checks, "api_base_url").result, status::skipped);
  EXPECT_EQ(named(checks, "[consent] categories").result, status::skipped);
  EXPECT_THAT(named(checks, "[consent] categories").detail, HasSubstr("opt-out requests"));
  // Nothing was written: only reads went to Exponea.
  for (const auto& c : sim_->calls()) {
    EXPECT_THAT(c["endpoint"].get<std::string>(),
                ::testing::AnyOf("system/time", "export-one", "consent/categories"));
  }
  EXPECT_EQ(sim_->state().size(), 2u);
}

struct bad_value {
  credential which;
  std::string value;
  std::string named;  // the value the failure must name
};

TEST_F(ProbeTest, EachWrongValueFailsNamingExactlyThatValue) {
  for (const auto& b :
       std::vector<bad_value>{{credential::exponea_api_secret, "wrong", "exponea_api_secret"},
                              {credential::exponea_api_key, "wrong", "exponea_api_key"},
                              {credential::exponea_project_token, "wrong", "exponea_project_token"},
                              {credential::exponea_api_token, "wrong", "exponea_api_token"}}) {
    ProbeTest::SetUp();
    creds_.set(credential::exponea_api_key, "demo-api-key")
        .set(credential::exponea_api_secret, "demo-api-secret")
        .set(credential::exponea_project_token, "demo-project-token")
        .set(credential::exponea_api_token, "demo-api-token")
        .set(b.which, b.value);
    const auto checks = run();
    const auto failures = failed_values(checks);
    ASSERT_FALSE(failures.empty()) << b.named;
    for (const auto& f : failures) {
      EXPECT_THAT(f, HasSubstr(b.named + " rejected")) << checks_text(checks);
    }
    for (const char* s : {"demo-api-secret", "demo-project-token", "demo-api-token"}) {
      EXPECT_THAT(checks_text(checks), Not(HasSubstr(s)));
    }
  }
}

TEST_F(ProbeTest, MissingExportPermissionIsNamed) {
  auto s = seed();
  s["private_keys"][0]["permissions"] = json::array({"anonymize"});
  const auto checks = run(s);
  EXPECT_EQ(named(checks, "Export customer").result, status::failed);
  EXPECT_THAT(named(checks, "Export customer").detail, HasSubstr("GDPR > Export customer"));
  EXPECT_EQ(failed_values(checks).size(), 1u);
}

TEST_F(ProbeTest, UnreachableBaseUrlFailsThatCheckAndSkipsTheRest) {
  cfg_.exponea.base_url = "http://127.0.0.1:1";
  auto client =
      http::make_client(ioc_.get_executor(), {cfg_.exponea.base_url, std::chrono::seconds(5)});
  auto a = make_api(std::move(*client), creds_, clock_);
  const auto checks = test::run_sync(ioc_, run_checks(*a, cfg_, {}));
  EXPECT_EQ(named(checks, "base_url").result, status::failed);
  EXPECT_THAT(named(checks, "base_url").detail, HasSubstr("127.0.0.1"));
  EXPECT_EQ(failed_values(checks).size(), 1u);
  EXPECT_EQ(named(checks, "exponea_api_token (system/time)").result, status::skipped);
}

TEST_F(ProbeTest, ConsentCategoriesThatExistAndAcceptThePrivateApiPass) {
  cfg_.consent.categories = {"marketing", "personalisation"};
  const auto checks = run();
  EXPECT_EQ(named(checks, "[consent] categories").result, status::ok) << checks_text(checks);
}

TEST_F(ProbeTest, AWrongConsentCategoryIsNamed) {
  cfg_.consent.categories = {"marketing", "marketting"};
  const auto checks = run();
  const auto& c = named(checks, "[consent] categories");
  EXPECT_EQ(c.result, status::failed);
  EXPECT_THAT(c.detail, HasSubstr("\"marketting\" is not a consent category"));
  EXPECT_THAT(c.detail, Not(HasSubstr("\"marketing\" is not")));
  EXPECT_THAT(c.detail, HasSubstr("marketing, personalisation, newsletter"));  // what exists
}

TEST_F(ProbeTest, AConsentCategoryClosedToThePrivateApiIsNamed) {
  cfg_.consent.categories = {"newsletter"};
  const auto checks = run();
  const auto& c = named(checks, "[consent] categories");
  EXPECT_EQ(c.result, status::failed);
  EXPECT_THAT(c.detail, AllOf(HasSubstr("\"newsletter\""), HasSubstr("private_api")));
}

TEST_F(ProbeTest, CheckWithoutATicketReachesMineOsAndSkipsTheKey) {
  const auto checks = run_with_mineos(std::nullopt);
  EXPECT_EQ(named(checks, "[mineos] api_base_url").result, status::ok);
  EXPECT_EQ(named(checks, "mineos_api_key").result, status::skipped);
  EXPECT_TRUE(mineos_calls().empty());  // check writes nothing to MineOS
}

TEST_F(ProbeTest, IsTestSendsOneTestStatusCallThatProvesTheKey) {
  creds_.set(credential::mineos_api_key, "mineos-key-SECRET");
  const auto checks = run_with_mineos(mineos::test_call{"req-test", "int-42", mineos_action::copy});
  EXPECT_EQ(named(checks, "mineos_api_key").result, status::ok) << checks_text(checks);
  const auto calls = mineos_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["status"], 200);
  EXPECT_EQ(calls[0]["ticket_id"], "req-test");
  EXPECT_EQ(calls[0]["integration_id"], "int-42");
  EXPECT_EQ(json::parse(calls[0]["body"].get<std::string>()),
            (json{{"action", "Copy"},
                  {"status", "Completed"},
                  {"message", "dsr-connector test"},
                  {"test", true}}));
}

TEST_F(ProbeTest, IsTestNamesARejectedKeyOrAnUnknownIntegration) {
  creds_.set(credential::mineos_api_key, "wrong-key");
  auto checks = run_with_mineos(mineos::test_call{"req-test", "int-42", mineos_action::delete_});
  EXPECT_EQ(named(checks, "mineos_api_key").result, status::failed);
  EXPECT_THAT(named(checks, "mineos_api_key").detail, HasSubstr("mineos_api_key rejected"));
  EXPECT_THAT(checks_text(checks), Not(HasSubstr("wrong-key")));

  creds_.set(credential::mineos_api_key, "mineos-key-SECRET");
  checks = run_with_mineos(mineos::test_call{"req-test", "int-unknown", mineos_action::delete_});
  EXPECT_EQ(named(checks, "mineos_api_key").result, status::failed);
  EXPECT_THAT(named(checks, "mineos_api_key").detail,
              AllOf(HasSubstr("404"), HasSubstr("integrationId int-unknown")));
}

TEST_F(ProbeTest, IsTestWithoutATicketKeepsTheKeySkipped) {
  creds_.set(credential::mineos_api_key, "mineos-key-SECRET");
  const auto checks = run_with_mineos(mineos::test_call{"", "int-42", mineos_action::delete_});
  EXPECT_EQ(named(checks, "mineos_api_key").result, status::skipped);
  EXPECT_THAT(named(checks, "mineos_api_key").detail, HasSubstr("request.id"));
  EXPECT_TRUE(mineos_calls().empty());
}

TEST_F(ProbeTest, IsTestBodyHasTheContractShape) {
  const auto body = checks_json(run());
  EXPECT_EQ(body["test"], true);
  EXPECT_EQ(body["ok"], true);
  ASSERT_FALSE(body["checks"].empty());
  EXPECT_TRUE(body["checks"][0].contains("name"));
  EXPECT_EQ(body["checks"][0]["status"], "ok");
  EXPECT_TRUE(body["checks"][0].contains("detail"));
}

TEST(Preview, RecordsSummariseTheCustomer) {
  export_summary e;
  e.properties = 2;
  e.events = 2;
  e.last_event_at = 1764236000.5;
  const auto r = preview_records(e);
  ASSERT_EQ(r["records"].size(), 1u);
  EXPECT_EQ(r["records"][0]["name"], "Bloomreach customer");
  EXPECT_EQ(r["records"][0]["properties"],
            (json::array({{{"name", "properties"}, {"value", "2"}},
                          {{"name", "events"}, {"value", "2"}},
                          {{"name", "last event"}, {"value", "2025-11-27T09:33:20.500Z"}}})));
  EXPECT_EQ(preview_records(std::nullopt), (json{{"records", json::array()}}));
  EXPECT_EQ(preview_records(export_summary{})["records"][0]["properties"][2]["value"], "");
}

}  // namespace
}  // namespace dsr::exponea
