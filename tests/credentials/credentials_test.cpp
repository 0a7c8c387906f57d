#include "dsr/credentials/credentials.hpp"

#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

namespace dsr {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& n) -> std::optional<std::string> {
    const auto it = vars.find(n);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(Secret, NeverPrintsItsValue) {
  const secret s("hunter2-super-secret");
  EXPECT_EQ(fmt::format("{}", s), "***");
  EXPECT_EQ(fmt::format("token={}!", s), "token=***!");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "***");
  EXPECT_EQ(s.reveal(), "hunter2-super-secret");
}

TEST(Credentials, LookupOrderIsDirectoryThenEnvironmentThenFileThenInline) {
  test::temp_dir dir;
  const auto creds_dir = dir.path() / "creds";
  dir.write("creds/admin_token", "from-dir\n");
  const auto file = dir.write("admin.txt", "from-file\n");
  credentials_config cfg;
  cfg.inline_values = {{"admin_token", "from-inline"},
                       {"store_key", "inline-key"},
                       {"exponea_api_key", "inline-api"},
                       {"mineos_api_key", "inline-m"}};
  cfg.files = {{"admin_token", file}, {"store_key", file}, {"exponea_api_key", file}};
  credential_load_report report;
  auto store = load_credentials(cfg,
                                env_of({{"CREDENTIALS_DIRECTORY", creds_dir.string()},
                                        {"DSR_CONNECTOR_ADMIN_TOKEN", "from-env"},
                                        {"DSR_CONNECTOR_STORE_KEY", "env-key"}}),
                                report);
  EXPECT_EQ(store->find(credential::admin_token)->reveal(), "from-dir");
  EXPECT_EQ(store->origin(credential::admin_token), "$CREDENTIALS_DIRECTORY/admin_token");
  EXPECT_EQ(store->find(credential::store_key)->reveal(), "env-key");
  EXPECT_EQ(store->origin(credential::store_key), "environment DSR_CONNECTOR_STORE_KEY");
  EXPECT_EQ(store->find(credential::exponea_api_key)->reveal(), "from-file");
  EXPECT_EQ(store->find(credential::mineos_api_key)->reveal(), "inline-m");
  EXPECT_FALSE(store->find(credential::exponea_api_secret));
  EXPECT_TRUE(report.errors.empty());
}

TEST(Credentials, FileContentLosesOneTrailingNewline) {
  test::temp_dir dir;
  credentials_config cfg;
  cfg.files = {{"admin_token", dir.write("a", "tok\r\n")},
               {"mineos_webhook_secret", dir.write("b", "one\ntwo\n")}};
  credential_load_report report;
  auto store = load_credentials(cfg, env_of({}), report);
  EXPECT_EQ(store->find(credential::admin_token)->reveal(), "tok");
  EXPECT_EQ(store->find(credential::mineos_webhook_secret)->reveal(), "one\ntwo");
}

TEST(Credentials, FileReadableByOthersGetsAWarningNamingIt) {
  test::temp_dir dir;
  credentials_config cfg;
  const auto loose = dir.write("loose", "value-loose", 0644);
  const auto tight = dir.write("tight", "value-tight", 0600);
  cfg.files = {{"admin_token", loose}, {"store_key", tight}};
  credential_load_report report;
  load_credentials(cfg, env_of({}), report);
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_THAT(report.warnings[0], HasSubstr(loose.string()));
  EXPECT_THAT(report.warnings[0], HasSubstr("admin_token"));
  EXPECT_THAT(report.warnings[0], HasSubstr("0644"));
  EXPECT_THAT(report.warnings[0], Not(HasSubstr("value-loose")));
}

TEST(Credentials, UnreadableFileIsAnErrorNamingValueAndFile) {
  credentials_config cfg;
  cfg.files = {{"store_key", "/nonexistent/store.key"}};
  credential_load_report report;
  auto store = load_credentials(cfg, env_of({}), report);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_THAT(report.errors[0], HasSubstr("store_key"));
  EXPECT_THAT(report.errors[0], HasSubstr("/nonexistent/store.key"));
  EXPECT_FALSE(store->find(credential::store_key));
}

config config_with(std::map<std::string, std::string, std::less<>> values,
                   std::string api_base_url = "") {
  config c;
  c.source = "/etc/dsr.toml";
  c.credentials.inline_values = std::move(values);
  c.mineos.api_base_url = std::move(api_base_url);
  return c;
}

const std::map<std::string, std::string, std::less<>> complete{
    {"exponea_api_key", "k-SECRET-1"},
    {"exponea_api_secret", "s-SECRET-2"},
    {"exponea_project_token", "p-SECRET-3"},
    {"exponea_api_token", "t-SECRET-4"},
    {"mineos_webhook_secret", "w-SECRET-5-sixteen-chars"},
    {"admin_token", "a-SECRET-6-at-least-thirty-two-characters"},
    {"store_key", std::string(64, 'a')},
};

std::vector<std::string> problems_for(const config& c) {
  credential_load_report report;
  auto store = load_credentials(c.credentials, env_of({}), report);
  return check_credentials(c, *store);
}

TEST(Credentials, CompleteSetPasses) {
  EXPECT_TRUE(problems_for(config_with(complete)).empty());
}

TEST(Credentials, MissingValueIsNamedWithHowToProvideIt) {
  auto values = complete;
  values.erase("exponea_api_secret");
  const auto problems = problems_for(config_with(values));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("exponea_api_secret is missing"));
  EXPECT_THAT(problems[0], HasSubstr("DSR_CONNECTOR_EXPONEA_API_SECRET"));
  EXPECT_THAT(problems[0], HasSubstr("/etc/dsr.toml"));
  for (const auto& [k, v] : complete) {
    EXPECT_THAT(problems[0], Not(HasSubstr(v)));
  }
}

TEST(Credentials, MineosApiKeyIsNeededOnlyWhenReporting) {
  EXPECT_TRUE(problems_for(config_with(complete)).empty());
  const auto problems = problems_for(config_with(complete, "https://api.portal.saymine.com"));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("mineos_api_key"));
}

TEST(Credentials, StoreKeyMustBe64HexDigitsAndIsNeverEchoed) {
  auto values = complete;
  values["store_key"] = "not-hex-SECRET-VALUE";
  const auto problems = problems_for(config_with(values));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("store_key"));
  EXPECT_THAT(problems[0], HasSubstr("openssl rand -hex 32"));
  EXPECT_THAT(problems[0], Not(HasSubstr("SECRET-VALUE")));
}

TEST(Credentials, ShortAdminTokenAndWebhookSecretsAreRefusedWithoutBeingPrinted) {
  auto values = complete;
  values["admin_token"] = "short-SECRET-31-characters-long";  // 31
  values["mineos_webhook_secret"] = "a-good-long-webhook-secret\nshort-SECRET-9";
  const auto problems = problems_for(config_with(values));
  ASSERT_EQ(problems.size(), 2u);
  std::string all;
  for (const auto& p : problems) {
    all += p + "\n";
  }
  EXPECT_THAT(all, HasSubstr("admin_token"));
  EXPECT_THAT(all, HasSubstr("shorter than 32 characters"));
  EXPECT_THAT(all, HasSubstr("mineos_webhook_secret"));
  EXPECT_THAT(all, HasSubstr("secret 2 of 2 is shorter than 16 characters"));
  EXPECT_THAT(all, Not(HasSubstr("SECRET")));
  EXPECT_THAT(all, Not(HasSubstr("a-good-long")));
  values["admin_token"] = std::string(32, 'x');
  values["mineos_webhook_secret"] = std::string(16, 'y');
  EXPECT_TRUE(problems_for(config_with(values)).empty());
}

TEST(Credentials, WebhookSecretSplitsIntoOneSecretPerLine) {
  const auto parts = split_lines(secret("  old-secret \n\nnew-secret\r\n"));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].reveal(), "old-secret");
  EXPECT_EQ(parts[1].reveal(), "new-secret");
  EXPECT_TRUE(split_lines(secret("\n \n")).empty());
}

}  // namespace
}  // namespace dsr
