#pragma once
// This daemon as one of several on one PostgreSQL store (docs/contract.md §8): a heartbeat every
// few seconds records it in the store's `workers` table and brings back what the daemons share:
// how many are alive (dsr_workers, and the share of the rate limit to fall back on while the
// store is away), the store's schema version (a newer one: this daemon stops claiming jobs and
// /readyz names both versions), a Retry-After another daemon met, and the circuit breaker another
// daemon opened. It also hands the limiter and the dispatcher their hooks into the store.
//
// Thread safety: the readers (live_workers, schema_ahead, hold) are called from any thread; start
// and stop from the event loop's.

#include "dsr/exponea/limiter.hpp"
#include "dsr/jobs/async_store.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace dsr::app {

struct cluster_options {
  std::string owner;  // this process's lease owner id (startup.hpp owner_id)
  std::string name;   // [jobs] worker_name, or host:pid
  // A daemon seen within this is alive: [jobs] lease_seconds.
  std::chrono::milliseconds live_for{std::chrono::seconds(30)};
  // How often the heartbeat runs.
  std::chrono::milliseconds beat_interval{std::chrono::seconds(5)};
  std::int64_t schema = 0;  // the schema version this build expects
};

class cluster_member {
 public:
  cluster_member(boost::asio::any_io_executor ex, async_store& store, cluster_options options);
  cluster_member(const cluster_member&) = delete;
  cluster_member& operator=(const cluster_member&) = delete;

  // Spawns the heartbeat (its first beat at once). `spacing`, if not null, is held back while
  // another daemon's Retry-After lasts. Both must outlive the event loop's run.
  void start(exponea::limiter* spacing);
  // The heartbeat ends at its next wake-up.
  void stop();

  // The daemons alive at the last heartbeat, this one included.
  std::size_t live_workers() const { return live_.load(); }
  // "the job store has schema 4, newer than this daemon's 3; ...", or nullopt.
  std::optional<std::string> schema_ahead() const;
  // Why no job may be claimed now: a newer schema, or a circuit breaker another daemon opened
  // (dispatcher_options::cluster_hold); nullopt when none.
  std::optional<std::string> hold() const;

  // A limiter's hooks into the store's row for `which` (exponea::limiter::share): Exponea's calls,
  // or the reporter's status calls to MineOS.
  exponea::shared_limit limit(call_limit which);
  // The dispatcher's: this daemon's breaker opened (d > 0) or closed.
  std::function<void(std::chrono::milliseconds, std::string)> breaker_sharer();

 private:
  struct state;
  std::shared_ptr<state> state_;
  std::atomic<std::size_t> live_{1};
};

}  // namespace dsr::app
