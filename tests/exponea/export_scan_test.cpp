#include "dsr/exponea/export_scan.hpp"

#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <fstream>

namespace dsr::exponea {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

class ExportScan : public ::testing::Test {
 protected:
  result<export_summary> scan(std::string_view answer, bool save = true) {
    const auto in = dir_.write("answer.part", answer);
    return scan_export(in, audit_, save ? out() : std::filesystem::path());
  }
  std::filesystem::path out() const { return dir_.path() / "out.json"; }
  std::string saved_text() const {
    std::ifstream in(out(), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  json saved() const { return json::parse(saved_text()); }

  test::temp_dir dir_;
  audit_match audit_{"privacy_request", "req-1"};
};

TEST_F(ExportScan, SavesTheCustomerFromTheTopLevel) {
  const auto s = scan(R"({"success":true,"ids":{"registered":"a@b.c","cookie":["c1","c2"]},
      "properties":{"first_name":"Ann","age":41,"score":-0.5e3,"vip":true,"nick":null},
      "events":[{"type":"view","timestamp":1700000000.25,"properties":{"url":"/"}},
                {"type":"buy","timestamp":1700000100}]})");
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_TRUE(s->success);
  EXPECT_EQ(s->ids, 2u);
  EXPECT_EQ(s->properties, 5u);
  EXPECT_EQ(s->events, 2u);
  EXPECT_EQ(s->last_event_at, 1700000100.0);
  EXPECT_FALSE(s->holds_audit_event);
  EXPECT_EQ(saved(), json::parse(R"({"ids":{"registered":"a@b.c","cookie":["c1","c2"]},
      "properties":{"first_name":"Ann","age":41,"score":-0.5e3,"vip":true,"nick":null},
      "events":[{"type":"view","timestamp":1700000000.25,"properties":{"url":"/"}},
                {"type":"buy","timestamp":1700000100}]})"));
  struct stat st {};
  ASSERT_EQ(::stat(out().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // personal data
  EXPECT_FALSE(std::filesystem::exists(out().string() + ".tmp"));
}

TEST_F(ExportScan, KeepsTextAndNumbersExactlyAsExponeaSentThem) {
  ASSERT_TRUE(scan(R"({"properties":{"name":"Zoë \"Z\" \\ \u0001 😀","big":18446744073709551615,)"
                   R"("neg":-9223372036854775808,"f":1.0000000000000002,"e":1E+2}})"));
  const auto text = saved_text();
  EXPECT_THAT(text, HasSubstr("18446744073709551615"));
  EXPECT_THAT(text, HasSubstr("1.0000000000000002"));
  EXPECT_THAT(text, HasSubstr("1E+2"));
  const auto j = saved();
  EXPECT_EQ(j["properties"]["name"], "Zoë \"Z\" \\ \u0001 😀");
  EXPECT_EQ(j["properties"]["neg"], INT64_MIN);
}

TEST_F(ExportScan, ReadsTheCustomerInsideValueAndIgnoresTheTopLevel) {
  const auto s = scan(R"({"ids":{"decoy":"x"},"success":true,
      "value":{"events":[{"type":"t","timestamp":5}],"ids":{"registered":"v"}}})");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ids, 1u);
  EXPECT_EQ(s->events, 1u);
  EXPECT_EQ(s->properties, 0u);
  EXPECT_EQ(saved(), json::parse(R"({"events":[{"type":"t","timestamp":5}],
      "ids":{"registered":"v"},"properties":{}})"));
}

TEST_F(ExportScan, MissingOrMistypedSectionsAreEmptyAndRepeatsAreIgnored) {
  const auto s = scan(R"({"ids":"not-an-object","events":{"a":1},
      "properties":{"a":1},"properties":{"b":2,"c":3},"value":7})");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ids, 0u);
  EXPECT_EQ(s->properties, 1u);
  EXPECT_EQ(s->events, 0u);
  EXPECT_EQ(saved(), json::parse(R"({"ids":{},"properties":{"a":1},"events":[]})"));
}

TEST_F(ExportScan, FindsTheAuditEventOnlyWithBothTypeAndRequestId) {
  auto s = scan(R"({"events":[1,"x",{"type":"privacy_request"},
      {"type":"privacy_request","properties":[]},
      {"type":"privacy_request","properties":{"request_id":7}},
      {"type":"other","properties":{"request_id":"req-1"}},
      {"type":"privacy_request","properties":{"nested":{"request_id":"req-1"}}}]})",
                false);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->events, 7u);
  EXPECT_FALSE(s->holds_audit_event);
  s = scan(R"({"events":[{"properties":{"source":"MineOS","request_id":"req-1"},
      "type":"privacy_request"}]})",
           false);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->holds_audit_event);
  EXPECT_FALSE(std::filesystem::exists(out()));  // nothing asked to be saved
}

TEST_F(ExportScan, SuccessFalseIsReportedAndNothingIsSaved) {
  const auto s = scan(R"({"success":false,"errors":{"_global":["Customer does not exist"]}})");
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->success);
  EXPECT_FALSE(std::filesystem::exists(out()));
}

TEST_F(ExportScan, RefusesWhatIsNotAJsonObject) {
  for (const char* bad :
       {"", "[]", "\"x\"", "{\"ids\":", "{} trailing", "{\"a\":1,}", "{\"s\":\"\xff\xfe\"}"}) {
    const auto s = scan(bad);
    ASSERT_FALSE(s) << bad;
    EXPECT_TRUE(s.error().is(errc::invalid_input)) << bad;
    EXPECT_THAT(s.error().detail, HasSubstr("export-one answered")) << bad;
    EXPECT_FALSE(std::filesystem::exists(out())) << bad;
    EXPECT_FALSE(std::filesystem::exists(out().string() + ".tmp")) << bad;
  }
}

TEST_F(ExportScan, RefusesNestingBeyondTheLimit) {
  const std::string deep =
      "{\"properties\":{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}}";
  const auto s = scan(deep);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().detail, HasSubstr("nested deeper than"));
  // Just under the limit is fine.
  const std::size_t ok = max_export_depth - 3;
  ASSERT_TRUE(scan("{\"properties\":{\"a\":" + std::string(ok, '[') + std::string(ok, ']') + "}}"));
}

TEST_F(ExportScan, StreamsAnExportOfManyEvents) {
  // 200,000 events (~16 MB): scanned and copied without building a document.
  const auto path = dir_.path() / "answer.part";
  {
    std::ofstream f(path, std::ios::binary);
    f << R"({"success":true,"ids":{"registered":"big@example.com"},"events":[)";
    for (int i = 0; i < 200000; ++i) {
      f << (i ? "," : "") << R"({"type":"view","timestamp":)" << 1700000000 + i
        << R"(,"properties":{"url":"/p/)" << i << R"("}})";
    }
    f << R"(,{"type":"privacy_request","properties":{"request_id":"req-1"}}]})";
  }
  const auto s = scan_export(path, audit_, out());
  ASSERT_TRUE(s) << s.error().detail;
  EXPECT_EQ(s->events, 200001u);
  EXPECT_EQ(s->last_event_at, 1700000000.0 + 199999);
  EXPECT_TRUE(s->holds_audit_event);
  const auto j = saved();
  EXPECT_EQ(j["events"].size(), 200001u);
  EXPECT_EQ(j["events"][199999]["properties"]["url"], "/p/199999");
}

TEST_F(ExportScan, UnreadableAnswerIsAnIoError) {
  const auto s = scan_export(dir_.path() / "missing.part", audit_, out());
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(errc::io_error));
  EXPECT_THAT(s.error().detail, HasSubstr("missing.part"));
}

}  // namespace
}  // namespace dsr::exponea
