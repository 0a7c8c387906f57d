// End-to-end: the real dsr-connector binary under a flood of idle connections to its webhook
// port. Neither the admin listener nor other clients may be starved by it.

#include "dsr/mineos/signature.hpp"
#include "support/e2e_config.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <csignal>
#include <sstream>
#include <string>
#include <vector>

namespace dsr::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* binary = DSR_BINARY;
constexpr std::string_view webhook_secret = "webhook-secret-e2e-SECRET";
constexpr int flood_size = 1030;  // more than max_connections (1024)
constexpr std::string_view refusal_warning = "refused since the last warning";

class Listeners : public ::testing::Test {
 protected:
  void SetUp() override {
    // The flood's sockets are this process's descriptors too (the daemon raises its own limit).
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved_), 0);
    const rlim_t needed = flood_size + 256;
    ASSERT_TRUE(saved_.rlim_max == RLIM_INFINITY || saved_.rlim_max >= needed)
        << "the hard limit on open files is " << saved_.rlim_max << ", below the " << needed
        << " this test needs for its " << flood_size
        << " connections: raise it (ulimit -Hn, or LimitNOFILE= for a service running the tests)";
    if (saved_.rlim_cur != RLIM_INFINITY && saved_.rlim_cur < needed) {
      rlimit raised = saved_;
      raised.rlim_cur = needed;
      ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
      restore_ = true;
    }
  }
  void TearDown() override {
    if (restore_) {
      ::setrlimit(RLIMIT_NOFILE, &saved_);
    }
  }

  std::unique_ptr<process> start(const std::string& extra_server = "") {
    // first_byte_timeout keeps the silent flood open while the test looks: with the default 5 s
    // the daemon would already clear it by itself, which is the other half of the defence.
    const auto cfg =
        dir_.write("dsr.toml",
                   "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n"
                   "first_byte_timeout_seconds = 60\n" +
                       extra_server + "\n[store]\npath = \"dsr.sqlite3\"\n" +
                       "[exponea]\nbase_url = \"http://127.0.0.1:9\"\n" +
                       "[jobs]\nshutdown_grace_seconds = 10\n" + test_credentials());
    auto p = std::make_unique<process>(
        binary, std::vector<std::string>{"serve", "--config", cfg.string()},
        std::map<std::string, std::string>{}, dir_.path() / "daemon.log");
    EXPECT_TRUE(p->wait_listening()) << p->output();
    EXPECT_NE(p->admin_port(), p->port());
    return p;
  }

  // `flood_size` connections from 127.0.0.1 that send nothing. Returns once the daemon has taken
  // all of them: the last one, beyond every limit, is answered 503 and is accepted last.
  static std::vector<connection> flood(std::uint16_t port) {
    std::vector<connection> open;
    for (int i = 0; i < flood_size; ++i) {
      connection c(port);
      EXPECT_TRUE(c.is_open()) << "connection " << i;
      open.push_back(std::move(c));
    }
    const auto last = open.back().read_reply();
    EXPECT_EQ(last.status, 503);
    EXPECT_EQ(last.header("retry-after"), "1");
    return open;
  }

  // A signed delete from `from`, on a connection of its own.
  static http_reply webhook_from(std::uint16_t port, std::string_view from) {
    connection c(port, 10s, from);
    const auto body = webhook_body("t-other", "r-other");
    if (!c.is_open() ||
        !c.send(raw_request("POST", "/v1/mineos/delete", body,
                            {{"X-Mine-Signature", mineos::sign(body, webhook_secret)}}))) {
      return {};
    }
    return c.read_reply();
  }

  // The refusal warnings logged so far, one per line.
  static std::vector<std::string> refusal_lines(const process& p) {
    std::vector<std::string> lines;
    std::istringstream in(p.output());
    for (std::string line; std::getline(in, line);) {
      if (line.find(refusal_warning) != std::string::npos) {
        lines.push_back(line);
      }
    }
    return lines;
  }

  temp_dir dir_;
  rlimit saved_{};
  bool restore_ = false;
};

TEST_F(Listeners, AThousandIdleConnectionsFromOneAddressStarveNeitherTheAdminPortNorOthers) {
  auto d = start();  // max_connections = 1024, max_connections_per_client = 256
  const auto idle = flood(d->port());

  EXPECT_EQ(request(d->admin_port(), "GET", "/healthz").status, 200);
  EXPECT_EQ(request(d->admin_port(), "GET", "/metrics").status, 200);
  // A webhook from another address is served; the flooding address is held at its cap.
  EXPECT_EQ(webhook_from(d->port(), "127.0.0.2").status, 202);
  connection more(d->port(), 10s, "127.0.0.2");
  ASSERT_TRUE(more.send(raw_request("GET", "/healthz", "")));
  EXPECT_EQ(more.read_reply().status, 200);
  EXPECT_EQ(request(d->port(), "GET", "/healthz").status, 503);

  // The burst of 775 refusals is one warning, which names the key and not the address.
  ASSERT_TRUE(d->wait_output(refusal_warning)) << d->output();
  const auto warnings = refusal_lines(*d);
  ASSERT_EQ(warnings.size(), 1u) << d->output();
  EXPECT_THAT(warnings[0], HasSubstr("max_connections_per_client (256)"));
  EXPECT_THAT(warnings[0], Not(HasSubstr("127.0.0.")));

  // A stop closes the silent connections at once instead of waiting out the grace period.
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait_exit(8s), 0) << d->output();
}

TEST_F(Listeners, AFullWebhookListenerLeavesTheAdminListenerRoom) {
  // As behind a load balancer: no cap per address, so the flood fills the webhook listener.
  auto d = start("max_connections_per_client = 0");
  const auto idle = flood(d->port());

  EXPECT_EQ(request(d->admin_port(), "GET", "/healthz").status, 200);
  EXPECT_EQ(request(d->admin_port(), "GET", "/metrics").status, 200);
  EXPECT_EQ(webhook_from(d->port(), "127.0.0.2").status, 503);  // the webhook listener is full

  ASSERT_TRUE(d->wait_output(refusal_warning)) << d->output();
  const auto warnings = refusal_lines(*d);
  ASSERT_EQ(warnings.size(), 1u) << d->output();
  EXPECT_THAT(warnings[0], HasSubstr("on listen"));
  EXPECT_THAT(warnings[0], HasSubstr("max_connections (1024)"));
}

}  // namespace
}  // namespace dsr::test
