// A copy too large to send inline (docs/contract.md §6): reported to MineOS as a signed, expiring file
// link, downloaded through GET /v1/files/... in constant memory. `make test` exports 64 MiB;
// `make soak` 1 GiB (DSR_SOAK_EXPORT_MB).

#include "e2e/fulfilment_fixture.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/mineos/file_links.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace dsr::test {
namespace {

using ::testing::HasSubstr;

std::uint64_t export_mb() {
  const char* v = std::getenv("DSR_SOAK_EXPORT_MB");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : 64;
}

// The peak resident set of a process so far (VmHWM), in bytes.
std::uint64_t peak_rss(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) {
      return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    }
  }
  return 0;
}

class LargeCopy : public Fulfilment {
 protected:
  // One GET whose answer may take minutes to arrive whole (1 GiB under make soak).
  http_reply download(const std::string& target) {
    connection c(daemon_->port(), std::chrono::minutes(10));
    if (!c.send(raw_request("GET", target, ""))) {
      return {};
    }
    return c.read_reply();
  }

  LargeCopy() {
    // Events carrying 64 KiB each, enough of them for the export's size.
    const std::string blob(64 * 1024 - 64, 'z');
    json events = json::array();
    for (std::uint64_t i = 0; i < export_mb() * 16; ++i) {
      events.push_back({{"type", "page_visit"},
                        {"timestamp", 1764236000 + i},
                        {"properties", {{"blob", blob}}}});
    }
    extra_customers_ = {{{"ids", {{"registered", "big@example.com"}}},
                         {"properties", {{"first_name", "Big"}}},
                         {"events", std::move(events)}}};
    exponea_extra_ = "max_export_bytes = 4294967296";
    exponea_timeout_seconds_ = 300;  // the simulator renders a 1 GiB answer before it sends it
    sim_start_timeout_ = std::chrono::minutes(10);  // and parses a 1 GiB seed first
    wait_limit_ = std::chrono::minutes(20);
    mineos_extra_ = "public_url = \"https://dsr.example.com\"\ninline_data_max_bytes = 1048576";
  }
};

TEST_F(LargeCopy, TheLinkWorksMoreThanOnceInConstantMemoryAndRefusesTamperingAndExpiry) {
  const auto before = peak_rss(daemon_->pid());
  submit("copy", "req-big", "big@example.com");
  const auto v = wait_reported("req-big");
  ASSERT_EQ(v["state"], "completed") << v.dump();
  const auto report = json::parse(sim("mineos").back()["body"].get<std::string>());
  EXPECT_EQ(report["action"], "Copy");
  EXPECT_EQ(report["status"], "Completed");
  EXPECT_FALSE(report.contains("data"));
  ASSERT_EQ(report["files"].size(), 1u);
  const auto file = report["files"][0];
  EXPECT_EQ(file["fileName"], "req-big.json");
  const std::string url = file["url"];
  ASSERT_THAT(url, ::testing::StartsWith("https://dsr.example.com/v1/files/req-big?expires="));
  EXPECT_EQ(url.find("big@"), std::string::npos);  // no personal data in the link
  const auto target = url.substr(std::string("https://dsr.example.com").size());

  // MineOS acknowledged the report before fetching: the link works, and again.
  std::string first_digest;
  for (int i = 0; i < 2; ++i) {
    const auto got = download(target);
    ASSERT_EQ(got.status, 200) << got.body.substr(0, 200);
    EXPECT_GT(got.body.size(), export_mb() << 20);
    EXPECT_EQ(got.body.front(), '{');
    EXPECT_NE(got.body.find("\"ids\":"), std::string::npos);
    const auto digest = crypto::to_hex(crypto::hmac_sha256("k", got.body));
    if (i == 0) {
      first_digest = digest;
      if (export_mb() <= 64) {
        const auto data = json::parse(got.body);
        EXPECT_EQ(data["properties"]["first_name"], "Big");
        EXPECT_EQ(data["events"].size(), export_mb() * 16);  // taken before the audit event
      }
    } else {
      EXPECT_EQ(digest, first_digest);
    }
  }
  const auto growth = peak_rss(daemon_->pid()) - before;
  RecordProperty("peak_rss_growth_mib", static_cast<int>(growth >> 20));
#ifndef __SANITIZE_ADDRESS__
  // (Under AddressSanitizer, freed memory sits in its quarantine: RSS says nothing there.)
  EXPECT_LT(growth, 64u << 20) << "peak RSS grew by " << (growth >> 20) << " MiB";
#endif

  // A tampered link is refused before anything else.
  auto tampered = target;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  EXPECT_EQ(request(daemon_->port(), "GET", tampered).status, 403);
  EXPECT_EQ(request(daemon_->port(), "GET", "/v1/files/req-big").status, 403);

  // A link this daemon signed, expired: 410. (Made with the key the daemon derives from store_key;
  // the test's store_key is 64 'a' hex digits.) The export behind the live link stays.
  const mineos::file_links links(*crypto::from_hex(std::string(64, 'a')), "https://x");
  const auto expired = links.target("req-big", time_point{std::chrono::seconds(1764236000)});
  EXPECT_EQ(request(daemon_->port(), "GET", expired).status, 410);
  EXPECT_EQ(download(target).status, 200);
  EXPECT_FALSE(std::filesystem::is_empty(dir_.path() / "exports"));
}

}  // namespace
}  // namespace dsr::test
