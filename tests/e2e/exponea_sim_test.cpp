// The exponea-sim binary, driven by the daemon's own Exponea client over loopback.

#include "dsr/exponea/client.hpp"
#include "fakes/fake_credentials.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/run_sync.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

namespace dsr::test {
namespace {

using namespace std::chrono_literals;

TEST(ExponeaSimBinary, ServesTheApiTheClientExpects) {
  temp_dir dir;
  process sim(
      DSR_SIM_BINARY,
      {"--seed", DSR_SOURCE_DIR "/config/exponea-sim.example.json", "--listen", "127.0.0.1:0"}, {},
      dir.path() / "sim.log");
  const auto port = sim.wait_port(R"(exponea-sim listening on http://[^ ]+:(\d+))");
  ASSERT_NE(port, 0) << sim.output();

  fake_credentials creds;
  creds.set(credential::exponea_api_key, "demo-api-key")
      .set(credential::exponea_api_secret, "demo-api-secret")
      .set(credential::exponea_project_token, "demo-project-token")
      .set(credential::exponea_api_token, "demo-api-token");
  boost::asio::io_context ioc;
  auto client =
      http::make_client(ioc.get_executor(), {"http://127.0.0.1:" + std::to_string(port), 5s});
  ASSERT_TRUE(client);
  auto api = exponea::make_api(std::move(*client), creds, make_system_clock(),
                               {dir.path() / "downloads", 1024 * 1024});
  const nlohmann::json jane{{"registered", "jane@example.com"}};

  EXPECT_TRUE(run_sync(ioc, api->system_time(exponea::auth::basic)));
  EXPECT_TRUE(run_sync(ioc, api->system_time(exponea::auth::token)));
  exponea::export_request of_jane{jane, dir.path() / "jane.json", {}};
  const auto found = run_sync(ioc, api->export_one(of_jane));
  ASSERT_TRUE(found && *found);
  std::ifstream saved(dir.path() / "jane.json");
  EXPECT_EQ(nlohmann::json::parse(saved)["properties"]["first_name"], "Jane");
  exponea::export_request of_nobody{{{"registered", "nobody@example.com"}}, {}, {}};
  const auto missing = run_sync(ioc, api->export_one(of_nobody));
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);

  // A lost answer: the anonymization takes effect, the connection drops unanswered. The client
  // must not silently send the write again; the caller sees a transient failure.
  ASSERT_EQ(
      request(port, "POST", "/_sim/faults", R"({"endpoint":"anonymize","drop":true,"apply":true})")
          .status,
      200);
  const auto dropped = run_sync(ioc, api->anonymize(jane));
  ASSERT_FALSE(dropped);
  EXPECT_EQ(dropped.error().kind, exponea::answer_class::transient);
  const auto calls = nlohmann::json::parse(request(port, "GET", "/_sim/calls").body);
  EXPECT_EQ(calls.back()["endpoint"], "anonymize");
  EXPECT_EQ(std::count_if(calls.begin(), calls.end(),
                          [](const auto& c) { return c["endpoint"] == "anonymize"; }),
            1);
  // A read over a kept-alive connection that drops is retried once on a fresh one.
  ASSERT_TRUE(run_sync(ioc, api->system_time(exponea::auth::basic)));  // pools a connection
  ASSERT_EQ(
      request(port, "POST", "/_sim/faults", R"({"endpoint":"export-one","drop":true})").status,
      200);
  exponea::export_request of_john{{{"registered", "john@example.com"}}, {}, {}};
  const auto reread = run_sync(ioc, api->export_one(of_john));
  ASSERT_TRUE(reread) << reread.error().message;
  EXPECT_TRUE(*reread);

  sim.signal(SIGTERM);
  EXPECT_EQ(sim.wait_exit(), 0);
}

}  // namespace
}  // namespace dsr::test
