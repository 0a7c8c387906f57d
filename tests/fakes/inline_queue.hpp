#pragma once
// A job_queue that runs every call at once, on the caller's thread, against a real store (usually
// SQLite in memory). `fail_next` makes the next insert fail as a store that cannot commit.

#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/store_worker.hpp"

#include <boost/asio/io_context.hpp>

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

// The async_store a handler uses, over an inline_queue and an event loop of its own: a handler
// that reads or writes the store answers once settle() has run the completions.
class inline_store {
 public:
  explicit inline_store(job_store& store, std::size_t max_active = 1000000)
      : queue(store, max_active), db(queue, io.get_executor()) {}
  void settle() {
    io.restart();
    io.run();
  }

  boost::asio::io_context io;
  inline_queue queue;
  async_store db;
};

}  // namespace dsr::test
