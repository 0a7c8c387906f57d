#pragma once
// The daemon's periodic tasks, each a coroutine on the runtime's executor that runs at once and
// then on its period until the event loop stops (dsr_periodic_runs_total{task} counts the runs):
// - export_expiry, hourly: exports whose file link expired go; other exports older than
//   export_retention_days go (kept ones when api_base_url is empty, or ones MineOS never
//   acknowledged), but those behind a live file link;
// - retention_purge, hourly: finished jobs' metadata goes after retention_days (contract §3);
// - deadline_warning, daily: jobs near or past their legal due date;
// - the systemd watchdog ping, at half of WatchdogSec= when it is set, from the event loop
//   itself: when the loop stalls, the pings stop and systemd restarts the daemon.
// The store is read and written through async_store; a failure is logged and the task goes on. Each
// coroutine is spawned with a handler that logs an exception that ends it.

#include "dsr/common/metrics_sink.hpp"
#include "dsr/config/config.hpp"
#include "dsr/jobs/async_store.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>

namespace dsr::app {

// Who runs the tasks. `shared`: several daemons on one store (PostgreSQL); each task runs on one
// daemon at a time, at most once a period (a leader row per task with a TTL in the store).
struct periodic_runner {
  async_store& store;
  std::string owner;  // this process's owner id (startup.hpp owner_id)
  bool shared = false;
  metrics_sink* metrics = nullptr;  // counts the runs made here (dsr_periodic_runs_total)
};

// The store and `metrics` must outlive the event loop's run; `export_dir` is where copy exports
// are kept.
void start_periodic_tasks(boost::asio::any_io_executor executor, periodic_runner who,
                          const config& cfg, const std::filesystem::path& export_dir);

}  // namespace dsr::app
