#include "dsr/ops/admin_api.hpp"

#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "fakes/inline_queue.hpp"
#include "support/drain.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace dsr::ops {
namespace {

using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

class AdminApiTest : public ::testing::Test {
 protected:
  AdminApiTest() {
    for (const auto c : all_credentials) {
      credentials_.set(c, std::string(name(c)) + "-value");
    }
    credentials_.set(credential::admin_token, "admin-secret");
    store_ = std::move(*open_sqlite_store({":memory:"}));
    queue_ = std::make_unique<test::inline_store>(*store_);
    api_ = std::make_unique<admin_api>(queue_->db, credentials_,
                                       admin_options{30, exports_.path(), [this] { ++changes_; },
                                                     std::make_shared<test::fake_clock>(t0)});
    api_->add_routes(router_);
    for (int i = 0; i < 3; ++i) {
      new_job j;
      j.op = i == 1 ? operation::copy : operation::delete_;
      j.request_id = "req-" + std::to_string(i);
      j.trace_id = "trace-" + std::to_string(i);
      j.received_at = t0;
      j.subject = "jane@example.com";
      store_->insert(std::span<const new_job>(&j, 1), 100);
    }
  }

  http::response get(std::string target, std::optional<std::string> auth = "Bearer admin-secret") {
    http::request req;
    req.method = "GET";
    req.target = std::move(target);
    if (auth) {
      req.headers.push_back({"authorization", *auth});
    }
    http::response out;
    router_.handle(std::move(req), [&](http::response r) { out = std::move(r); });
    queue_->settle();
    if (out.body_stream) {
      out.body = test::drain(*out.body_stream).value();
    }
    return out;
  }

  http::response post(std::string target) {
    http::request req;
    req.method = "POST";
    req.target = std::move(target);
    req.headers.push_back({"authorization", "Bearer admin-secret"});
    http::response out;
    router_.handle(std::move(req), [&](http::response r) { out = std::move(r); });
    queue_->settle();
    return out;
  }
  // Runs req-N to a final state as a dispatcher would.
  void finish(const std::string& id, job_state state, std::string outcome) {
    auto j = **store_->claim_next("w", t0, std::chrono::minutes(1));
    while (j.request_id != id) {
      store_->release(
          j.id, "w", {job_state::queued, 0, t0 + std::chrono::hours(1), job_outcome::none, ""}, t0);
      j = **store_->claim_next("w", t0, std::chrono::minutes(1));
    }
    store_->release(j.id, "w", {state, 1, t0, parse_job_outcome(outcome).value(), "why"}, t0);
  }

  test::temp_dir exports_;
  int changes_ = 0;
  test::fake_credentials credentials_;
  std::unique_ptr<job_store> store_;
  std::unique_ptr<test::inline_store> queue_;
  std::unique_ptr<admin_api> api_;
  http::router router_;
};

TEST_F(AdminApiTest, HealthzIsCheapAndOpen) {
  const auto r = get("/healthz", std::nullopt);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r.body)["status"], "ok");
}

TEST_F(AdminApiTest, JobApiNeedsTheAdminBearerToken) {
  for (const auto& auth : std::vector<std::optional<std::string>>{
           std::nullopt, "Bearer wrong", "Bearer admin-secre", "Bearer admin-secretX",
           "Basic admin-secret", "admin-secret", "Bearer "}) {
    const auto r = get("/v1/requests/req-0", auth);
    EXPECT_EQ(r.status, 401u) << auth.value_or("(none)");
    EXPECT_EQ(r.body.find("req-0"), std::string::npos);
  }
  EXPECT_EQ(get("/v1/requests/req-0", "bearer admin-secret").status, 200u);
}

TEST_F(AdminApiTest, ShowsOneJobWithoutTheEmail) {
  const auto r = get("/v1/requests/req-1");
  ASSERT_EQ(r.status, 200u);
  const auto v = nlohmann::json::parse(r.body);
  EXPECT_EQ(v["requestId"], "req-1");
  EXPECT_EQ(v["operation"], "copy");
  EXPECT_EQ(v["state"], "queued");
  EXPECT_EQ(r.body.find("jane"), std::string::npos);
  EXPECT_EQ(get("/v1/requests/unknown").status, 404u);
}

TEST_F(AdminApiTest, ListsNewestFirstWithFilters) {
  auto v = nlohmann::json::parse(get("/v1/requests").body);
  ASSERT_EQ(v["requests"].size(), 3u);
  EXPECT_EQ(v["requests"][0]["requestId"], "req-2");
  v = nlohmann::json::parse(get("/v1/requests?limit=1").body);
  EXPECT_EQ(v["requests"].size(), 1u);
  v = nlohmann::json::parse(get("/v1/requests?state=queued").body);
  EXPECT_EQ(v["requests"].size(), 3u);
  v = nlohmann::json::parse(get("/v1/requests?state=failed").body);
  EXPECT_EQ(v["requests"].size(), 0u);
  EXPECT_EQ(get("/v1/requests?state=bogus").status, 400u);
  EXPECT_EQ(get("/v1/requests?limit=0").status, 400u);
  EXPECT_EQ(get("/v1/requests?limit=1001").status, 400u);
  EXPECT_EQ(get("/v1/requests?limit=ten").status, 400u);
}

TEST_F(AdminApiTest, ReadyzReportsAStoreThatCannotCommit) {
  EXPECT_EQ(get("/readyz", std::nullopt).status, 200u);
  queue_->queue.fail_next = true;
  queue_->queue.insert(new_job{}, [](result<insert_outcome>) {});
  const auto r = get("/readyz", std::nullopt);
  EXPECT_EQ(r.status, 503u);
  const auto v = nlohmann::json::parse(r.body);
  EXPECT_EQ(v["status"], "not ready");
  EXPECT_NE(v["reason"].get<std::string>().find("store"), std::string::npos);
}

TEST_F(AdminApiTest, MetricsAreNotAvailableYet) {
  EXPECT_EQ(get("/metrics", std::nullopt).status, 501u);
}

TEST_F(AdminApiTest, CancelAQueuedJobOnly) {
  EXPECT_EQ(post("/v1/requests/req-0/cancel").status, 202u);
  const auto v = nlohmann::json::parse(get("/v1/requests/req-0").body);
  EXPECT_EQ(v["state"], "cancelled");
  EXPECT_EQ(v["outcome"], "Failed");
  EXPECT_EQ(post("/v1/requests/req-0/cancel").status, 409u);  // already cancelled
  EXPECT_EQ(post("/v1/requests/nope/cancel").status, 404u);
  EXPECT_EQ(changes_, 1);
}

TEST_F(AdminApiTest, RetryRequeuesAFailedJobOrResendsAnUnacknowledgedReport) {
  finish("req-0", job_state::failed, "Failed");
  EXPECT_EQ(post("/v1/requests/req-0/retry").status, 202u);
  auto v = nlohmann::json::parse(get("/v1/requests/req-0").body);
  EXPECT_EQ(v["state"], "queued");
  EXPECT_EQ(v["attempts"], 0);

  finish("req-2", job_state::completed, "Completed");
  auto due = store_->due_reports(t0, 10);
  ASSERT_EQ(due->size(), 1u);
  store_->record_report((*due)[0].id, {false, "MineOS answered 404", 12, t0, true}, t0);
  ASSERT_TRUE(store_->due_reports(t0 + std::chrono::hours(1), 10)->empty());  // given up
  const auto r = post("/v1/requests/req-2/retry");
  EXPECT_EQ(r.status, 202u);
  EXPECT_EQ(nlohmann::json::parse(r.body)["status"], "report resent");
  EXPECT_EQ(store_->due_reports(t0 + std::chrono::hours(1), 10)->size(), 1u);

  EXPECT_EQ(post("/v1/requests/req-1/retry").status, 409u);  // queued: nothing to retry
}

TEST_F(AdminApiTest, DataServesAKeptExportOnly) {
  EXPECT_EQ(get("/v1/requests/req-1/data").status, 404u);
  const auto id = (**store_->find("req-1")).id;
  exports_.write(std::to_string(id) + ".json", R"({"ids":{},"properties":{"a":1},"events":[]})");
  const auto r = get("/v1/requests/req-1/data");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(nlohmann::json::parse(r.body)["properties"]["a"], 1);
  EXPECT_EQ(get("/v1/requests/req-0/data").status, 404u);  // a delete job has no export
  EXPECT_EQ(get("/v1/requests/req-1/data", std::nullopt).status, 401u);
}

TEST_F(AdminApiTest, RefusedTokensAreSlowedPerAddressButAuthorizedCallsNever) {
  std::vector<std::chrono::milliseconds> delays;
  http::auth_throttle throttle(std::make_shared<test::fake_clock>(),
                               [&](std::chrono::milliseconds d, std::function<void()> fn) {
                                 delays.push_back(d);
                                 fn();
                               },
                               {.free_failures = 2});
  admin_options o{30, exports_.path(), [] {}};
  o.throttle = &throttle;
  api_ = std::make_unique<admin_api>(queue_->db, credentials_, o);
  router_ = http::router{};
  api_->add_routes(router_);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(get("/v1/requests", "Bearer wrong").status, 401u);
  }
  EXPECT_EQ(delays.size(), 3u);  // the 3rd, 4th and 5th failures waited
  EXPECT_EQ(get("/v1/requests").status, 200u);
  EXPECT_EQ(delays.size(), 3u);  // the right token is never slowed
  EXPECT_EQ(throttle.failures_total(), 5u);
}

}  // namespace
}  // namespace dsr::ops
