// The jobs' API with api_options::bulk: calls that wait for the same turn share one request
// (`batch` of tracking commands, `anonymize_bulk`), each answered on its own, over the simulator.

#include "dsr/exponea/client.hpp"
#include "dsr/sim/exponea_sim.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "fakes/handler_client.hpp"
#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <fstream>

namespace dsr {
namespace {

using json = nlohmann::json;
using testing::HasSubstr;

json seed() {
  std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
  auto s = json::parse(in);
  s["write_delay_ms"] = 0;
  auto& customers = s["customers"];
  for (int i = 0; i < 60; ++i) {
    customers.push_back({{"ids", {{"registered", fmt::format("c{}@example.com", i)}}},
                         {"properties", {{"first_name", "C"}}},
                         {"events", json::array()}});
  }
  return s;
}

class BulkTest : public ::testing::Test {
 protected:
  BulkTest() : sim_(seed(), clock_, [](auto, auto fn) { fn(); }) {
    creds_.set(credential::exponea_api_key, "demo-api-key")
        .set(credential::exponea_api_secret, "demo-api-secret")
        .set(credential::exponea_project_token, "demo-project-token")
        .set(credential::exponea_api_token, "demo-api-token");
    exponea::api_options o{dir_.path(), 1024 * 1024};
    o.bulk = true;
    api_ = exponea::make_api(std::make_unique<test::handler_client>(sim_), creds_, clock_, o);
  }

  static json ids(int i) { return {{"registered", fmt::format("c{}@example.com", i)}}; }
  static exponea::event audit(int i) {
    return {"privacy_request", 1700000000, {{"request_id", fmt::format("req-{}", i)}}};
  }

  // Starts `n` calls at once (they all wait for the same turn), call(i) each, and runs them.
  template <class T, class Call>
  std::vector<exponea::outcome<T>> together(int n, Call call) {
    std::vector<std::optional<exponea::outcome<T>>> got(n);
    for (int i = 0; i < n; ++i) {
      boost::asio::co_spawn(
          ioc_,
          [i, &got, &call]() -> boost::asio::awaitable<void> {
            auto r = co_await call(i);
            got[i] = std::move(r);
          },
          boost::asio::detached);
    }
    ioc_.run();
    ioc_.restart();
    std::vector<exponea::outcome<T>> out;
    for (auto& g : got) {
      out.push_back(std::move(g.value()));
    }
    return out;
  }
  std::vector<exponea::outcome<void>> track_together(int n, exponea::before_send go = {}) {
    return together<void>(
        n, [&](int i) { return api_->track(ids(i), audit(i), exponea::auth::token, go); });
  }
  std::vector<exponea::outcome<bool>> anonymize_together(int n) {
    return together<bool>(n, [&](int i) { return api_->anonymize(ids(i)); });
  }

  std::vector<json> calls_to(const std::string& endpoint) {
    std::vector<json> out;
    for (const auto& c : sim_.calls()) {
      if (c["endpoint"] == endpoint) {
        out.push_back(c);
      }
    }
    return out;
  }
  int audit_events(int i) {
    int n = 0;
    for (const auto& c : sim_.state()) {
      for (const auto& e : c["events"]) {
        n += e["type"] == "privacy_request" &&
                     e["properties"].value("request_id", "") == fmt::format("req-{}", i)
                 ? 1
                 : 0;
      }
    }
    return n;
  }
  int holders(int i) {
    int n = 0;
    for (const auto& c : sim_.state()) {
      n += c["ids"].value("registered", "") == fmt::format("c{}@example.com", i) ? 1 : 0;
    }
    return n;
  }
  void fault(const json& f) {
    http::request req;
    req.method = "POST";
    req.target = "/_sim/faults";
    req.body = f.dump();
    unsigned status = 0;
    sim_.handle(req, [&](http::response r) { status = r.status; });
    ASSERT_EQ(status, 200u);
  }

  boost::asio::io_context ioc_;
  test::temp_dir dir_;
  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  sim::exponea_simulator sim_;
  test::fake_credentials creds_;
  std::unique_ptr<exponea::api> api_;
};

TEST_F(BulkTest, ALoneCallGoesAsItIs) {
  const auto got = track_together(1);
  ASSERT_TRUE(got[0]) << got[0].error().message;
  EXPECT_EQ(calls_to("track").size(), 1u);
  EXPECT_TRUE(calls_to("batch").empty());
  EXPECT_EQ(audit_events(0), 1);
}

TEST_F(BulkTest, CallsWaitingTogetherGoAsOneBatchEachAnsweredOnItsOwn) {
  const auto got = track_together(5);
  for (const auto& g : got) {
    EXPECT_TRUE(g) << g.error().message;
  }
  ASSERT_EQ(calls_to("batch").size(), 1u);
  EXPECT_TRUE(calls_to("track").empty());
  const auto body = json::parse(calls_to("batch")[0]["body"].get<std::string>());
  EXPECT_EQ(body["commands"].size(), 5u);
  EXPECT_EQ(calls_to("batch")[0]["auth"], "token");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(audit_events(i), 1);
  }
}

TEST_F(BulkTest, ABatchHoldsAtMostFiftyCommands) {
  const auto got = track_together(60);
  for (const auto& g : got) {
    EXPECT_TRUE(g) << g.error().message;
  }
  const auto batches = calls_to("batch");
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(json::parse(batches[0]["body"].get<std::string>())["commands"].size(), 50u);
  EXPECT_EQ(json::parse(batches[1]["body"].get<std::string>())["commands"].size(), 10u);
}

TEST_F(BulkTest, ACommandRefusedInsideTheBatchFailsOnlyItsCall) {
  fault({{"endpoint", "track"},
         {"request_id", "req-2"},
         {"body", "At least one valid id should be specified"}});
  const auto got = track_together(4);
  ASSERT_EQ(calls_to("batch").size(), 1u);
  for (int i = 0; i < 4; ++i) {
    if (i == 2) {
      ASSERT_FALSE(got[i]);
      EXPECT_EQ(got[i].error().kind, exponea::answer_class::failed);
      EXPECT_THAT(got[i].error().message, HasSubstr("At least one valid id"));
      EXPECT_EQ(audit_events(i), 0);
    } else {
      EXPECT_TRUE(got[i]) << got[i].error().message;
      EXPECT_EQ(audit_events(i), 1);
    }
  }
}

TEST_F(BulkTest, AWholeBatchRefusedWith4xxIsSentAgainAsOneCallEach) {
  fault({{"endpoint", "batch"},
         {"status", 400},
         {"body", R"({"success":false,"message":"Invalid JSON"})"}});
  const auto got = track_together(3);
  for (const auto& g : got) {
    EXPECT_TRUE(g) << g.error().message;
  }
  EXPECT_EQ(calls_to("batch").size(), 1u);
  EXPECT_EQ(calls_to("track").size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(audit_events(i), 1);
  }
}

TEST_F(BulkTest, ATransientFailureOfTheBatchIsEveryCallsAnswer) {
  fault({{"endpoint", "batch"}, {"status", 503}});
  const auto got = track_together(3);
  for (const auto& g : got) {
    ASSERT_FALSE(g);
    EXPECT_EQ(g.error().kind, exponea::answer_class::transient);
  }
  EXPECT_TRUE(calls_to("track").empty());  // not sent again one by one: the jobs retry
}

TEST_F(BulkTest, ACallItsJournalHoldsBackIsNotSentAndTheOthersAre) {
  int asked = 0;
  exponea::before_send go = [&asked]() -> boost::asio::awaitable<bool> {
    co_return ++asked != 2;  // the second call's journal line cannot be written
  };
  const auto got = track_together(3, go);
  EXPECT_EQ(asked, 3);
  int refused = 0;
  for (const auto& g : got) {
    refused += g ? 0 : 1;
  }
  EXPECT_EQ(refused, 1);
  ASSERT_EQ(calls_to("batch").size(), 1u);
  EXPECT_EQ(json::parse(calls_to("batch")[0]["body"].get<std::string>())["commands"].size(), 2u);
}

TEST_F(BulkTest, AnonymizeCallsWaitingTogetherGoAsOneBulk) {
  const auto got = anonymize_together(4);
  for (const auto& g : got) {
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_TRUE(*g);
  }
  ASSERT_EQ(calls_to("anonymize_bulk").size(), 1u);
  EXPECT_TRUE(calls_to("anonymize").empty());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(holders(i), 0);
  }
  EXPECT_EQ(holders(5), 1);  // not in the bulk
}

TEST_F(BulkTest, AnAnonymizeBulkRefusedForPermissionIsEveryCallsRejection) {
  fault({{"endpoint", "anonymize_bulk"},
         {"status", 403},
         {"body", R"({"success":false,"error":"No permission to anonymize customer"})"}});
  const auto got = anonymize_together(2);
  for (const auto& g : got) {
    ASSERT_FALSE(g);
    EXPECT_EQ(g.error().kind, exponea::answer_class::rejected);
    EXPECT_THAT(g.error().value, HasSubstr("Anonymize customer"));
  }
  EXPECT_TRUE(calls_to("anonymize").empty());
}

}  // namespace
}  // namespace dsr
