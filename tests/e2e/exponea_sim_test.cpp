// The exponea-sim binary, driven by the daemon's own Exponea client over loopback.

#include "dsr/common/crypto.hpp"
#include "dsr/exponea/client.hpp"
#include "fakes/fake_credentials.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/run_sync.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <string>
#include <vector>

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

// Bodies of the wrong shape, as Exponea's own SDK tests and careless clients send them: each is
// answered with the API's JSON error and the process keeps serving.
TEST(ExponeaSimBinary, KeepsServingAfterHostileBodies) {
  using nlohmann::json;
  temp_dir dir;
  process sim(
      DSR_SIM_BINARY,
      {"--seed", DSR_SOURCE_DIR "/config/exponea-sim.example.json", "--listen", "127.0.0.1:0"}, {},
      dir.path() / "sim.log");
  const auto port = sim.wait_port(R"(exponea-sim listening on http://[^ ]+:(\d+))");
  ASSERT_NE(port, 0) << sim.output();
  ASSERT_EQ(request(port, "POST", "/_sim/settings", R"({"write_delay_ms":0})").status, 200);

  const std::map<std::string, std::string> token{{"Authorization", "Token demo-api-token"}};
  const std::map<std::string, std::string> basic{
      {"Authorization", "Basic " + crypto::base64_encode("demo-api-key:demo-api-secret")}};
  const std::string project = "/track/v2/projects/demo-project-token";
  const std::string data = "/data/v2/projects/demo-project-token";
  const std::string jane = R"("customer_ids":{"registered":"jane@example.com"})";
  const std::string event = jane + R"(,"event_type":"privacy_request")";
  std::string too_many = R"({"commands":[)";
  for (int i = 0; i < 51; ++i) {
    too_many += (i ? "," : "") + std::string(R"({"name":"system/time"})");
  }
  too_many += "]}";
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  struct hostile {
    std::string path, body;
    std::map<std::string, std::string> headers;
    int status;
  };
  const std::vector<hostile> bodies{
      {project + "/customers/events", "{" + jane + R"(,"event_type":{"name":"x"}})", token, 400},
      {project + "/customers/events", "{" + jane + R"(,"event_type":42})", token, 400},
      {project + "/customers/events",
       R"({"customer_ids":["jane@example.com"],"event_type":"privacy_request"})", token, 200},
      {project + "/customers/events",
       R"({"customer_ids":"jane@example.com","event_type":"privacy_request"})", token, 200},
      {project + "/customers/events",
       R"({"customer_ids":{"registered":7},"event_type":"privacy_request"})", token, 200},
      {project + "/customers/events",
       R"({"customer_ids":{"registered":{"a":"b"}},"event_type":"privacy_request"})", token, 200},
      {project + "/customers/events", "{" + event + R"(,"properties":"x"})", token, 400},
      {project + "/customers/events", "{" + event + R"(,"timestamp":true})", token, 400},
      {project + "/customers/events", "{" + event + R"(,"timestamp":"soon"})", token, 400},
      {project + "/customers/events", "{" + event + R"(,"properties":{"p":)" + deep + "}}", token,
       400},
      {project + "/customers/events", "{oops", token, 400},
      {project + "/customers/events", "[]", token, 400},
      {project + "/customers", "{" + jane + R"(,"properties":"x"})", token, 400},
      {project + "/batch", "{}", token, 400},
      {project + "/batch", R"({"commands":[1]})", token, 400},
      {project + "/batch", R"({"commands":"system/time"})", token, 400},
      {project + "/batch", too_many, token, 400},
      {project + "/batch", R"({"commands":[{"name":"customers/events","data":"x"}]})", token, 200},
      {project + "/batch",
       R"({"commands":[{"name":"customers/events","data":{)" + jane + R"(,"event_type":[]}}]})",
       token, 200},
      {data + "/customers/export-one", R"({"customer_ids":"jane@example.com"})", basic, 200},
      {data + "/customers/anonymize", R"({"customer_ids":[{"registered":"x"}]})", basic, 200},
      {"/_sim/faults", "[1]", {}, 400},
      {"/_sim/faults", R"({"endpoint":"track","count":"many"})", {}, 400},
      {"/_sim/settings", "[]", {}, 400},
      {"/_sim/customers", R"({"ids":"jane@example.com"})", {}, 400},
  };
  for (const auto& h : bodies) {
    const auto r = request(port, "POST", h.path, h.body, h.headers);
    const auto what = h.path + " " + h.body.substr(0, 80);
    ASSERT_EQ(r.status, h.status) << what << "\n" << r.body << "\n" << sim.output();
    const auto body = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << what << ": " << r.body;
    if (!h.path.starts_with("/_sim/")) {
      // Refused, whole or (in a batch) per command.
      EXPECT_EQ(body.contains("results") ? body["results"][0]["success"] : body["success"], false)
          << what << ": " << r.body;
    }
  }

  // Still serving, and the hostile calls stored nothing.
  auto r = request(port, "POST", project + "/customers/events", "{" + event + "}", token);
  ASSERT_EQ(r.status, 200) << sim.output();
  EXPECT_EQ(json::parse(r.body)["success"], true);
  r = request(port, "POST", data + "/customers/export-one", "{" + jane + "}", basic);
  ASSERT_EQ(r.status, 200);
  const auto events = json::parse(r.body)["events"];
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2]["type"], "privacy_request");
  EXPECT_EQ(events[2]["properties"], json::object());
  EXPECT_TRUE(events[2]["timestamp"].is_number());

  sim.signal(SIGTERM);
  EXPECT_EQ(sim.wait_exit(), 0);
}

}  // namespace
}  // namespace dsr::test
