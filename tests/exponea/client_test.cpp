#include "dsr/exponea/client.hpp"

#include "dsr/http/body_source.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/time.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "support/drain.hpp"
#include "support/run_sync.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <mutex>

namespace dsr::exponea {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(ExponeaErrorText, ReadsEveryBodyShape) {
  EXPECT_EQ(error_text(R"({"success":false,"error":"Could not authenticate"})"),
            "Could not authenticate");
  EXPECT_EQ(error_text(R"({"success":false,"errors":["a","b"]})"), "a; b");
  EXPECT_EQ(error_text(R"({"success":false,"errors":{"_global":["Customer does not exist"]}})"),
            "Customer does not exist");
  EXPECT_EQ(error_text(R"({"success":false,"message":"Invalid JSON"})"), "Invalid JSON");
  EXPECT_EQ(error_text("  BadRequest: The browser (or proxy) sent a request\n"),
            "BadRequest: The browser (or proxy) sent a request");
  EXPECT_EQ(error_text(""), "");
  EXPECT_EQ(error_text(std::string(1000, 'x')).size(), 300u);
}

TEST(ExponeaErrorText, IsCutOnACharacterAndCleanedOfControlCharacters) {
  // 299 ASCII bytes and an "é": a byte cut would leave half of it, which json::dump throws on.
  const auto cut = error_text(R"({"error":")" + std::string(299, 'x') + "\u00e9\"}");
  EXPECT_EQ(cut, std::string(299, 'x'));
  EXPECT_NO_THROW((void)nlohmann::json(cut).dump());
  EXPECT_EQ(error_text(std::string(299, 'y') + "\xC3\xA9"), std::string(299, 'y'));
  // ESC/OSC sequences from a peer never reach a terminal through the journal, log or CLI.
  const auto text = error_text(R"({"error":"\u001b]8;;http://x\u0007No permission\u001b[0m"})");
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\x07'), std::string::npos);
  EXPECT_THAT(text, HasSubstr("No permission"));
  EXPECT_EQ(error_text("bad \xFF byte"), "bad \xEF\xBF\xBD byte");
}

struct row {
  unsigned status;
  std::string body;
  auth used;
  endpoint ep;
  answer_class expected;
  std::string value;  // substring expected in the named value ("" = none expected)
};

// The contract's classes, row by row (docs/contract.md §5, reference exponea-api.md §2.3).
const std::vector<row> table{
    {200, R"({"success":true,"ids":{}})", auth::basic, endpoint::export_one, answer_class::ok, ""},
    {200, R"({"errors":[],"success":true})", auth::token, endpoint::track, answer_class::ok, ""},
    {200, "", auth::basic, endpoint::anonymize, answer_class::ok, ""},
    {200, R"({"success":false,"errors":["Not authorized to add event of specified type"]})",
     auth::token, endpoint::track, answer_class::rejected, "exponea_api_token"},
    {200, R"({"success":false,"errors":["At least one valid id should be specified"]})",
     auth::token, endpoint::track, answer_class::failed, ""},
    {429, "Too many requests", auth::token, endpoint::track, answer_class::transient, ""},
    {500, "oops", auth::basic, endpoint::export_one, answer_class::transient, ""},
    {502, "", auth::basic, endpoint::anonymize, answer_class::transient, ""},
    {503, "", auth::basic, endpoint::anonymize, answer_class::transient, ""},
    {400, R"({"success":false,"error":"Could not authenticate"})", auth::basic,
     endpoint::export_one, answer_class::rejected, "exponea_project_token"},
    {400, R"({"success":false,"error":"Invalid project id"})", auth::token, endpoint::track,
     answer_class::rejected, "exponea_project_token"},
    {401, R"({"success":false,"error":"Access key not found"})", auth::basic, endpoint::system_time,
     answer_class::rejected, "exponea_api_key"},
    {401, "Access key not provided", auth::token, endpoint::system_time, answer_class::rejected,
     "exponea_api_token"},
    {403, R"({"success":false,"error":"invalid secret"})", auth::basic, endpoint::anonymize,
     answer_class::rejected, "exponea_api_secret"},
    {403, R"({"success":false,"error":"No permission to export customer"})", auth::basic,
     endpoint::export_one, answer_class::rejected, "GDPR > Export customer"},
    {403, R"({"success":false,"error":"No permission"})", auth::basic, endpoint::anonymize,
     answer_class::rejected, "GDPR > Anonymize customer"},
    {403, "Forbidden", auth::token, endpoint::track, answer_class::rejected, "exponea_api_token"},
    {404, R"({"success":false,"errors":{"_global":["Customer does not exist"]}})", auth::basic,
     endpoint::export_one, answer_class::not_found, ""},
    {404, R"({"success":false,"error":"Customer does not exist"})", auth::basic,
     endpoint::anonymize, answer_class::not_found, ""},
    {404, "The requested URL was not found on the server", auth::basic, endpoint::export_one,
     answer_class::failed, ""},
    {400, R"({"success":false,"message":"Invalid JSON"})", auth::basic, endpoint::anonymize,
     answer_class::failed, ""},
    {413, "", auth::token, endpoint::track, answer_class::failed, ""},
};

TEST(ExponeaClassify, EveryRowOfTheTable) {
  const time_point now{};
  for (const auto& r : table) {
    const auto c = classify(r.status, r.body, std::nullopt, r.used, r.ep, now);
    EXPECT_EQ(c.kind, r.expected) << r.status << " " << r.body;
    EXPECT_EQ(c.status, r.status);
    if (!r.value.empty()) {
      EXPECT_THAT(c.value, HasSubstr(r.value)) << r.status << " " << r.body;
    }
    if (r.expected != answer_class::ok && !error_text(r.body).empty()) {
      EXPECT_THAT(c.message, HasSubstr(error_text(r.body)));  // Exponea's own text is reported
    }
  }
}

TEST(ExponeaClassify, RetryAfterInSecondsOrAsAnHttpDate) {
  const auto now = *parse_rfc3339("2026-11-29T10:00:00Z");
  auto c = classify(429, "", "7", auth::token, endpoint::track, now);
  EXPECT_EQ(c.retry_after, 7s);
  c = classify(503, "", "Sun, 29 Nov 2026 10:01:30 GMT", auth::basic, endpoint::export_one, now);
  EXPECT_EQ(c.retry_after, 90s);
  c = classify(429, "", "soon", auth::token, endpoint::track, now);
  EXPECT_FALSE(c.retry_after);
}

TEST(ExponeaClassify, RetryReasonsNameWhatWentWrong) {
  const auto now = time_point{};
  EXPECT_EQ(to_string(reason_of(classify(429, "", "3", auth::basic, endpoint::track, now))),
            "rate_limited");
  EXPECT_EQ(
      to_string(reason_of(classify(503, "", std::nullopt, auth::basic, endpoint::track, now))),
      "server_error");
  EXPECT_EQ(
      to_string(reason_of(classify(make_failure(errc::upstream_timeout, "x y: timed out (see)")))),
      "timeout");
  EXPECT_EQ(to_string(reason_of(
                classify(make_failure(errc::upstream_unreachable, "connection refused")))),
            "network");
}

TEST(ExponeaClassify, TransportFailuresAreTransientExceptOversizedAnswers) {
  EXPECT_EQ(classify(make_failure(errc::upstream_timeout, "t")).kind, answer_class::transient);
  EXPECT_EQ(classify(make_failure(errc::upstream_unreachable, "u")).kind, answer_class::transient);
  EXPECT_EQ(classify(make_failure(errc::upstream_too_large, "big")).kind, answer_class::failed);
}

// A loopback Exponea that records each call and answers from a script.
class scripted_exponea final : public http::handler {
 public:
  struct call {
    std::string method, target, authorization, body;
  };
  void handle(http::request req, http::responder done) override {
    const std::lock_guard lock(mutex_);
    calls.push_back(
        {req.method, req.target, std::string(req.header("Authorization").value_or("")), req.body});
    done(next);
  }
  std::vector<call> calls;
  http::response next{200, "application/json", R"({"success":true})", {}};

 private:
  std::mutex mutex_;
};

class ExponeaApi : public ::testing::Test {
 protected:
  ExponeaApi() {
    creds_.set(credential::exponea_api_key, "KEY")
        .set(credential::exponea_api_secret, "SECRET")
        .set(credential::exponea_project_token, "PROJECT-TOKEN")
        .set(credential::exponea_api_token, "API-TOKEN");
    api_ = make_api_with_limit(1024 * 1024);
  }
  std::unique_ptr<api> make_api_with_limit(std::uint64_t max_export_bytes) {
    auto c = http::make_client(ioc_.get_executor(), {server_.url(), 5s});
    return make_api(std::move(*c), creds_, std::make_shared<test::fake_clock>(),
                    {dir_.path() / "downloads", max_export_bytes});
  }
  export_request saving(std::string file) {
    export_request r;
    r.ids = ids;
    r.save_to = dir_.path() / file;
    r.audit = {"privacy_request", "r1"};
    return r;
  }
  nlohmann::json saved(std::string file) {
    std::ifstream in(dir_.path() / file);
    return nlohmann::json::parse(in);
  }
  // Nothing of the answers is left in the download directory.
  bool downloads_clean() { return std::filesystem::is_empty(dir_.path() / "downloads"); }
  template <class T>
  T run(boost::asio::awaitable<T> a) {
    return test::run_sync(ioc_, std::move(a));
  }
  const nlohmann::json ids{{"registered", "jane@example.com"}};

  test::temp_dir dir_;
  boost::asio::io_context ioc_;
  scripted_exponea exponea_;
  test::running_server server_{http::server_options{}, exponea_};
  test::fake_credentials creds_;
  std::unique_ptr<api> api_;
};

TEST_F(ExponeaApi, ExportOneUsesBasicAuthOnTheDataApi) {
  exponea_.next.body =
      R"({"success":true,"ids":{"registered":"jane@example.com","cookie":["c1"]},)"
      R"("properties":{"first_name":"Jane"},"events":[{"type":"view","timestamp":1.5}]})";
  const auto r = run(api_->export_one(saving("1.json")));
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->ids, 2u);
  EXPECT_EQ((*r)->properties, 1u);
  EXPECT_EQ((*r)->events, 1u);
  EXPECT_EQ((*r)->last_event_at, 1.5);
  EXPECT_FALSE((*r)->holds_audit_event);
  EXPECT_EQ(saved("1.json"),
            nlohmann::json::parse(R"({"ids":{"registered":"jane@example.com","cookie":["c1"]},
                                      "properties":{"first_name":"Jane"},
                                      "events":[{"type":"view","timestamp":1.5}]})"));
  EXPECT_TRUE(downloads_clean());
  ASSERT_EQ(exponea_.calls.size(), 1u);
  const auto& call = exponea_.calls[0];
  EXPECT_EQ(call.method, "POST");
  EXPECT_EQ(call.target, "/data/v2/projects/PROJECT-TOKEN/customers/export-one");
  EXPECT_EQ(call.authorization, "Basic " + crypto::base64_encode("KEY:SECRET"));
  EXPECT_EQ(nlohmann::json::parse(call.body),
            (nlohmann::json{{"customer_ids", {{"registered", "jane@example.com"}}}}));
}

TEST_F(ExponeaApi, ExportOneAcceptsTheValueWrappedShape) {
  exponea_.next.body =
      R"({"success":true,"value":{"ids":{"registered":"x"},"properties":{"a":1}}})";
  const auto r = run(api_->export_one(saving("2.json")));
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->properties, 1u);
  EXPECT_EQ((*r)->events, 0u);
  EXPECT_EQ(saved("2.json"),
            nlohmann::json::parse(R"({"ids":{"registered":"x"},"properties":{"a":1},
                                      "events":[]})"));
}

TEST_F(ExponeaApi, ExportOneFindsTheAuditEventOfThisRequestOnly) {
  exponea_.next.body = R"({"success":true,"ids":{},"events":[
      {"type":"privacy_request","properties":{"request_id":"r0"}},
      {"type":"privacy_request","properties":{"request_id":"r1","type":"copy"}}]})";
  auto r = run(api_->export_one(saving("3.json")));
  ASSERT_TRUE(r && *r);
  EXPECT_TRUE((*r)->holds_audit_event);
  exponea_.next.body = R"({"success":true,"ids":{},"events":[
      {"type":"view","properties":{"request_id":"r1"}},
      {"type":"privacy_request","properties":{"request_id":"r2"}}]})";
  r = run(api_->export_one(saving("3.json")));
  ASSERT_TRUE(r && *r);
  EXPECT_FALSE((*r)->holds_audit_event);
}

TEST_F(ExponeaApi, ExportLargerThanMaxExportBytesFailsNamingTheSetting) {
  auto small = make_api_with_limit(64);
  exponea_.next.body =
      R"({"success":true,"ids":{},"properties":{"note":")" + std::string(200, 'x') + R"("}})";
  const auto r = run(small->export_one(saving("4.json")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, answer_class::failed);
  EXPECT_THAT(r.error().message, HasSubstr("max_export_bytes"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "4.json"));
  EXPECT_TRUE(downloads_clean());
}

TEST_F(ExponeaApi, ExportThatIsNotAJsonObjectFailsTheCall) {
  for (const char* body : {"<html>maintenance</html>", "[1,2]", R"({"ids":{"a":)"}) {
    exponea_.next.body = body;
    const auto r = run(api_->export_one(saving("5.json")));
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().kind, answer_class::failed) << body;
    EXPECT_THAT(r.error().message, HasSubstr("export-one answered")) << body;
    EXPECT_FALSE(std::filesystem::exists(dir_.path() / "5.json"));
  }
  EXPECT_TRUE(downloads_clean());
}

TEST_F(ExponeaApi, ExportRefusedOn200IsClassifiedByItsText) {
  exponea_.next.body = R"({"success":false,"errors":{"_global":["Customer does not exist"]}})";
  auto r = run(api_->export_one(saving("6.json")));
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);  // not found
  exponea_.next.body = R"({"success":false,"error":"Something odd"})";
  r = run(api_->export_one(saving("6.json")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, answer_class::failed);
  EXPECT_THAT(r.error().message, HasSubstr("Something odd"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "6.json"));
  EXPECT_TRUE(downloads_clean());
}

TEST_F(ExponeaApi, WithAStoreKeyTheDownloadAndTheSavedCustomerAreSealed) {
  const std::string key(32, 'k');
  auto c = http::make_client(ioc_.get_executor(), {server_.url(), 5s});
  api_options o{dir_.path() / "downloads", 1024 * 1024};
  o.export_key = key;
  api_ = make_api(std::move(*c), creds_, std::make_shared<test::fake_clock>(), o);
  exponea_.next.body = R"({"success":true,"ids":{"registered":"jane@example.com"},)"
                       R"("properties":{"first_name":"Jane"},"events":[]})";
  const auto r = run(api_->export_one(saving("s.json")));
  ASSERT_TRUE(r && *r) << (r ? "" : r.error().message);
  EXPECT_EQ((*r)->properties, 1u);
  auto source = http::sealed_file_source(dir_.path() / "s.json", key, "r1");
  ASSERT_TRUE(source);
  const auto plain = test::drain(**source);
  ASSERT_TRUE(plain) << plain.error().detail;
  EXPECT_EQ(nlohmann::json::parse(*plain)["properties"]["first_name"], "Jane");
  EXPECT_TRUE(downloads_clean());
  // A refusal on 200 is read back through the seal to be classified by its text.
  exponea_.next.body = R"({"success":false,"errors":{"_global":["Customer does not exist"]}})";
  const auto missing = run(api_->export_one(saving("t.json")));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
  EXPECT_TRUE(downloads_clean());
}

TEST_F(ExponeaApi, UnknownCustomerIsNotAnError) {
  exponea_.next = {404,
                   "application/json",
                   R"({"success":false,"errors":{"_global":["Customer does not exist"]}})",
                   {}};
  const auto exported = run(api_->export_one(saving("7.json")));
  ASSERT_TRUE(exported);
  EXPECT_FALSE(*exported);
  const auto anonymized = run(api_->anonymize(ids));
  ASSERT_TRUE(anonymized);
  EXPECT_FALSE(*anonymized);
}

TEST_F(ExponeaApi, TrackUsesTokenAuthOnTheTrackingApi) {
  exponea_.next.body = R"({"errors":[],"success":true})";
  event e{"privacy_request", 1764410000, {{"request_id", "r1"}, {"type", "delete"}}};
  ASSERT_TRUE(run(api_->track(ids, e, auth::token)));
  const auto& call = exponea_.calls.at(0);
  EXPECT_EQ(call.target, "/track/v2/projects/PROJECT-TOKEN/customers/events");
  EXPECT_EQ(call.authorization, "Token API-TOKEN");
  const auto body = nlohmann::json::parse(call.body);
  EXPECT_EQ(body["event_type"], "privacy_request");
  EXPECT_EQ(body["timestamp"], 1764410000);
  EXPECT_EQ(body["properties"]["request_id"], "r1");
}

TEST_F(ExponeaApi, SuccessFalseOn200IsAFailureWithExponeasText) {
  exponea_.next.body =
      R"({"success":false,"errors":["Not authorized to add event of specified type"]})";
  const auto r = run(api_->track(ids, event{"privacy_request", 1, {}}, auth::token));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, answer_class::rejected);
  EXPECT_THAT(r.error().message, HasSubstr("Not authorized to add event"));
}

TEST_F(ExponeaApi, ErrorsNeverCarryTheProjectTokenOrSecrets) {
  exponea_.next = {500, "text/plain", "internal error", {}};
  for (auto r : {run(api_->anonymize(ids)).error(), run(api_->system_time(auth::basic)).error()}) {
    EXPECT_EQ(r.kind, answer_class::transient);
    for (const char* s : {"PROJECT-TOKEN", "SECRET", "KEY", "API-TOKEN"}) {
      EXPECT_THAT(r.message, Not(HasSubstr(s)));
    }
  }
}

TEST_F(ExponeaApi, A429HoldsBackEveryCallerOfTheSharedLimiter) {
  auto shared = std::make_shared<limiter>(ioc_.get_executor(), 1000);
  auto c = http::make_client(ioc_.get_executor(), {server_.url(), 5s});
  auto limited = make_api(std::move(*c), creds_, std::make_shared<test::fake_clock>(),
                          {dir_.path(), 1024, shared, priority::background});
  exponea_.next = {
      429, "application/json", R"({"error":"Too many requests"})", {{"Retry-After", "1"}}};
  const auto r = run(limited->system_time(auth::basic));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, answer_class::transient);
  // Any other caller of the limiter (another job, another api) now waits out the Retry-After.
  const auto before = shared->waited();
  run(shared->acquire(priority::interactive));
  EXPECT_GE(shared->waited() - before, 900ms);
}

TEST_F(ExponeaApi, MissingCredentialIsARejectionNamingIt) {
  test::fake_credentials none;
  auto c = http::make_client(ioc_.get_executor(), {server_.url(), 5s});
  auto bare = make_api(std::move(*c), none, std::make_shared<test::fake_clock>());
  const auto r = run(bare->system_time(auth::token));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, answer_class::rejected);
  EXPECT_EQ(r.error().value, "exponea_project_token");
  EXPECT_TRUE(exponea_.calls.empty());
}

}  // namespace
}  // namespace dsr::exponea
