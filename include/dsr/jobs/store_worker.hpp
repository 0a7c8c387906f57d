#pragma once
// Runs a job_store on its own thread, so that SQLite never blocks an I/O thread, and commits
// concurrent inserts together (group commit): while one transaction is being made durable, new
// inserts queue up, and the next transaction takes them all. One fsync then serves many requests.
//
// Callbacks run on the store thread; the caller posts them back to its own executor.

#include "dsr/jobs/store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dsr {

// The asynchronous face of the store, as intake and the operator API see it. A fake runs the
// callbacks inline.
class job_queue {
 public:
  using insert_callback = std::function<void(result<insert_outcome>)>;
  using task = std::function<void(job_store&)>;

  virtual ~job_queue() = default;
  // Durably inserts `j` (with dedupe and the max_queued_jobs check); `done` is called once.
  virtual void insert(new_job j, insert_callback done) = 0;
  // Runs `t` with exclusive access to the store.
  virtual void run(task t) = 0;
  // False after the last transaction failed to commit, true again after one succeeds.
  virtual bool writable() const = 0;
  // Why the last failed commit failed (naming the store), "" if none did. Thread-safe.
  virtual std::string last_error() const { return {}; }
};

struct store_worker_options {
  std::size_t max_active = 1000000;  // max_queued_jobs
  std::size_t max_batch = 512;       // inserts per transaction at most
  // While a commit has failed (disk full, I/O error), a test write this often finds out when the
  // store works again, even if no request arrives meanwhile.
  std::chrono::milliseconds probe_interval{1000};
  // Runs a committed batch's insert callbacks elsewhere (the daemon: its I/O threads), so that the
  // store thread, the one resource every insert shares, only commits. Empty: on the store thread.
  std::function<void(std::function<void()>)> complete_on;
};

// One thread per store connection. SQLite has one: every insert and task runs in order on it.
// A server engine (PostgreSQL) may have several, each with a connection of its own: the first
// one commits the inserts waiting (one batch, as large as what waited: fewer commits) and every
// thread takes one task at a time, so that a slow read or a job's write does not wait behind
// another's round trip. Tasks from one coroutine stay in order (it
// awaits each before the next); tasks from different ones may run at once on different
// connections, which the engine's transactions make safe as they do for several daemons.
class store_worker final : public job_queue {
 public:
  store_worker(std::unique_ptr<job_store> store, store_worker_options options);
  // `stores`: one per thread, at least one; the first one probes a store that stopped committing.
  store_worker(std::vector<std::unique_ptr<job_store>> stores, store_worker_options options);
  store_worker(const store_worker&) = delete;
  store_worker& operator=(const store_worker&) = delete;
  // Finishes what is queued, then joins the threads.
  ~store_worker() override;

  void insert(new_job j, insert_callback done) override;
  void run(task t) override;
  bool writable() const override { return writable_.load(); }
  std::string last_error() const override {
    std::lock_guard lock(mutex_);
    return last_error_;
  }

  // Completes the queued work and stops the threads; later calls fail with store_unavailable.
  void stop();

 private:
  struct pending_insert {
    new_job job;
    insert_callback done;
  };
  void loop(job_store& store, bool prober);

  std::vector<std::unique_ptr<job_store>> stores_;
  store_worker_options options_;
  mutable std::mutex mutex_;
  std::string last_error_;
  std::condition_variable wake_;
  std::deque<pending_insert> inserts_;
  std::deque<task> tasks_;
  bool stopping_ = false;
  std::atomic<bool> writable_{true};
  std::vector<std::thread> threads_;
};

}  // namespace dsr
