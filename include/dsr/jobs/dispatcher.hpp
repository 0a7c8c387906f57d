#pragma once
// The dispatcher: `concurrency` worker coroutines on the io_context, each claiming the next due
// job under a lease for this process's owner id (so no two workers, or daemons, run one job),
// running its flow, and releasing it with the next state that `decide` computes.

#include "dsr/config/config.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/jobs/flows.hpp"
#include "dsr/jobs/store_worker.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <random>

namespace dsr {

// The retry policy as data: each flow outcome's next job state. Pure; `random01` gives the full
// jitter (a uniform value in [0, 1)).
//  completed / user_not_found / failed  → terminal, attempts + 1, the MineOS status as outcome;
//  retry → `retrying` at now + uniform(0, min(max_backoff, initial·2^attempts)), or no earlier
//          than Retry-After (capped at max_backoff); `failed` once max_attempts are used;
//  rejected → `failed` naming the credential (the reliability issue turns this into a pause).
job_release decide(const job& j, const flow_outcome& o, const retry_config& retry, time_point now,
                   double random01);

struct dispatcher_options {
  std::string owner;  // this process's lease owner id
  unsigned concurrency = 4;
  std::chrono::milliseconds lease{std::chrono::minutes(30)};
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  retry_config retry;
  flow_settings flows;
  // Where completed copy exports are written (one JSON file per request, mode 0600).
  std::filesystem::path export_dir;
  // Called after a job reached a final state (the reporter's wake-up).
  std::function<void()> on_finished;
};

class dispatcher {
 public:
  virtual ~dispatcher() = default;
  // Spawns the workers on the executor given at creation.
  virtual void start() = 0;
  // A job was queued: wake an idle worker now rather than at its next poll. Thread-safe.
  virtual void notify() = 0;
  // Workers finish the flow they run and claim nothing more. Thread-safe.
  virtual void stop() = 0;
};

std::unique_ptr<dispatcher> make_dispatcher(boost::asio::any_io_executor executor, job_queue& queue,
                                            exponea::api& api, std::shared_ptr<clock> clock,
                                            dispatcher_options options);

}  // namespace dsr
