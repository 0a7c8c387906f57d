#include "dsr/mineos/webhook.hpp"

#include "dsr/common/time.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsr::mineos {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string error_of(std::string_view body, endpoint_kind k = endpoint_kind::delete_) {
  auto r = parse_webhook(body, k);
  return r ? "no error" : r.error().detail;
}

TEST(Webhook, ParsesTheCurrentShape) {
  const auto r = parse_webhook(R"({"traceId": "7f2c", "integrationId": "int-42", "isTest": false,
 "request": {"id": "fb8667b6", "type": "Delete", "source": "Form", "domain": "acme.com",
             "createdAt": "2026-11-28T10:00:00.7266574Z", "requestType": {"id": "delete", "name": "Delete"}},
 "userInfo": {"name": "Jane Doe", "email": "Jane@Example.com", "isVerified": true, "customFields": {}},
 "somethingNew": [1, 2, 3]})",
                               endpoint_kind::delete_);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->trace_id, "7f2c");
  EXPECT_EQ(r->integration_id, "int-42");
  EXPECT_FALSE(r->is_test);
  EXPECT_EQ(r->request_id, "fb8667b6");
  EXPECT_EQ(r->request_right.id, "delete");
  EXPECT_EQ(r->source, "Form");
  EXPECT_EQ(r->domain, "acme.com");
  ASSERT_TRUE(r->created_at);
  EXPECT_EQ(format_rfc3339(*r->created_at), "2026-11-28T10:00:00.726Z");
  EXPECT_EQ(r->email, "Jane@Example.com");
  EXPECT_EQ(r->name, "Jane Doe");
}

TEST(Webhook, ParsesTheLegacyShape) {
  const auto r = parse_webhook(R"({"EventId": "ev-1", "EventType": "WebhookSlim", "isTest": "false",
 "ticketInfo": {"id": "tk-9", "type": "Get", "source": "MineApp",
                "userInfo": {"name": "Old", "email": "old@example.com"}}})",
                               endpoint_kind::copy);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->trace_id, "ev-1");
  EXPECT_EQ(r->request_id, "tk-9");
  EXPECT_EQ(r->request_right.type, "Get");
  EXPECT_FALSE(r->is_test);
  EXPECT_FALSE(r->created_at);
  EXPECT_EQ(r->email, "old@example.com");
}

TEST(Webhook, LegacyLowerCaseEventIdAndTopLevelUserInfo) {
  const auto r = parse_webhook(
      R"({"eventId": "ev-2", "ticketInfo": {"id": "tk-2"}, "userInfo": {"email": "a@b.c"}})",
      endpoint_kind::delete_);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->trace_id, "ev-2");
  EXPECT_EQ(r->request_id, "tk-2");
}

TEST(Webhook, IsTestMayBeAStringAndNeedsOnlyATraceId) {
  const auto r = parse_webhook(R"({"traceId": "t", "isTest": "true"})", endpoint_kind::delete_);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_TRUE(r->is_test);
  EXPECT_THAT(error_of(R"({"isTest": true})"), HasSubstr("traceId is missing"));
  EXPECT_THAT(error_of(R"({"traceId": "t", "isTest": "maybe"})"), HasSubstr("isTest"));
}

TEST(Webhook, PreviewNeedsNoRequestObject) {
  const auto r =
      parse_webhook(R"({"traceId": "t", "userInfo": {"email": "a@b.c"}})", endpoint_kind::preview);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_THAT(error_of(R"({"traceId": "t", "userInfo": {"email": "a@b.c"}})"),
              HasSubstr("request is missing"));
}

TEST(Webhook, MissingFieldsAreNamed) {
  // No e-mail is not a malformed request: it becomes a MissingIdentifiers job (intake.hpp).
  EXPECT_TRUE(parse_webhook(R"({"traceId": "t", "request": {"id": "r"}})", endpoint_kind::delete_));
  EXPECT_THAT(error_of(R"({"traceId": "t", "request": {}, "userInfo": {"email": "a@b.c"}})"),
              HasSubstr("request.id is missing"));
  EXPECT_THAT(error_of(R"({"request": {"id": "r"}, "userInfo": {"email": "a@b.c"}})"),
              HasSubstr("traceId is missing"));
  EXPECT_THAT(
      error_of(R"({"traceId": "", "request": {"id": "r"}, "userInfo": {"email": "a@b.c"}})"),
      HasSubstr("traceId is missing"));
}

TEST(Webhook, NestingIsCountedOutsideStringsOnly) {
  // Brackets inside a string (after an escaped quote too) are text, not nesting.
  const std::string brackets(100, '[');
  const auto r =
      parse_webhook(R"({"traceId": "t", "request": {"id": "r", "source": "\\\"{)" + brackets +
                        R"("}, "userInfo": {"email": "a@b.c", "name": "{)" + brackets + R"("}})",
                    endpoint_kind::delete_);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->source, "\\\"{" + brackets);
  // 32 levels of nesting in an ignored field are accepted, 33 refused.
  const auto nested = [](int levels) {
    return R"({"traceId": "t", "request": {"id": "r"}, "userInfo": {"email": "a@b.c"}, "x": )" +
           std::string(static_cast<std::size_t>(levels) - 1, '[') +
           std::string(static_cast<std::size_t>(levels) - 1, ']') + "}";
  };
  EXPECT_EQ(error_of(nested(32)), "no error");
  EXPECT_THAT(error_of(nested(33)), HasSubstr("nested deeper than 32 levels"));
}

TEST(Webhook, MalformedBodiesAreRefused) {
  EXPECT_THAT(error_of(""), HasSubstr("not valid JSON"));
  EXPECT_THAT(error_of("{\"traceId\": "), HasSubstr("not valid JSON"));
  EXPECT_THAT(error_of("[1, 2]"), HasSubstr("must be a JSON object"));
  EXPECT_THAT(error_of(std::string(100, '[') + std::string(100, ']')), HasSubstr("nested deeper"));
  EXPECT_THAT(error_of(R"({"traceId": {"a": 1}})"), HasSubstr("traceId must be a string"));
  EXPECT_THAT(error_of(R"({"traceId": "t", "request": "r"})"),
              HasSubstr("request must be an object"));
  EXPECT_THAT(error_of(R"({"traceId": "t", "request": {"id": "r"}, "userInfo": []})"),
              HasSubstr("userInfo must be an object"));
  EXPECT_THAT(error_of(std::string(R"({"traceId": ")") + std::string(300, 'x') + "\"}"),
              HasSubstr("traceId is longer than"));
  EXPECT_THAT(error_of(R"({"traceId": "t\u0000x"})"), HasSubstr("control characters"));
  // Found by tests/fuzz/fuzz_webhook: a number beyond a double used to escape as an exception.
  EXPECT_THAT(error_of("63.6e396392"), HasSubstr("number out of range"));
  EXPECT_THAT(error_of(R"({"traceId": "t", "n": -1e400})"), HasSubstr("number out of range"));
}

TEST(Webhook, InvalidValuesAreNamedWithoutEchoingThem) {
  const auto bad_email = error_of(
      R"({"traceId": "t", "request": {"id": "r"}, "userInfo": {"email": "jane.doe.example.com"}})");
  EXPECT_THAT(bad_email, HasSubstr("userInfo.email is not an e-mail address"));
  EXPECT_THAT(bad_email, Not(HasSubstr("jane.doe")));
  const auto bad_date = error_of(
      R"({"traceId": "t", "request": {"id": "r", "createdAt": "last tuesday"}, "userInfo": {"email": "a@b.c"}})");
  EXPECT_THAT(bad_date, HasSubstr("request.createdAt"));
  EXPECT_THAT(bad_date, Not(HasSubstr("tuesday")));
}

TEST(Webhook, ReadsTheRightAndTheCustomFields) {
  const auto r = parse_webhook(R"({"traceId": "t", "integrationId": "int-42",
 "request": {"id": "r-1", "type": "DoNotSell", "requestType": {"id": "dns", "name": "Do Not Sell"}},
 "userInfo": {"customFields": {"$internalId": "C-1042", "$phonenumber": 420123, "nested": {"a": 1},
                               "empty": "", "note": "line one\nline two"}}})",
                               endpoint_kind::delete_);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->request_right, (right{"dns", "Do Not Sell", "DoNotSell"}));
  EXPECT_EQ(r->email, "");  // absent is allowed: the request is still a job
  EXPECT_EQ(r->custom_fields, (std::vector<std::pair<std::string, std::string>>{
                                  {"$internalId", "C-1042"}, {"$phonenumber", "420123"}}));
}

TEST(Webhook, ForeignTextIsCleanedButIdentifiersAreRefused) {
  // A C1 control character (U+009B, CSI) in the right's name is cleaned away...
  const auto r = parse_webhook(
      R"({"traceId": "t", "request": {"id": "r-1", "source": "Form\u009b31m", "requestType": {"name": "Do\u001bNot Sell"}}})",
      endpoint_kind::delete_);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->request_right.name, "Do Not Sell");
  EXPECT_EQ(r->source, "Form 31m");
  // ...but an identifier with one is refused.
  EXPECT_THAT(error_of(R"({"traceId": "t\u009bx"})"), HasSubstr("control characters"));
  EXPECT_THAT(error_of(R"({"traceId": "t", "request": {"id": "../etc"}})"),
              HasSubstr("request.id must be 1 to 128 characters"));
  EXPECT_THAT(error_of(R"({"traceId": "t", "integrationId": "a b", "request": {"id": "r"}})"),
              HasSubstr("integrationId must be"));
  EXPECT_THAT(error_of(R"({"traceId": "t", "request": {"id": "r", "requestType": "delete"}})"),
              HasSubstr("request.requestType must be an object"));
}

}  // namespace
}  // namespace dsr::mineos
