#include "dsr/mineos/webhook.hpp"

#include "dsr/common/time.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

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

// parse_webhook reads the body in one pass when it has today's shape and hands anything else to
// parse_webhook_document: whichever way a body goes, the result (the fields, or the refusal and its
// words) is the document's. The fuzz target checks the same on generated bodies.
TEST(Webhook, TheOnePassReadingAgreesWithTheDocumentOnEveryShape) {
  const std::string current =
      R"({"traceId":"t-1","integrationId":"int-42","isTest":false,"request":{"id":"r-1",)"
      R"("type":"Delete","source":"Form","domain":"acme.com","createdAt":"2026-11-28T10:00:00Z",)"
      R"("requestType":{"id":"delete","name":"Delete"}},"userInfo":{"name":"Jane Doe",)"
      R"("email":"jane@example.com","isVerified":true,"customFields":{"$phonenumber":"+420 1",)"
      R"("$internalId":42,"note":"a\nb","empty":"","big":18446744073709551615,"f":1.5,)"
      R"("o":{"x":[1,{"y":null}]},"b":true,"n":null}},"extra":[[{"traceId":"inner"}],"x",null]})";
  std::vector<std::string> bodies{
      current,
      R"({"traceId":"t-2","request":{"id":"r-2"}})",
      R"({"traceId":"t-3","isTest":true})",
      R"({"traceId":"t-3","isTest":"True"})",
      R"({"traceId":"t-3","isTest":"maybe"})",
      R"({"traceId":"t-3","isTest":null,"request":{"id":"r"}})",
      R"({"traceId":"t-3","isTest":true,"isTest":false})",
      R"({"traceId":"a","traceId":"b","request":{"id":"r"}})",
      R"({"traceId":null,"EventId":"e-1","request":{"id":"r"}})",
      R"({"EventId":"e-1","ticketInfo":{"Id":"r-9","userInfo":{"email":"j@x.io"}}})",
      R"({"eventId":"e-1","UserInfo":{"Email":"j@x.io"},"request":{"id":"r"}})",
      R"({"traceId":"t","userInfo":null,"request":{"id":"r","userInfo":{"email":"j@x.io"}}})",
      R"({"traceId":12,"request":{"id":34}})",
      R"({"traceId":"t","request":{"id":-9223372036854775808}})",
      R"({"traceId":"t","request":"r-1"})",
      R"({"traceId":"t","request":[]})",
      R"({"traceId":"t","request":{"id":"r","requestType":"delete"}})",
      R"({"traceId":"t","request":{"id":"r","requestType":{"id":5}}})",
      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"customFields":[]}})",
      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"customFields":{"a":"1","a":"2"}}})",
      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"customFields":{"a":{},"a":"2"}}})",
      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"email":"not-an-address"}})",
      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"email":"a@b","email":"c@d"}})",
      R"({"traceId":"t","request":{"id":"r/../x"}})",
      R"({"traceId":"t","request":{"id":"r","createdAt":"yesterday"}})",
      R"({"traceId":"t","request":{"id":"r"},"request":{"id":"s"}})",
      R"({"traceId":"t\u0001","request":{"id":"r"}})",
      R"({"traceId":"t","request":{"id":"r","source":"Fo\u0000rm\u202e"}})",
      R"({"traceId":"t","integrationId":"int 42","request":{"id":"r"}})",
      R"({"traceId":"","request":{"id":"r"}})",
      R"({"request":{"id":"r"}})",
      R"({"traceId":"t"})",
      R"({"traceId":"t","request":{"id":"r"}} trailing)",
      R"({"traceId":"t","n":1e400})",
      R"([{"traceId":"t"}])",
      R"("just a string")",
      "42",
      "null",
      "",
      "{",
      std::string(40, '[') + std::string(40, ']'),
      "{\"traceId\":\"t\",\"request\":{\"id\":\"r\"},\"userInfo\":{\"name\":\"\xff\"}}",
      R"({"traceId":"t","request":{"id":"r"},"userInfo":{"Name":"N","name":"n"}})",
      R"({"TraceId":"T","IntegrationId":"I","IsTest":"false","TicketInfo":{"Id":"r",)"
      R"("RequestType":{"Id":"x","Name":"y"},"Type":"Delete","Source":"s","Domain":"d",)"
      R"("CreatedAt":"2026-01-01T00:00:00Z"}})",
      std::string(R"({"traceId":")") + std::string(300, 'x') + R"(","request":{"id":"r"}})",
  };
  for (const auto& file :
       std::filesystem::directory_iterator(DSR_SOURCE_DIR "/tests/fuzz/corpus/webhook")) {
    std::ifstream in(file.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    bodies.push_back(text.str());
  }
  for (const auto& body : bodies) {
    for (const auto kind : all_endpoint_kinds) {
      const auto fast = parse_webhook(body, kind);
      const auto reference = parse_webhook_document(body, kind);
      ASSERT_EQ(fast.has_value(), reference.has_value()) << body;
      if (fast) {
        EXPECT_TRUE(*fast == *reference) << body;
      } else {
        EXPECT_EQ(fast.error().detail, reference.error().detail) << body;
      }
    }
  }
  // The current shape's fields, read in one pass: integers as digits, the rest left out.
  const auto w = parse_webhook(current, endpoint_kind::delete_);
  ASSERT_TRUE(w) << w.error().detail;
  EXPECT_EQ(w->custom_fields,
            (std::vector<std::pair<std::string, std::string>>{
                {"$internalId", "42"}, {"$phonenumber", "+420 1"}, {"big", "-1"}}));
}

}  // namespace
}  // namespace dsr::mineos
