#include "dsr/mineos/intake.hpp"

#include "dsr/mineos/signature.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "fakes/inline_queue.hpp"
#include "support/http_client.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace dsr::mineos {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view webhook_secret = "webhook-secret";

class IntakeTest : public ::testing::Test {
 protected:
  IntakeTest() {
    credentials_.set(credential::mineos_webhook_secret, std::string(webhook_secret));
    store_ = std::move(*open_sqlite_store({":memory:"}));
    queue_ = std::make_unique<test::inline_queue>(*store_, 3);
    intake_ = std::make_unique<intake>(*queue_, credentials_, clock_, 3);
    intake_->add_routes(router_);
  }

  http::response post(std::string_view path, std::string body,
                      std::optional<std::string> signature = std::nullopt) {
    http::request req;
    req.method = "POST";
    req.target = std::string(path);
    req.remote = "192.0.2.1:5000";
    req.headers.push_back({"x-mine-signature", signature.value_or(sign(body, webhook_secret))});
    req.body = std::move(body);
    std::optional<http::response> out;
    router_.handle(std::move(req), [&](http::response r) { out = std::move(r); });
    EXPECT_TRUE(out) << "the handler must answer";
    return out.value_or(http::response{});
  }

  std::size_t jobs() { return store_->list(std::nullopt, 1000)->size(); }

  test::fake_credentials credentials_;
  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  std::unique_ptr<job_store> store_;
  std::unique_ptr<test::inline_queue> queue_;
  std::unique_ptr<intake> intake_;
  http::router router_;
};

TEST_F(IntakeTest, SignedDeleteIsAcceptedAfterTheJobIsStored) {
  const auto r = post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1"));
  EXPECT_EQ(r.status, 202u);
  EXPECT_EQ(nlohmann::json::parse(r.body),
            (nlohmann::json{{"requestId", "req-1"}, {"status", "accepted"}}));
  const auto j = **store_->find("req-1");
  EXPECT_EQ(j.op, operation::delete_);
  EXPECT_EQ(j.trace_id, "trace-1");
  EXPECT_EQ(j.integration_id, "int-42");
  EXPECT_EQ(j.subject_email, "Jane@Example.com");
  EXPECT_EQ(j.received_at, clock_->now());
  EXPECT_TRUE(j.created_at);
}

TEST_F(IntakeTest, OperationComesFromThePath) {
  EXPECT_EQ(post("/v1/mineos/copy", test::webhook_body("trace-1", "req-1")).status, 202u);
  EXPECT_EQ((**store_->find("req-1")).op, operation::copy);
}

TEST_F(IntakeTest, UnsignedOrBadlySignedIsRefusedAndNothingStored) {
  const auto body = test::webhook_body("trace-1", "req-1");
  http::request req;
  req.method = "POST";
  req.target = "/v1/mineos/delete";
  req.body = body;
  std::optional<http::response> unsigned_reply;
  router_.handle(req, [&](http::response r) { unsigned_reply = std::move(r); });
  EXPECT_EQ(unsigned_reply->status, 401u);
  EXPECT_EQ(unsigned_reply->content_type, "application/problem+json");
  EXPECT_EQ(post("/v1/mineos/delete", body, sign(body, "wrong-secret")).status, 401u);
  EXPECT_EQ(post("/v1/mineos/delete", body, "").status, 401u);
  // Signed for another body.
  EXPECT_EQ(post("/v1/mineos/delete", body, sign(body + " ", webhook_secret)).status, 401u);
  EXPECT_EQ(jobs(), 0u);
}

TEST_F(IntakeTest, SignatureIsCheckedBeforeTheBodyIsParsed) {
  EXPECT_EQ(post("/v1/mineos/delete", "not json", "bad").status, 401u);
}

TEST_F(IntakeTest, RotatedSecretsAreAllAccepted) {
  credentials_.set(credential::mineos_webhook_secret, "old-secret\nnew-secret");
  const auto body = test::webhook_body("trace-1", "req-1");
  EXPECT_EQ(post("/v1/mineos/delete", body, sign(body, "old-secret")).status, 202u);
  const auto body2 = test::webhook_body("trace-2", "req-2");
  EXPECT_EQ(post("/v1/mineos/delete", body2, sign(body2, "new-secret")).status, 202u);
  EXPECT_EQ(post("/v1/mineos/delete", body2, sign(body2, std::string(webhook_secret))).status,
            401u);
}

TEST_F(IntakeTest, MalformedJsonIs400) {
  const auto r = post("/v1/mineos/delete", "{\"traceId\": ");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_EQ(jobs(), 0u);
}

TEST_F(IntakeTest, MissingEmailIs400NamingTheFieldWithoutPersonalData) {
  const auto r = post("/v1/mineos/delete",
                      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"name":"Jane Doe"}})");
  EXPECT_EQ(r.status, 400u);
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["status"], 400);
  EXPECT_THAT(body["detail"].get<std::string>(), HasSubstr("userInfo.email"));
  EXPECT_THAT(r.body, Not(HasSubstr("Jane")));
}

TEST_F(IntakeTest, DuplicateAnswersTheOriginalRequestIdAndCreatesNoJob) {
  ASSERT_EQ(post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1")).status, 202u);
  // MineOS retries the same delivery...
  auto r = post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1"));
  EXPECT_EQ(r.status, 202u);
  EXPECT_EQ(nlohmann::json::parse(r.body)["requestId"], "req-1");
  // ...or sends the same request with a new trace id.
  r = post("/v1/mineos/delete", test::webhook_body("trace-2", "req-1"));
  EXPECT_EQ(r.status, 202u);
  EXPECT_EQ(nlohmann::json::parse(r.body)["requestId"], "req-1");
  EXPECT_EQ(jobs(), 1u);
}

TEST_F(IntakeTest, OtherOperationOnTheSameRequestIdIs409) {
  ASSERT_EQ(post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1")).status, 202u);
  const auto r = post("/v1/mineos/copy", test::webhook_body("trace-2", "req-1"));
  EXPECT_EQ(r.status, 409u);
  EXPECT_EQ(jobs(), 1u);
}

TEST_F(IntakeTest, LegacyShapeIsAccepted) {
  const auto r =
      post("/v1/mineos/delete", R"({"EventId":"ev-1","EventType":"WebhookSlim","isTest":"false",)"
                                R"("ticketInfo":{"id":"tk-1","type":"Delete",)"
                                R"("userInfo":{"email":"old@example.com"}}})");
  EXPECT_EQ(r.status, 202u);
  EXPECT_EQ((**store_->find("tk-1")).trace_id, "ev-1");
}

TEST_F(IntakeTest, FullQueueIs503WithRetryAfter) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(post("/v1/mineos/delete",
                   test::webhook_body("t" + std::to_string(i), "r" + std::to_string(i)))
                  .status,
              202u);
  }
  const auto r = post("/v1/mineos/delete", test::webhook_body("t9", "r9"));
  EXPECT_EQ(r.status, 503u);
  ASSERT_FALSE(r.headers.empty());
  EXPECT_EQ(r.headers[0].name, "Retry-After");
  EXPECT_EQ(jobs(), 3u);
}

TEST_F(IntakeTest, StoreThatCannotCommitIs503NeverAccepted) {
  queue_->fail_next = true;
  const auto r = post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1"));
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.headers.at(0).name, "Retry-After");
  EXPECT_EQ(jobs(), 0u);
  // The next attempt goes through once the store commits again.
  EXPECT_EQ(post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1")).status, 202u);
}

TEST_F(IntakeTest, IsTestAndPreviewGoToTheirHandlersAndStoreNothing) {
  std::string previewed;
  intake_->on_test([](http::responder done) { done(http::json_response(200, {{"test", true}})); });
  intake_->on_preview([&](const std::string& email, http::responder done) {
    previewed = email;
    done(http::json_response(200, {{"records", nlohmann::json::array()}}));
  });
  EXPECT_EQ(post("/v1/mineos/delete", R"({"traceId":"t","isTest":"true"})").body,
            R"({"test":true})");
  const auto r = post("/v1/mineos/preview", R"({"traceId":"t2","userInfo":{"email":"a@b.c"}})");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(previewed, "a@b.c");
  // Unsigned test calls are refused like any other.
  EXPECT_EQ(post("/v1/mineos/delete", R"({"traceId":"t","isTest":true})", "bad").status, 401u);
  EXPECT_EQ(jobs(), 0u);
}

TEST_F(IntakeTest, WithoutHandlersPreviewAndIsTestAnswer501AndStoreNothing) {
  EXPECT_EQ(post("/v1/mineos/preview", R"({"traceId":"t","userInfo":{"email":"a@b.c"}})").status,
            501u);
  EXPECT_EQ(post("/v1/mineos/delete", R"({"traceId":"t","isTest":true})").status, 501u);
  EXPECT_EQ(jobs(), 0u);
}

TEST_F(IntakeTest, RefusedSignaturesAreSlowedPerAddressButSignedRequestsNever) {
  std::vector<std::chrono::milliseconds> delays;
  http::auth_throttle throttle(clock_,
                               [&](std::chrono::milliseconds d, std::function<void()> fn) {
                                 delays.push_back(d);
                                 fn();
                               },
                               {.free_failures = 2});
  intake_->set_auth_throttle(&throttle);
  const auto body = test::webhook_body("trace-1", "req-1");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(post("/v1/mineos/delete", body, sign(body, "wrong-secret")).status, 401u);
  }
  EXPECT_EQ(delays.size(), 3u);  // the 3rd, 4th and 5th failures waited, longer each time
  EXPECT_LT(delays[0], delays[1]);
  // The same address (a proxy in front) with a good signature is answered at once.
  EXPECT_EQ(post("/v1/mineos/delete", body).status, 202u);
  EXPECT_EQ(delays.size(), 3u);
  EXPECT_EQ(throttle.failures_total(), 5u);
}

}  // namespace
}  // namespace dsr::mineos
