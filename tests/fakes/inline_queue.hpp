#pragma once
// A job_queue that runs every call at once, on the caller's thread, against a real store (usually
// SQLite in memory). `fail_next` makes the next insert fail as a store that cannot commit.

#include "dsr/jobs/store_worker.hpp"

namespace dsr::test {

class inline_queue final : public job_queue {
 public:
  explicit inline_queue(job_store& store, std::size_t max_active = 1000000)
      : store_(store), max_active_(max_active) {}

  void insert(new_job j, insert_callback done) override {
    if (fail_next) {
      fail_next = false;
      writable_ = false;
      done(make_failure(errc::store_unavailable, "injected fault: disk full"));
      return;
    }
    auto r = store_.insert(std::span<const new_job>(&j, 1), max_active_);
    writable_ = r.has_value();
    if (r) {
      done((*r)[0]);
    } else {
      done(r.error());
    }
  }
  void run(task t) override { t(store_); }
  bool writable() const override { return writable_; }

  bool fail_next = false;

 private:
  job_store& store_;
  std::size_t max_active_;
  bool writable_ = true;
};

}  // namespace dsr::test
