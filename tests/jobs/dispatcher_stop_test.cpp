// How the dispatcher's workers meet a graceful stop: the stop waits for a claim in the store, and a
// job that claim returns is given back to the queue instead of being started.

#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/dispatcher.hpp"
#include "dsr/jobs/store.hpp"
#include "dsr/jobs/store_worker.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include <deque>
#include <memory>
#include <span>

namespace dsr {
namespace {

using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 12 / 7}};

struct fixed_clock final : clock {
  time_point now() const override { return t0; }
};

// The store's side of the dispatcher, run by the test: each task waits until the test runs it, so
// the test decides what the store answers while a stop begins.
class held_queue final : public job_queue {
 public:
  explicit held_queue(job_store& store) : store_(store) {}
  void insert(new_job, insert_callback) override { ADD_FAILURE() << "the dispatcher inserted"; }
  void run(task t) override { tasks_.push_back(std::move(t)); }
  bool writable() const override { return true; }

  std::size_t waiting() const { return tasks_.size(); }
  void run_next() {
    auto t = std::move(tasks_.front());
    tasks_.pop_front();
    t(store_);
  }

 private:
  job_store& store_;
  std::deque<task> tasks_;
};

// Exponea as seen by a job that must not start: every call is counted and fails.
class counting_api final : public exponea::api {
 public:
  int calls = 0;
  boost::asio::awaitable<exponea::outcome<std::optional<exponea::export_summary>>> export_one(
      exponea::export_request) override {
    ++calls;
    co_return refused();
  }
  boost::asio::awaitable<exponea::outcome<void>> track(nlohmann::json, exponea::event,
                                                       exponea::auth,
                                                       exponea::before_send) override {
    ++calls;
    co_return refused();
  }
  boost::asio::awaitable<exponea::outcome<bool>> anonymize(nlohmann::json,
                                                           exponea::before_send) override {
    ++calls;
    co_return refused();
  }
  boost::asio::awaitable<exponea::outcome<void>> system_time(exponea::auth) override {
    ++calls;
    co_return refused();
  }
  boost::asio::awaitable<exponea::outcome<std::vector<exponea::consent_category>>>
  consent_categories() override {
    ++calls;
    co_return refused();
  }

 private:
  static exponea::call_error refused() {
    return exponea::call_error{exponea::answer_class::failed, 0, "no call expected", "", {}};
  }
};

new_job delete_request(std::string request_id) {
  new_job j;
  j.op = operation::delete_;
  j.request_id = std::move(request_id);
  j.trace_id = "t-1";
  j.integration_id = "int-42";
  j.source = "Form";
  j.request_type = "delete";
  j.received_at = t0;
  j.subject = "jane@example.com";
  return j;
}

TEST(DispatcherStop, AJobClaimedAsTheStopBeginsGoesBackToTheQueueUntouched) {
  test::temp_dir dir;
  auto opened = open_sqlite_store({dir.path() / "jobs.sqlite3"});
  ASSERT_TRUE(opened) << opened.error().detail;
  auto& store = **opened;
  const auto job = delete_request("r-1");
  ASSERT_TRUE(store.insert(std::span<const new_job>(&job, 1), 100));

  boost::asio::io_context io;
  held_queue queue(store);
  counting_api api;
  int holds = 0;
  dispatcher_options o;
  o.owner = "test";
  o.concurrency = 1;
  o.poll_interval = 10ms;
  o.sweep_interval = 1h;
  o.export_dir = dir.path();
  o.hold = [&holds] {
    ++holds;
    return std::shared_ptr<void>(nullptr, [&holds](void*) { --holds; });
  };
  async_store db(queue, io.get_executor());
  const auto dispatcher =
      make_dispatcher(io.get_executor(), db, api, std::make_shared<fixed_clock>(), o);
  dispatcher->start();
  io.poll();
  ASSERT_EQ(queue.waiting(), 1u);  // the worker's claim, in the store
  EXPECT_EQ(holds, 1);             // a stop now would wait for it

  dispatcher->stop();
  io.poll();
  queue.run_next();  // the claim takes r-1 as the stop has begun
  io.poll();
  EXPECT_EQ(holds, 1);  // still held: the job is being given back
  ASSERT_EQ(queue.waiting(), 1u);
  queue.run_next();
  io.poll();

  EXPECT_EQ(api.calls, 0);  // never started
  EXPECT_EQ(holds, 0);
  EXPECT_EQ(queue.waiting(), 0u);
  const auto after = store.find("r-1");
  ASSERT_TRUE(after && *after);
  EXPECT_EQ((*after)->state, job_state::queued);
  EXPECT_EQ((*after)->attempts, 0u);
  EXPECT_TRUE((*after)->lease_owner.empty());
}

// Several daemons (docs/contract.md §8): while the cluster holds claims back (a newer schema in the
// store, another daemon's open breaker), no worker asks the store for a job; once it lets go, they
// do.
TEST(DispatcherCluster, NoJobIsClaimedWhileTheClusterHoldsClaimsBack) {
  test::temp_dir dir;
  auto opened = open_sqlite_store({dir.path() / "jobs.sqlite3"});
  ASSERT_TRUE(opened) << opened.error().detail;
  auto& store = **opened;
  const auto job = delete_request("r-1");
  ASSERT_TRUE(store.insert(std::span<const new_job>(&job, 1), 100));

  boost::asio::io_context io;
  held_queue queue(store);
  counting_api api;
  std::optional<std::string> why = "the job store has schema version 4, newer than this one's";
  int asked = 0;
  dispatcher_options o;
  o.owner = "test";
  o.concurrency = 2;
  o.poll_interval = 1ms;
  o.sweep_interval = 1h;
  o.export_dir = dir.path();
  o.cluster_hold = [&] {
    ++asked;
    return why;
  };
  async_store db(queue, io.get_executor());
  const auto dispatcher =
      make_dispatcher(io.get_executor(), db, api, std::make_shared<fixed_clock>(), o);
  dispatcher->start();
  // The workers ask and wait, polling: many turns, not one claim.
  while (asked < 20) {
    io.run_one();
  }
  EXPECT_EQ(queue.waiting(), 0u);
  why.reset();
  while (queue.waiting() == 0) {
    io.run_one();
  }
  queue.run_next();  // the claim: r-1 is taken
  EXPECT_EQ((*store.find("r-1"))->state, job_state::running);
  // Stop, and let what is under way finish (the run fails: this api refuses every call).
  dispatcher->stop();
  for (int i = 0; i < 10000; ++i) {
    io.poll();
    if (queue.waiting() == 0) {
      break;
    }
    queue.run_next();
  }
  EXPECT_EQ(queue.waiting(), 0u);
}

}  // namespace
}  // namespace dsr
