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
    queue_ = std::make_unique<test::inline_store>(*store_, 3);
    intake_options o;
    o.max_queued_jobs = 3;
    o.custom_field_ids = {{"$internalId", "customer_id"}, {"$phonenumber", "phone"}};
    intake_ = std::make_unique<intake>(queue_->db, credentials_, clock_, o);
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
    queue_->settle();
    EXPECT_TRUE(out) << "the handler must answer";
    return out.value_or(http::response{});
  }

  std::size_t jobs() { return store_->list(std::nullopt, 1000)->size(); }

  test::fake_credentials credentials_;
  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  std::unique_ptr<job_store> store_;
  std::unique_ptr<test::inline_store> queue_;
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
  EXPECT_EQ(j.subject, "Jane@Example.com");
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
  queue_->settle();
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

TEST_F(IntakeTest, MalformedEmailIs400NamingTheFieldWithoutPersonalData) {
  const auto r = post(
      "/v1/mineos/delete",
      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"name":"Jane Doe","email":"jane.doe"}})");
  EXPECT_EQ(r.status, 400u);
  const auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["status"], 400);
  EXPECT_THAT(body["detail"].get<std::string>(), HasSubstr("userInfo.email"));
  EXPECT_THAT(r.body, Not(HasSubstr("Jane")));
  EXPECT_THAT(r.body, Not(HasSubstr("jane.doe")));
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
  queue_->queue.fail_next = true;
  const auto r = post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1"));
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.headers.at(0).name, "Retry-After");
  EXPECT_EQ(jobs(), 0u);
  // The next attempt goes through once the store commits again.
  EXPECT_EQ(post("/v1/mineos/delete", test::webhook_body("trace-1", "req-1")).status, 202u);
}

TEST_F(IntakeTest, IsTestAndPreviewGoToTheirHandlersAndStoreNothing) {
  std::string previewed;
  intake_->on_test([](const test_call&, http::responder done) {
    done(http::json_response(200, {{"test", true}}));
  });
  intake_->on_preview([&](const subject_id& who, http::responder done) {
    previewed = who.value;
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

nlohmann::json delete_body(const std::string& request_id, nlohmann::json request_type,
                           nlohmann::json user = {{"email", "jane@example.com"}}) {
  nlohmann::json request{{"id", request_id}, {"type", "Delete"}};
  if (!request_type.is_null()) {
    request["requestType"] = std::move(request_type);
  }
  return {{"traceId", "trace-" + request_id},
          {"integrationId", "int-42"},
          {"request", std::move(request)},
          {"userInfo", std::move(user)}};
}

TEST_F(IntakeTest, EachRightIsRoutedAndTheRightKeptForTheView) {
  EXPECT_EQ(
      post("/v1/mineos/delete", delete_body("r-del", {{"id", "delete"}, {"name", "Delete"}}).dump())
          .status,
      202u);
  EXPECT_EQ(post("/v1/mineos/delete",
                 delete_body("r-dns", {{"id", "dns"}, {"name", "Do Not Sell"}}).dump())
                .status,
            202u);
  EXPECT_EQ(post("/v1/mineos/copy",
                 delete_body("r-copy", {{"id", "dns"}, {"name", "Do Not Sell"}}).dump())
                .status,
            202u);
  EXPECT_EQ((**store_->find("r-del")).op, operation::delete_);
  const auto dns = **store_->find("r-dns");
  EXPECT_EQ(dns.op, operation::opt_out);
  EXPECT_EQ(dns.request_type, "Do Not Sell");
  EXPECT_EQ(dns.state, job_state::queued);
  EXPECT_EQ((**store_->find("r-copy")).op, operation::copy);  // the copy URL always exports
}

TEST_F(IntakeTest, AnUnhandledRightIsAcceptedAndFailedAtOnceWithoutRunning) {
  const auto r = post("/v1/mineos/delete",
                      delete_body("r-edit", {{"id", "rte"}, {"name", "Right to Edit"}}).dump());
  EXPECT_EQ(r.status, 202u);
  const auto j = **store_->find("r-edit");
  EXPECT_EQ(j.state, job_state::failed);
  EXPECT_EQ(j.op, operation::delete_);
  EXPECT_EQ(to_string(j.outcome), "Failed");
  EXPECT_EQ(j.outcome_message, "request type \"Right to Edit\" is not handled by this integration");
  EXPECT_FALSE(*store_->claim_next("w", clock_->now(), std::chrono::minutes(1)));
  EXPECT_EQ(store_->due_reports(clock_->now(), 10)->size(), 1u);
}

TEST_F(IntakeTest, ARequestWithoutAnyIdentifierIsAcceptedAsMissingIdentifiers) {
  const auto r =
      post("/v1/mineos/delete", delete_body("r-none", nullptr, {{"name", "No Mail"}}).dump());
  EXPECT_EQ(r.status, 202u);
  const auto j = **store_->find("r-none");
  EXPECT_EQ(j.state, job_state::missing_identifiers);
  EXPECT_EQ(to_string(j.outcome), "MissingIdentifiers");
  EXPECT_THAT(j.outcome_message, HasSubstr("$internalId"));
  EXPECT_FALSE(*store_->claim_next("w", clock_->now(), std::chrono::minutes(1)));
  // Even with the queue full (max 3), it is accepted: it never waits in the queue.
  for (const char* id : {"q1", "q2", "q3"}) {
    post("/v1/mineos/delete", test::webhook_body(std::string("t-") + id, id));
  }
  EXPECT_EQ(post("/v1/mineos/delete",
                 delete_body("r-none-2", nullptr, {{"customFields", {{"x", "y"}}}}).dump())
                .status,
            202u);
}

TEST_F(IntakeTest, ACustomFieldStandsInForAMissingEmail) {
  const auto r =
      post("/v1/mineos/copy",
           delete_body("r-cf", nullptr,
                       {{"customFields", {{"$phonenumber", "+420123"}, {"$internalId", "C-1042"}}}})
               .dump());
  EXPECT_EQ(r.status, 202u);
  const auto j = **store_->find("r-cf");
  EXPECT_EQ(j.subject_id_name, "customer_id");
  EXPECT_EQ(j.subject, "C-1042");
  EXPECT_EQ(j.state, job_state::queued);
}

TEST_F(IntakeTest, IdsThatCannotGoIntoAUrlAreRefusedNamingTheField) {
  auto body = delete_body("a/b", nullptr);
  auto r = post("/v1/mineos/delete", body.dump());
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("request.id"));
  body = delete_body("ok-1", nullptr);
  body["integrationId"] = "int 42";
  r = post("/v1/mineos/delete", body.dump());
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("integrationId"));
  EXPECT_EQ(jobs(), 0u);
}

TEST_F(IntakeTest, PreviewWithoutAnyIdentifierIs400NamingTheEmail) {
  intake_->on_preview([](const subject_id&, http::responder done) {
    done(http::json_response(200, {{"records", nlohmann::json::array()}}));
  });
  const auto r = post("/v1/mineos/preview", R"({"traceId":"t","userInfo":{"name":"x"}})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("userInfo.email"));
}

class ReportingIntakeTest : public IntakeTest {
 protected:
  ReportingIntakeTest() {
    intake_options o;
    o.reporting = true;
    o.integration_id = fallback_;
    intake_ = std::make_unique<intake>(queue_->db, credentials_, clock_, o);
    router_ = http::router();
    intake_->add_routes(router_);
  }
  std::string fallback_;
};

TEST_F(ReportingIntakeTest, WithoutAnIntegrationIdADeleteIs400NamingIt) {
  auto body = delete_body("r-1", nullptr);
  body.erase("integrationId");
  const auto r = post("/v1/mineos/delete", body.dump());
  EXPECT_EQ(r.status, 400u);
  EXPECT_THAT(r.body, HasSubstr("integrationId"));
  EXPECT_THAT(r.body, HasSubstr("[mineos] integration_id"));
  EXPECT_EQ(jobs(), 0u);
}

class FallbackIntakeTest : public ReportingIntakeTest {
 protected:
  FallbackIntakeTest() {
    intake_options o;
    o.reporting = true;
    o.integration_id = "int-fallback";
    intake_ = std::make_unique<intake>(queue_->db, credentials_, clock_, o);
    router_ = http::router();
    intake_->add_routes(router_);
  }
};

TEST_F(FallbackIntakeTest, TheConfiguredIntegrationIdStandsInForAMissingOne) {
  auto body = delete_body("r-1", nullptr);
  body.erase("integrationId");
  EXPECT_EQ(post("/v1/mineos/delete", body.dump()).status, 202u);
  EXPECT_EQ((**store_->find("r-1")).integration_id, "int-fallback");
  EXPECT_EQ(post("/v1/mineos/delete", delete_body("r-2", nullptr).dump()).status, 202u);
  EXPECT_EQ((**store_->find("r-2")).integration_id, "int-42");  // the delivery's own wins
}

TEST_F(FallbackIntakeTest, IsTestGetsWhatItsTestStatusCallNeeds) {
  test_call got;
  intake_->on_test([&](const test_call& t, http::responder done) {
    got = t;
    done(http::json_response(200, {{"test", true}}));
  });
  EXPECT_EQ(
      post("/v1/mineos/copy", R"({"traceId":"t","isTest":true,"request":{"id":"tk-1"}})").status,
      200u);
  EXPECT_EQ(got.request_id, "tk-1");
  EXPECT_EQ(got.integration_id, "int-fallback");
  EXPECT_EQ(got.action, mineos_action::copy);
}

}  // namespace
}  // namespace dsr::mineos
