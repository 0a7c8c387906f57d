#include "dsr/jobs/store_worker.hpp"

#include <spdlog/spdlog.h>

#include <vector>

namespace dsr {

namespace {

std::vector<std::unique_ptr<job_store>> one(std::unique_ptr<job_store> store) {
  std::vector<std::unique_ptr<job_store>> stores;
  stores.push_back(std::move(store));
  return stores;
}

}  // namespace

store_worker::store_worker(std::unique_ptr<job_store> store, store_worker_options options)
    : store_worker(one(std::move(store)), std::move(options)) {}

store_worker::store_worker(std::vector<std::unique_ptr<job_store>> stores,
                           store_worker_options options)
    : stores_(std::move(stores)), options_(std::move(options)) {
  for (std::size_t i = 0; i < stores_.size(); ++i) {
    threads_.emplace_back([this, i] { loop(*stores_[i], i == 0); });
  }
}

store_worker::~store_worker() {
  stop();
}

void store_worker::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) {
      t.join();
    }
  }
}

void store_worker::insert(new_job j, insert_callback done) {
  {
    const std::lock_guard lock(mutex_);
    if (!stopping_) {
      inserts_.push_back({std::move(j), std::move(done)});
      if (threads_.size() == 1) {
        wake_.notify_one();
      } else {
        wake_.notify_all();  // the first thread is the one that commits inserts
      }
      return;
    }
  }
  done(make_failure(errc::store_unavailable, "the job store is shutting down"));
}

void store_worker::run(task t) {
  {
    const std::lock_guard lock(mutex_);
    if (!stopping_) {
      tasks_.push_back(std::move(t));
      wake_.notify_one();
      return;
    }
  }
  spdlog::warn("store: a task arrived after shutdown and was dropped");
}

void store_worker::loop(job_store& store, bool prober) {
  std::vector<pending_insert> batch;
  std::vector<new_job> jobs;
  std::deque<task> tasks;
  // With one thread, it takes every task waiting; with several, one at a time, so that the
  // others share them.
  const bool alone = stores_.size() == 1;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      const auto has_work = [&] {
        return stopping_ || (prober && !inserts_.empty()) || !tasks_.empty();
      };
      if (writable_.load() || !prober) {
        wake_.wait(lock, has_work);
      } else if (!wake_.wait_for(lock, options_.probe_interval, has_work)) {
        lock.unlock();
        if (auto r = store.probe_write(
                std::chrono::time_point_cast<millis>(std::chrono::system_clock::now()));
            r) {
          writable_.store(true);
          spdlog::info("store: commits work again; accepting requests");
        } else {
          std::lock_guard relock(mutex_);
          last_error_ = r.error().detail;
        }
        continue;
      }
      if (tasks_.empty() && (inserts_.empty() || !prober)) {
        if (stopping_) {
          return;  // everything queued for this thread is done
        }
        continue;  // woken for inserts, which the first thread commits
      }
      while (prober && !inserts_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(inserts_.front()));
        inserts_.pop_front();
      }
      if (alone) {
        tasks.swap(tasks_);
      } else if (!tasks_.empty()) {
        tasks.push_back(std::move(tasks_.front()));
        tasks_.pop_front();
      }
      if (!alone && !tasks_.empty()) {
        wake_.notify_one();  // more than this thread takes: another one takes it
      }
    }
    if (!batch.empty()) {
      jobs.clear();
      for (auto& p : batch) {
        jobs.push_back(std::move(p.job));
      }
      auto outcomes = [&]() -> result<std::vector<insert_outcome>> {
        try {
          return store.insert(jobs, options_.max_active);
        } catch (const std::exception& e) {
          spdlog::error("store: internal error while inserting: {}", e.what());
          return make_failure(errc::store_unavailable,
                              std::string("internal error in the job store: ") + e.what());
        }
      }();
      writable_.store(outcomes.has_value());
      if (!outcomes) {
        std::lock_guard lock(mutex_);
        last_error_ = outcomes.error().detail;
      }
      const auto complete = [](std::vector<pending_insert>& done,
                               const result<std::vector<insert_outcome>>& r) {
        for (std::size_t i = 0; i < done.size(); ++i) {
          try {
            if (r) {
              done[i].done((*r)[i]);
            } else {
              done[i].done(r.error());
            }
          } catch (const std::exception& e) {
            spdlog::error("store: answering an insert failed: {}", e.what());
          }
        }
      };
      if (options_.complete_on) {
        auto finished = std::make_shared<
            std::pair<std::vector<pending_insert>, result<std::vector<insert_outcome>>>>(
            std::move(batch), std::move(outcomes));
        options_.complete_on([finished, complete] { complete(finished->first, finished->second); });
        batch = {};
      } else {
        complete(batch, outcomes);
      }
      batch.clear();
    }
    // The boundary of every task: one that throws (a bug) is logged and the next one runs. A
    // responder it held answers 500 when dropped (http/server.cpp).
    for (auto& t : tasks) {
      try {
        t(store);
      } catch (const std::exception& e) {
        spdlog::error("store: a task failed: {}", e.what());
      } catch (...) {
        spdlog::error("store: a task failed");
      }
    }
    tasks.clear();
  }
}

}  // namespace dsr
