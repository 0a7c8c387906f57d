// The systemd unit shipped in config/: hardened to an exposure of 2.5 or less, and handing the
// daemon every secret it can read through LoadCredential=.

#include "dsr/config/config.hpp"
#include "dsr/config/credential_names.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

namespace dsr {
namespace {

using ::testing::HasSubstr;

const std::string unit_path = DSR_SOURCE_DIR "/config/dsr-connector.service";

std::string unit_text() {
  std::ifstream in(unit_path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<std::string> which(const std::string& program) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/local/bin"}) {
    const auto p = std::filesystem::path(dir) / program;
    if (std::filesystem::exists(p)) {
      return p.string();
    }
  }
  return std::nullopt;
}

TEST(UnitFile, EverySecretComesThroughLoadCredential) {
  const auto text = unit_text();
  for (const auto c : all_credentials) {
    const std::string name(dsr::name(c));
    // The optional PostgreSQL password is there to uncomment: systemd refuses to start a unit
    // whose credential file is missing.
    const std::string line = c == credential::store_password ? "\n#LoadCredential=" : "\nLoadCredential=";
    EXPECT_THAT(text, HasSubstr(line + name + ":")) << name;
  }
}

TEST(UnitFile, NoCoreFilesAndPrivateDirectories) {
  const auto text = unit_text();
  EXPECT_THAT(text, HasSubstr("\nLimitCORE=0\n"));
  EXPECT_THAT(text, HasSubstr("\nUMask=0077\n"));
  EXPECT_THAT(text, HasSubstr("\nStateDirectoryMode=0700\n"));
  EXPECT_THAT(text, HasSubstr("\nRuntimeDirectoryMode=0700\n"));
}

TEST(UnitFile, StopTimeoutOutlastsTheDrain) {
  const std::regex timeout(R"(\nTimeoutStopSec=(\d+)s)");
  std::smatch m;
  const auto text = unit_text();
  ASSERT_TRUE(std::regex_search(text, m, timeout));
  EXPECT_GT(std::stoi(m[1]), config{}.jobs.shutdown_grace.count() + 5);
}

TEST(UnitFile, SystemdAnalyzeSecurityExposureIsAtMostTwoAndAHalf) {
  const auto analyze = which("systemd-analyze");
  if (!analyze) {
    GTEST_SKIP() << "systemd-analyze is not installed";
  }
  const auto r = test::run(*analyze, {"security", "--offline=true", "--no-pager", unit_path});
  const std::regex level(R"(Overall exposure level for dsr-connector\.service: (\d+\.\d+))");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, level)) << r.output;
  EXPECT_LE(std::stod(m[1]), 2.5) << r.output;
}

TEST(UnitFile, SystemdAnalyzeVerifyPasses) {
  const auto analyze = which("systemd-analyze");
  if (!analyze) {
    GTEST_SKIP() << "systemd-analyze is not installed";
  }
  // verify checks that the executables exist: the unit as installed from this build.
  test::temp_dir dir;
  auto text = unit_text();
  const std::string installed = "/usr/local/bin/dsr-connector";
  text.replace(text.find(installed), installed.size(), DSR_BINARY);
  const auto unit = dir.write("dsr-connector.service", text, 0644);
  const auto r = test::run(*analyze, {"verify", unit.string()});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("dsr-connector.service:"), std::string::npos) << r.output;
}

TEST(UnitFile, InstallPutsTheBinaryTheUnitTheSnippetsAndTheManPagesUnderDestdir) {
  test::temp_dir dest;
  const auto r = test::run("/bin/sh", {"-c", "DESTDIR='" + dest.path().string() +
                                                 "' cmake --install '" DSR_BUILD_DIR "'"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::filesystem::path bindir = DSR_INSTALL_BINDIR;
  const auto root = dest.path();
  const auto under = [&](const std::filesystem::path& p) { return root / p.relative_path(); };
  EXPECT_TRUE(std::filesystem::exists(under(bindir / "dsr-connector")));
  const auto prefix = bindir.parent_path();
  const auto unit = under(prefix / "lib/systemd/system/dsr-connector.service");
  ASSERT_TRUE(std::filesystem::exists(unit));
  std::ifstream in(unit);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_THAT(text, HasSubstr("\nExecStart=" + (bindir / "dsr-connector").string() + " serve"));
  EXPECT_TRUE(std::filesystem::exists(under(prefix / "lib/sysusers.d/dsr-connector.conf")));
  EXPECT_TRUE(std::filesystem::exists(under(prefix / "lib/tmpfiles.d/dsr-connector.conf")));
  EXPECT_TRUE(std::filesystem::exists(
      under(prefix / "share/doc/dsr-connector/dsr-connector.example.toml")));
  EXPECT_TRUE(std::filesystem::exists(under(prefix / "share/man/man1/dsr-connector.1")));
  EXPECT_TRUE(std::filesystem::exists(under(prefix / "share/man/man5/dsr-connector.toml.5")));
}

}  // namespace
}  // namespace dsr
