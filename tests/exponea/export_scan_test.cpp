#include "dsr/exponea/export_scan.hpp"

#include "dsr/common/sealed_file.hpp"
#include "dsr/http/body_source.hpp"
#include "support/drain.hpp"
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

namespace dsr::exponea {
namespace {

class SealedExport : public ::testing::Test {
 protected:
  // Scans `answer`, saving it sealed; returns the plaintext the reporter would send.
  std::string round_trip(const std::string& answer, const std::string& read_key) {
    const auto in = dir_.write("answer.part", answer);
    const auto out = dir_.path() / "1.json";
    EXPECT_TRUE(scan_export(in, {"privacy_request", "req-1"}, out, key_));
    auto source = http::sealed_file_source(out, read_key, "req-1", "<", ">");
    if (!source) {
      return "open failed: " + source.error().detail;
    }
    auto body = test::drain(**source);
    return body ? *body : "read failed: " + body.error().detail;
  }
  std::string file_bytes() const {
    std::ifstream in(dir_.path() / "1.json", std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  test::temp_dir dir_;
  std::string key_ = std::string(32, 'k');
};

TEST_F(SealedExport, OnDiskItIsCiphertextAndTheReportGetsThePlaintext) {
  const auto body = round_trip(
      R"({"ids":{"registered":"canary@example.com"},"properties":{"first_name":"Canary"}})", key_);
  EXPECT_EQ(body,
            R"(<{"ids":{"registered":"canary@example.com"},"properties":{"first_name":"Canary"},)"
            R"("events":[]}>)");
  EXPECT_EQ(file_bytes().find("canary"), std::string::npos);
  EXPECT_EQ(file_bytes().find("Canary"), std::string::npos);
}

TEST_F(SealedExport, ChunkBoundariesRoundTrip) {
  // Plaintexts around one and two whole chunks, so that the last chunk is short, full or empty.
  for (const std::size_t target : {sealed_file::chunk_plain - 1, sealed_file::chunk_plain,
                                   sealed_file::chunk_plain + 1, 2 * sealed_file::chunk_plain}) {
    // What the export file holds: this, with the padding inside the quotes.
    const std::size_t pad =
        target - std::string(R"({"ids":{},"properties":{"p":""},"events":[]})").size();
    const std::string answer =
        R"({"ids":{},"properties":{"p":")" + std::string(pad, 'x') + R"("},"events":[]})";
    const auto body = round_trip(answer, key_);
    ASSERT_EQ(body.size(), target + 2) << target;
    EXPECT_EQ(
        json::parse(body.substr(1, body.size() - 2))["properties"]["p"].get<std::string>().size(),
        pad);
    EXPECT_EQ(sealed_file::plain_size(std::filesystem::file_size(dir_.path() / "1.json")), target);
  }
}

TEST_F(SealedExport, ASealedDownloadIsScannedLikeThePlainAnswer) {
  // Exponea's answer as the HTTP client writes it with a key: sealed, its name as the file id.
  for (const std::size_t pad : {std::size_t{10}, sealed_file::chunk_plain - 60,
                                sealed_file::chunk_plain, 3 * sealed_file::chunk_plain + 7}) {
    const std::string answer =
        R"({"ids":{"registered":"canary@example.com"},"properties":{"p":")" +
        std::string(pad, 'x') +
        R"("},"events":[{"type":"privacy_request","properties":{"request_id":"req-1"}}]})";
    const auto plain = dir_.write("plain.part", answer);
    const auto sealed = dir_.path() / "export-one-9.part";
    {
      std::ofstream out(sealed, std::ios::binary);
      sealed_file::writer w(key_, "export-one-9.part", [&](std::string_view s) {
        return static_cast<bool>(out.write(s.data(), static_cast<std::streamsize>(s.size())));
      });
      ASSERT_TRUE(w.write(answer));
      ASSERT_TRUE(w.finish());
    }
    const auto from_plain = scan_export(plain, {"privacy_request", "req-1"}, dir_.path() / "a");
    const auto from_sealed =
        scan_export(sealed, {"privacy_request", "req-1"}, dir_.path() / "b", "", key_);
    ASSERT_TRUE(from_plain && from_sealed) << pad;
    EXPECT_EQ(from_sealed->properties, 1u);
    EXPECT_TRUE(from_sealed->holds_audit_event);
    std::ifstream a(dir_.path() / "a", std::ios::binary);
    std::ifstream b(dir_.path() / "b", std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}),
              std::string(std::istreambuf_iterator<char>(b), {}))
        << pad;
  }
  // Another key: the download does not open, which is our problem (I/O), not Exponea's.
  const auto wrong = scan_export(dir_.path() / "export-one-9.part", {"privacy_request", "req-1"},
                                 {}, "", std::string(32, 'z'));
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(errc::io_error)) << wrong.error().detail;
}

TEST_F(SealedExport, AnotherKeyOrAnAlteredFileIsRefused) {
  const std::string answer =
      R"({"properties":{"p":")" + std::string(3 * sealed_file::chunk_plain, 'x') + R"("}})";
  EXPECT_THAT(round_trip(answer, std::string(32, 'z')), HasSubstr("does not decrypt"));
  // Cut short by a whole chunk: the new last chunk was not sealed as the last one.
  const auto path = dir_.path() / "1.json";
  std::filesystem::resize_file(path, std::filesystem::file_size(path) -
                                         (sealed_file::chunk_plain + sealed_file::chunk_overhead));
  auto source = http::sealed_file_source(path, key_, "req-1");
  ASSERT_TRUE(source);
  EXPECT_FALSE(test::drain(**source));
  // Another request's file id.
  round_trip(answer, key_);
  auto other = http::sealed_file_source(path, key_, "req-2");
  ASSERT_TRUE(other);
  EXPECT_FALSE(test::drain(**other));
}

}  // namespace
}  // namespace dsr::exponea
