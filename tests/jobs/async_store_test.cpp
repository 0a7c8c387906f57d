// The typed store face: each verb runs on the store thread and resumes its caller on the caller's
// executor, so that what the caller does with the answer (render, log, call back) never runs on
// the store thread.

#include "dsr/jobs/async_store.hpp"
#include "dsr/ops/admin_api.hpp"

#include "fakes/fake_credentials.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <span>
#include <thread>

namespace dsr {
namespace {

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 12 / 7}};

new_job delete_request(std::string request_id) {
  new_job j;
  j.op = operation::delete_;
  j.request_id = request_id;
  j.trace_id = "t-" + request_id;
  j.received_at = t0;
  j.subject = "jane@example.com";
  return j;
}

class AsyncStore : public ::testing::Test {
 protected:
  AsyncStore()
      : worker_(std::move(*open_sqlite_store({dir_.path() / "jobs.sqlite3"})), {}),
        db_(worker_, io_.get_executor()) {}

  test::temp_dir dir_;
  boost::asio::io_context io_;
  store_worker worker_;
  async_store db_;
};

TEST_F(AsyncStore, EachVerbResumesOnTheCallersThreadWithATypedResult) {
  const auto caller = std::this_thread::get_id();
  std::vector<std::thread::id> resumed_on;
  bool finished = false;
  boost::asio::co_spawn(
      io_,
      [&]() -> boost::asio::awaitable<void> {
        auto j = delete_request("r-1");
        const auto inserted = co_await db_.insert(std::move(j));
        resumed_on.push_back(std::this_thread::get_id());
        EXPECT_TRUE(inserted && inserted->result == insert_outcome::kind::inserted);
        auto again = delete_request("r-1");
        const auto repeated = co_await db_.insert(std::move(again));
        resumed_on.push_back(std::this_thread::get_id());
        EXPECT_TRUE(repeated && repeated->result == insert_outcome::kind::duplicate);
        const std::string id = "r-1";
        const auto found = co_await db_.find(id);
        resumed_on.push_back(std::this_thread::get_id());
        EXPECT_TRUE(found && *found && (*found)->state == job_state::queued);
        const std::string owner = "w/1";
        const auto claimed = co_await db_.claim(owner, t0, std::chrono::minutes(1));
        resumed_on.push_back(std::this_thread::get_id());
        EXPECT_TRUE(claimed && *claimed && (*claimed)->request_id == "r-1");
        const auto cancelled = co_await db_.cancel(id, t0);  // running: not cancellable
        resumed_on.push_back(std::this_thread::get_id());
        EXPECT_TRUE(cancelled && *cancelled == operator_result::conflict);
        finished = true;
      },
      boost::asio::detached);
  io_.run();
  EXPECT_TRUE(finished);
  ASSERT_EQ(resumed_on.size(), 5u);
  for (const auto& t : resumed_on) {
    EXPECT_EQ(t, caller) << "a verb resumed its caller on the store thread";
  }
}

TEST_F(AsyncStore, TheOperatorApiAnswersFromTheEventLoopNotTheStoreThread) {
  test::fake_credentials credentials;
  credentials.set(credential::admin_token, "admin-secret");
  ops::admin_api api(db_, credentials, ops::admin_options{30, dir_.path(), [] {}});
  http::router router;
  api.add_routes(router);
  const auto j = delete_request("r-1");
  worker_.insert(j, [](result<insert_outcome>) {});

  for (const std::string target : {"/v1/requests", "/v1/requests/r-1"}) {
    http::request req;
    req.method = "GET";
    req.target = target;
    req.headers.push_back({"authorization", "Bearer admin-secret"});
    std::optional<std::thread::id> answered_on;
    unsigned status = 0;
    router.handle(std::move(req), [&](http::response r) {
      answered_on = std::this_thread::get_id();
      status = r.status;
    });
    io_.restart();
    io_.run();
    ASSERT_TRUE(answered_on) << target;
    EXPECT_EQ(*answered_on, std::this_thread::get_id())
        << target << " answered on the store thread";
    EXPECT_EQ(status, 200u) << target;
  }
}

}  // namespace
}  // namespace dsr
