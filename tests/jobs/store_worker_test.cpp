#include "dsr/jobs/store_worker.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace dsr {
namespace {

// A store whose first insert blocks until the test opens the gate, recording every batch size.
class gated_store final : public job_store {
 public:
  result<std::vector<insert_outcome>> insert(std::span<const new_job> jobs, std::size_t) override {
    {
      std::unique_lock lock(mutex_);
      batches_.push_back(jobs.size());
      entered_.notify_all();
      open_.wait(lock, [&] { return gate_open_; });
    }
    if (fail_) {
      return make_failure(errc::store_unavailable, "injected: disk I/O error");
    }
    std::vector<insert_outcome> out;
    for (const auto& j : jobs) {
      out.push_back({insert_outcome::kind::inserted, j.request_id});
    }
    return out;
  }
  result<std::optional<job>> find(std::string_view) override { return std::optional<job>{}; }
  result<std::vector<job>> list(std::optional<job_state>, std::size_t) override {
    return std::vector<job>{};
  }
  result<std::size_t> count_active() override { return std::size_t{0}; }
  result<std::optional<job>> claim_next(std::string_view, time_point, millis) override {
    return std::optional<job>{};
  }
  result<void> append_step(std::int64_t, std::string_view, const job_step&) override { return {}; }
  std::vector<result<void>> append_steps(std::span<const step_line> lines) override {
    return std::vector<result<void>>(lines.size());
  }
  result<void> release(std::int64_t, std::string_view, const job_release&, time_point) override {
    return {};
  }
  result<std::vector<job>> due_reports(time_point, std::size_t) override {
    return std::vector<job>{};
  }
  result<void> record_report(std::int64_t, const report_update&, time_point) override { return {}; }
  result<operator_result> retry(std::string_view, time_point) override {
    return operator_result::not_found;
  }
  result<operator_result> cancel(std::string_view, time_point) override {
    return operator_result::not_found;
  }
  result<std::size_t> expire_leases(time_point) override { return std::size_t{0}; }
  result<std::size_t> renew_leases(std::span<const std::string>, time_point,
                                   std::chrono::milliseconds) override {
    return std::size_t{0};
  }
  result<void> probe_write(time_point) override {
    const std::lock_guard lock(mutex_);
    if (fail_) {
      return make_failure(errc::store_unavailable, "injected: disk I/O error");
    }
    return {};
  }
  result<void> set_max_size(std::uint64_t) override { return {}; }
  result<void> forget_subject(std::int64_t) override { return {}; }
  result<time_point> file_link_expiry(std::int64_t, time_point t, time_point) override { return t; }
  result<std::vector<std::int64_t>> file_links(time_point, bool) override {
    return std::vector<std::int64_t>{};
  }
  result<std::size_t> purge_finished(time_point) override { return std::size_t{0}; }
  result<void> put_export_chunk(std::int64_t, std::string_view, std::uint32_t,
                                std::string_view) override {
    return {};
  }
  result<void> finish_export(std::int64_t, std::string_view, std::uint32_t, time_point) override {
    return {};
  }
  result<std::vector<job>> claim_reports(time_point, std::size_t,
                                         std::chrono::milliseconds) override {
    return std::vector<job>{};
  }
  result<std::chrono::milliseconds> renew_lease(std::int64_t, std::string_view, time_point,
                                                std::chrono::milliseconds lease) override {
    return lease;
  }
  result<cluster_view> heartbeat(const worker_beat&) override { return cluster_view{}; }
  result<call_turn> take_turn(call_limit, std::chrono::microseconds) override {
    return call_turn{};
  }
  result<void> block_calls(call_limit, std::chrono::milliseconds) override { return {}; }
  result<void> set_breaker(std::chrono::milliseconds, std::string_view) override { return {}; }
  result<bool> claim_periodic(std::string_view, std::string_view, std::chrono::milliseconds,
                              std::chrono::milliseconds) override {
    return true;
  }
  result<std::optional<std::uint32_t>> export_chunks(std::int64_t) override {
    return std::optional<std::uint32_t>{};
  }
  result<std::string> export_chunk(std::int64_t, std::uint32_t) override { return std::string(); }
  result<std::size_t> delete_exports(std::span<const std::int64_t>) override {
    return std::size_t{0};
  }
  result<std::size_t> purge_exports(time_point, std::span<const std::int64_t>) override {
    return std::size_t{0};
  }
  result<job_stats> stats(time_point, std::chrono::milliseconds,
                          std::chrono::milliseconds) override {
    return job_stats{};
  }
  result<std::vector<job>> at_risk(time_point, std::chrono::milliseconds, std::chrono::milliseconds,
                                   std::size_t) override {
    return std::vector<job>{};
  }
  void heal() {
    const std::lock_guard lock(mutex_);
    fail_ = false;
  }

  void wait_entered(std::size_t n) {
    std::unique_lock lock(mutex_);
    entered_.wait(lock, [&] { return batches_.size() >= n; });
  }
  void open_gate() {
    const std::lock_guard lock(mutex_);
    gate_open_ = true;
    open_.notify_all();
  }
  std::vector<std::size_t> batches() {
    const std::lock_guard lock(mutex_);
    return batches_;
  }
  bool fail_ = false;

 private:
  std::mutex mutex_;
  std::condition_variable entered_;
  std::condition_variable open_;
  bool gate_open_ = false;
  std::vector<std::size_t> batches_;
};

new_job job_named(const std::string& id) {
  new_job j;
  j.request_id = id;
  j.trace_id = "t-" + id;
  return j;
}

TEST(StoreWorker, ConcurrentInsertsShareOneCommit) {
  auto owned = std::make_unique<gated_store>();
  auto* store = owned.get();
  store_worker worker(std::move(owned), {});
  std::vector<std::future<result<insert_outcome>>> results;
  std::vector<std::shared_ptr<std::promise<result<insert_outcome>>>> promises;
  const auto submit = [&](const std::string& id) {
    auto p = std::make_shared<std::promise<result<insert_outcome>>>();
    results.push_back(p->get_future());
    worker.insert(job_named(id), [p](result<insert_outcome> r) { p->set_value(std::move(r)); });
  };
  submit("first");
  store->wait_entered(1);  // the first transaction is "being made durable"
  for (int i = 0; i < 50; ++i) {
    submit("r" + std::to_string(i));
  }
  store->open_gate();
  for (auto& f : results) {
    const auto r = f.get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result, insert_outcome::kind::inserted);
  }
  // 51 requests, 2 transactions: the 50 that queued behind the first were committed together.
  EXPECT_EQ(store->batches(), (std::vector<std::size_t>{1, 50}));
}

TEST(StoreWorker, CommittedBatchesAreAnsweredWhereCompleteOnSays) {
  auto owned = std::make_unique<gated_store>();
  auto* store = owned.get();
  store->open_gate();
  // complete_on hands each committed batch to "another executor": here a list the test runs.
  std::mutex m;
  std::vector<std::function<void()>> handed;
  store_worker_options o;
  o.complete_on = [&](std::function<void()> fn) {
    const std::lock_guard lock(m);
    handed.push_back(std::move(fn));
  };
  store_worker worker(std::move(owned), o);
  std::promise<std::thread::id> answered_on;
  worker.insert(job_named("a"), [&](result<insert_outcome> r) {
    EXPECT_TRUE(r);
    answered_on.set_value(std::this_thread::get_id());
  });
  auto answered = answered_on.get_future();
  store->wait_entered(1);
  for (int i = 0; i < 500; ++i) {  // bounded wait for the batch to be handed over
    {
      const std::lock_guard lock(m);
      if (!handed.empty()) {
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling, not timing
  }
  EXPECT_EQ(answered.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "answered on the store thread";
  std::vector<std::function<void()>> run;
  {
    const std::lock_guard lock(m);
    run.swap(handed);
  }
  ASSERT_EQ(run.size(), 1u);
  run[0]();
  EXPECT_EQ(answered.get(), std::this_thread::get_id());
}

TEST(StoreWorker, FailedCommitFailsEveryInsertOfTheBatchAndMarksTheStoreNotWritable) {
  auto owned = std::make_unique<gated_store>();
  owned->fail_ = true;
  owned->open_gate();
  store_worker worker(std::move(owned), {});
  std::promise<result<insert_outcome>> p;
  worker.insert(job_named("x"), [&](result<insert_outcome> r) { p.set_value(std::move(r)); });
  const auto r = p.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::store_unavailable));
  EXPECT_FALSE(worker.writable());
}

TEST(StoreWorker, RecoversByItselfOnceCommitsWorkAgain) {
  auto owned = std::make_unique<gated_store>();
  auto* store = owned.get();
  owned->fail_ = true;
  owned->open_gate();
  store_worker worker(std::move(owned), {1000000, 512, std::chrono::milliseconds(10)});
  std::promise<result<insert_outcome>> p;
  worker.insert(job_named("x"), [&](result<insert_outcome> r) { p.set_value(std::move(r)); });
  ASSERT_FALSE(p.get_future().get());
  ASSERT_FALSE(worker.writable());
  store->heal();  // the disk has space again; no request arrives
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!worker.writable() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling, not timing
  }
  EXPECT_TRUE(worker.writable());
}

TEST(StoreWorker, StopFinishesQueuedWorkAndRefusesLaterWork) {
  auto owned = std::make_unique<gated_store>();
  owned->open_gate();
  store_worker worker(std::move(owned), {});
  bool ran = false;
  worker.run([&](job_store&) { ran = true; });
  worker.stop();
  EXPECT_TRUE(ran);
  std::optional<result<insert_outcome>> late;
  worker.insert(job_named("late"), [&](result<insert_outcome> r) { late = std::move(r); });
  ASSERT_TRUE(late);
  EXPECT_FALSE(*late);
}

TEST(StoreWorker, ATaskThatThrowsDoesNotStopTheStoreThread) {
  auto owned = std::make_unique<gated_store>();
  owned->open_gate();
  store_worker worker(std::move(owned), {});
  worker.run([](job_store&) { throw std::runtime_error("a bug in a store task"); });
  std::promise<bool> ran;
  worker.run([&](job_store&) { ran.set_value(true); });
  auto f = ran.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(f.get());
}

TEST(StoreWorker, AnInsertCallbackThatThrowsDoesNotStopTheStoreThread) {
  auto owned = std::make_unique<gated_store>();
  owned->open_gate();
  store_worker worker(std::move(owned), {});
  auto j = job_named("req-1");
  worker.insert(j, [](result<insert_outcome>) { throw std::runtime_error("a bug in a callback"); });
  std::promise<bool> inserted;
  j.request_id = "req-2";
  worker.insert(j, [&](result<insert_outcome> r) { inserted.set_value(r.has_value()); });
  auto f = inserted.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(f.get());
}

TEST(StoreWorker, WithSeveralConnectionsATaskDoesNotWaitBehindASlowOne) {
  std::vector<std::unique_ptr<job_store>> stores;
  for (int i = 0; i < 2; ++i) {
    auto s = std::make_unique<gated_store>();
    s->open_gate();
    stores.push_back(std::move(s));
  }
  store_worker worker(std::move(stores), {});
  std::promise<void> release_slow;
  auto slow_may_end = release_slow.get_future().share();
  std::promise<job_store*> slow_ran_on;
  worker.run([&, slow_may_end](job_store& s) {
    slow_ran_on.set_value(&s);
    slow_may_end.wait();  // a long round trip to the database
  });
  const auto slow_store = slow_ran_on.get_future().get();
  std::promise<job_store*> quick_ran_on;
  worker.run([&](job_store& s) { quick_ran_on.set_value(&s); });
  auto quick = quick_ran_on.get_future();
  const auto status = quick.wait_for(std::chrono::seconds(10));
  release_slow.set_value();
  ASSERT_EQ(status, std::future_status::ready) << "the second task waited behind the first";
  EXPECT_NE(quick.get(), slow_store);  // on the other connection
}

}  // namespace
}  // namespace dsr
