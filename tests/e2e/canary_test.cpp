// The canary test (issue 5): one full run of the real daemon against the real simulator, with
// random canary secrets and e-mail addresses, through every kind of request and failure; then
// every place a secret or an e-mail could leak is searched for them: the daemon's output, the
// store's files (database, WAL, shared memory, exports) and every HTTP answer the daemon gave.

#include "dsr/common/crypto.hpp"
#include "dsr/mineos/signature.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/sim_process.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace dsr::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string random_hex(std::size_t bytes) {
  static std::random_device device;
  std::string raw(bytes, '\0');
  for (auto& c : raw) {
    c = static_cast<char>(device() & 0xff);
  }
  return crypto::to_hex(raw);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Where `needle` occurs in `haystack` (case-insensitively): "" when nowhere.
std::string hit(const std::string& haystack, const std::string& needle) {
  const auto at = lower(haystack).find(lower(needle));
  return at == std::string::npos ? "" : fmt::format("at byte {}", at);
}

class Canary : public ::testing::Test {
 protected:
  struct secrets_t {
    std::string api_key = "key-" + random_hex(12);
    std::string api_secret = "sec-" + random_hex(12);
    std::string project_token = "prj-" + random_hex(12);
    std::string api_token = "tok-" + random_hex(12);
    std::string webhook_secret = "whk-" + random_hex(12);
    std::string old_webhook_secret = "whk-old-" + random_hex(12);
    std::string admin_token = "adm-" + random_hex(16);
    std::string mineos_key = "mos-" + random_hex(12);
    std::string store_key = random_hex(32);

    std::vector<std::string> all() const {
      return {api_key,     api_secret, project_token, api_token, webhook_secret, old_webhook_secret,
              admin_token, mineos_key, store_key};
    }
  } secret_;

  // One subject per case; the address is random, so any hit is a leak.
  std::string email(const std::string& who) {
    auto e = fmt::format("{}.{}@Canary-{}.example", who, random_hex(6), random_hex(3));
    emails_.push_back(e);
    return e;
  }

  void start(const std::vector<std::string>& existing) {
    std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
    auto seed = json::parse(in);
    seed["project_token"] = secret_.project_token;
    seed["private_keys"][0]["key"] = secret_.api_key;
    seed["private_keys"][0]["secret"] = secret_.api_secret;
    seed["public_tokens"][0]["token"] = secret_.api_token;
    seed["write_delay_ms"] = 0;
    seed["mineos"]["api_key"] = secret_.mineos_key;
    seed["customers"] = json::array();
    for (const auto& e : existing) {
      seed["customers"].push_back(
          {{"ids", {{"registered", lower(e)}, {"cookie", {"c-" + random_hex(4)}}}},
           {"properties", {{"email", lower(e)}, {"first_name", "Canary"}, {"city", "Brno"}}},
           {"events",
            {{{"type", "purchase"},
              {"timestamp", 1764233523},
              {"properties", {{"email", lower(e)}, {"total_price", 10}}}}}}});
    }
    sim_ = start_sim(dir_.write("seed.json", seed.dump()), dir_.path() / "sim.log", sim_port_);
    ASSERT_NE(sim_port_, 0) << sim_->output();

    std::filesystem::create_directories(dir_.path() / "state");
    // Secrets arrive every way the contract allows: a file (two rotated webhook secrets), the
    // environment, and inline.
    dir_.write("secrets/webhook", secret_.old_webhook_secret + "\n" + secret_.webhook_secret + "\n",
               0600);
    dir_.write("secrets/api_secret", secret_.api_secret + "\n", 0600);
    const auto cfg = dir_.write(
        "dsr.toml", fmt::format(R"(
[server]
listen = "127.0.0.1:0"
max_body_bytes = 65536
[store]
path = "state/dsr.sqlite3"
[exponea]
base_url = "http://127.0.0.1:{0}"
timeout_seconds = 2
verify_timeout_seconds = 30
[mineos]
api_base_url = "http://127.0.0.1:{0}"
[retry]
initial_backoff_ms = 20
max_attempts = 3
pause_probe_seconds = 1
[credentials]
exponea_api_key = "{1}"
exponea_api_secret_file = "secrets/api_secret"
exponea_project_token = "{2}"
mineos_webhook_secret_file = "secrets/webhook"
admin_token = "{3}"
store_key = "{4}"
mineos_api_key = "{5}"
)",
                                sim_port_, secret_.api_key, secret_.project_token,
                                secret_.admin_token, secret_.store_key, secret_.mineos_key));
    daemon_ = std::make_unique<process>(
        DSR_BINARY, std::vector<std::string>{"serve", "--config", cfg.string()},
        std::map<std::string, std::string>{{"DSR_CONNECTOR_EXPONEA_API_TOKEN", secret_.api_token}},
        dir_.path() / "daemon.log");
    ASSERT_TRUE(daemon_->wait_listening()) << daemon_->output();
  }

  // Every answer of the daemon is kept for the search.
  http_reply keep(http_reply r) {
    responses_ += fmt::format("{}\n", r.status);
    for (const auto& [name, value] : r.headers) {
      responses_ += name + ": " + value + "\n";
    }
    responses_ += r.body + "\n";
    return r;
  }
  http_reply webhook(const std::string& op, const std::string& body, const std::string& key = "") {
    return keep(post_signed(daemon_->port(), "/v1/mineos/" + op, body,
                            key.empty() ? secret_.webhook_secret : key));
  }
  http_reply admin(const std::string& method, const std::string& target,
                   const std::string& token = "") {
    return keep(
        request(daemon_->port(), method, target, "",
                {{"Authorization", "Bearer " + (token.empty() ? secret_.admin_token : token)}}));
  }
  void submit(const std::string& op, const std::string& id, const std::string& email) {
    ASSERT_EQ(webhook(op, webhook_body("t-" + id, id, email)).status, 202);
  }
  json wait_reported(const std::string& id) {
    json v;
    const auto until = std::chrono::steady_clock::now() + 40s;
    while (std::chrono::steady_clock::now() < until) {
      v = json::parse(admin("GET", "/v1/requests/" + id).body);
      if (v.value("reported", false)) {
        return v;
      }
      std::this_thread::sleep_for(50ms);  // polling for an event, not timing it
    }
    ADD_FAILURE() << id << " was not reported: " << v.dump();
    return v;
  }
  void fault(const json& f) {
    ASSERT_EQ(request(sim_port_, "POST", "/_sim/faults", f.dump()).status, 200);
  }

  temp_dir dir_;
  std::unique_ptr<process> sim_;
  std::uint16_t sim_port_ = 0;
  std::unique_ptr<process> daemon_;
  std::vector<std::string> emails_;
  std::string responses_;
};

TEST_F(Canary, NoSecretOrEmailLeaksAnywhereAcrossAFullRun) {
  const auto deleted = email("deleted");
  const auto copied = email("copied");
  const auto unknown = email("unknown");
  const auto previewed = email("previewed");
  const auto refused = email("refused");
  const auto flaky = email("flaky");
  const auto paused = email("paused");
  const auto malformed = email("malformed");
  start({deleted, copied, previewed, refused, flaky, paused});

  // The happy paths: delete, copy (data reported from a sealed export), unknown subject.
  submit("delete", "req-del", deleted);
  submit("copy", "req-copy", copied);
  submit("delete", "req-unknown", unknown);
  EXPECT_EQ(wait_reported("req-del")["outcome"], "Completed");
  EXPECT_EQ(wait_reported("req-copy")["outcome"], "Completed");
  EXPECT_EQ(wait_reported("req-unknown")["outcome"], "UserNotFound");

  // Preview and isTest, and the old webhook secret still verifying during the rotation.
  EXPECT_EQ(webhook("preview",
                    fmt::format(R"({{"traceId":"t-prev","userInfo":{{"email":"{}"}}}})", previewed))
                .status,
            200);
  EXPECT_EQ(webhook("delete", R"({"traceId":"t-test","isTest":true})").status, 200);
  EXPECT_EQ(
      webhook("delete", R"({"traceId":"t-test-old","isTest":true})", secret_.old_webhook_secret)
          .status,
      200);

  // Every refusal at the door.
  const auto body = webhook_body("t-bad", "req-bad", malformed);
  EXPECT_EQ(webhook("delete", body, "not-the-secret").status, 401);
  EXPECT_EQ(keep(request(daemon_->port(), "POST", "/v1/mineos/delete", body)).status, 401);
  EXPECT_EQ(webhook("delete", R"({"traceId":)").status, 400);
  EXPECT_EQ(webhook("delete", R"({"traceId":"t-x","request":{"id":"r-x"},"userInfo":{}})").status,
            400);
  EXPECT_EQ(webhook("delete", fmt::format(R"({{"traceId":"t-y","request":{{"id":"r-y"}},)"
                                          R"("userInfo":{{"email":"{}"}},"pad":"{}"}})",
                                          malformed, std::string(70000, 'p')))
                .status,
            413);
  EXPECT_EQ(webhook("copy", webhook_body("t-other", "req-del", deleted)).status, 409);
  EXPECT_EQ(admin("GET", "/v1/requests", "wrong-token").status, 401);
  EXPECT_EQ(keep(request(daemon_->port(), "GET", "/v1/requests")).status, 401);
  EXPECT_EQ(admin("GET", "/v1/requests/no-such-request").status, 404);
  EXPECT_EQ(admin("POST", "/v1/requests/req-del/retry").status, 409);
  EXPECT_EQ(admin("GET", "/v1/mineos/delete").status, 405);
  EXPECT_EQ(admin("GET", "/nowhere").status, 404);

  // Failures after the door: a permanent Exponea error, a transient one with MineOS down once,
  // and a rejected credential that pauses dispatch until a probe passes.
  fault({{"endpoint", "export-one"},
         {"status", 400},
         {"body", R"({"success":false,"errors":["Invalid customer ids"]})"}});
  submit("delete", "req-refused", refused);
  EXPECT_EQ(wait_reported("req-refused")["outcome"], "Failed");
  fault(json::array(
      {{{"endpoint", "anonymize"}, {"status", 500}}, {{"endpoint", "mineos"}, {"status", 503}}}));
  submit("delete", "req-flaky", flaky);
  EXPECT_EQ(wait_reported("req-flaky")["outcome"], "Completed");
  fault({{"endpoint", "export-one"},
         {"status", 401},
         {"body", R"({"success":false,"error":"Invalid API key"})"}});
  submit("delete", "req-paused", paused);
  EXPECT_EQ(wait_reported("req-paused")["outcome"], "Completed");

  // The operator's views.
  EXPECT_EQ(admin("GET", "/v1/requests").status, 200);
  EXPECT_EQ(admin("GET", "/v1/requests?state=failed").status, 200);
  for (const char* id :
       {"req-del", "req-copy", "req-unknown", "req-refused", "req-flaky", "req-paused"}) {
    EXPECT_EQ(admin("GET", std::string("/v1/requests/") + id).status, 200);
  }
  keep(request(daemon_->port(), "GET", "/readyz"));
  keep(request(daemon_->port(), "GET", "/healthz"));

  daemon_->signal(SIGTERM);
  ASSERT_EQ(daemon_->wait_exit(), 0) << daemon_->output();
  sim_->signal(SIGTERM);

  // The search. Store files: the database, its WAL and shared memory, and any export left.
  std::vector<std::pair<std::string, std::string>> stored;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir_.path() / "state")) {
    if (f.is_regular_file()) {
      stored.emplace_back(f.path().string(), read_file(f.path()));
    }
  }
  ASSERT_FALSE(stored.empty());
  const auto output = daemon_->output();
  for (const auto& s : secret_.all()) {
    EXPECT_EQ(hit(output, s), "") << "a secret in the daemon's output";
    EXPECT_EQ(hit(responses_, s), "") << "a secret in an HTTP answer";
    for (const auto& [name, content] : stored) {
      EXPECT_EQ(hit(content, s), "") << "a secret in " << name;
    }
  }
  const auto raw_store_key = *crypto::from_hex(secret_.store_key);
  for (const auto& [name, content] : stored) {
    EXPECT_EQ(content.find(raw_store_key), std::string::npos) << "store_key's bytes in " << name;
  }
  for (const auto& e : emails_) {
    EXPECT_EQ(hit(output, e), "") << "an e-mail in the log at the default level";
    for (const auto& [name, content] : stored) {
      EXPECT_EQ(hit(content, e), "") << "an e-mail in " << name << " after every job was reported";
    }
  }
  // The search is not blind: it finds the canaries where they belong.
  const auto seed = read_file(dir_.path() / "seed.json");
  EXPECT_NE(hit(seed, secret_.api_secret), "");
  EXPECT_NE(hit(seed, deleted), "");
}

}  // namespace
}  // namespace dsr::test
