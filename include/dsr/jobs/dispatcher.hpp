#pragma once
// The dispatcher: `concurrency` worker coroutines on the io_context, each claiming the next due
// job under a lease for this process's owner id (so no two workers, or daemons, run one job),
// running its flow, and releasing it with the next state that `decide` computes. A credential
// rejection pauses dispatch and a run of transient failures opens a circuit breaker
// (`dispatch_gate`); neither consumes attempts.

#include "dsr/common/metrics_sink.hpp"
#include "dsr/config/config.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/flows.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>

namespace dsr {

// The retry policy as data: what each flow outcome does to its job and to dispatch.
enum class handling {
  finish,   // a terminal state (completed, user_not_found, failed)
  retry,    // `retrying` with backoff, `failed` once max_attempts are used
  pause,    // back to `queued`, attempts untouched; dispatch pauses (credential rejection)
  requeue,  // back to `queued`, attempts untouched (shutdown between steps)
  drop,     // nothing to record: the lease is lost, its new owner decides
};

struct policy_row {
  flow_outcome::kind outcome;
  handling what;
  bool counts_attempt;   // the job's `attempts` grows
  bool breaker_failure;  // counts toward opening the circuit breaker
};

// One row per flow outcome.
std::span<const policy_row> retry_policy();
const policy_row& policy_for(flow_outcome::kind k);

// Each flow outcome's next job state. Pure; `random01` gives the full jitter (a uniform value in
// [0, 1)). retry: `retrying` at now + uniform(0, min(max_backoff, initial·2^attempts)), or no
// earlier than Retry-After (capped at max_backoff); `failed` once max_attempts are used.
job_release decide(const job& j, const flow_outcome& o, const retry_config& retry, time_point now,
                   double random01);

// The circuit breaker: after `threshold` transient outcomes in a row (any jobs), no job is claimed
// for `first_open`; then one job is let through (half-open). Its success closes the breaker; its
// failure opens it again for twice as long (up to `max_open`). Jobs wait queued meanwhile: an
// Exponea outage costs no attempts beyond the ones that detected it.
struct breaker_config {
  unsigned threshold = 5;
  std::chrono::milliseconds first_open{std::chrono::seconds(5)};
  std::chrono::milliseconds max_open{std::chrono::minutes(5)};
};

// What stands between the workers and the queue: a credential pause or an open breaker. A pure
// state machine over explicit times (the dispatcher calls it on its strand).
class dispatch_gate {
 public:
  dispatch_gate(std::chrono::milliseconds pause_probe, breaker_config breaker);

  struct verdict {
    bool go = true;      // claim a job now
    bool probe = false;  // it is the one job let through a pause or an open breaker
    time_point wake_at;  // when !go: ask again then
  };
  verdict ask(time_point now);
  // A job claimed as a probe found nothing to run.
  void probe_unused();
  // How a job ended (`value`, `message` for a pause). Returns true when the gate opened.
  bool record(const policy_row& row, bool was_probe, time_point now, const std::string& value,
              const std::string& message);
  // A job ended on a 429. Exponea is up and the limiter already holds every call back for the
  // Retry-After, so it neither counts toward the breaker nor resets its run; a probe that met it
  // tells nothing, and the next probe waits the breaker's (or the pause's) current interval.
  void throttled(bool was_probe, time_point now);
  // Credentials were reloaded: a pause ends at once.
  void resume();
  void set_pause_probe(std::chrono::milliseconds d) { pause_probe_ = d; }

  // How long the circuit breaker is open for now (its current interval), nullopt when it is not.
  std::optional<std::chrono::milliseconds> breaker_open_for() const;

  // "exponea_api_secret rejected (...)": why dispatch is paused, or nullopt.
  std::optional<std::string> paused() const;
  // Why no job is claimed (pause or breaker), or nullopt.
  std::optional<std::string> holding() const;

 private:
  enum class state { open, paused, breaker_open };
  std::chrono::milliseconds pause_probe_;
  breaker_config breaker_;
  state state_ = state::open;
  std::string reason_;
  time_point next_probe_{};
  bool probing_ = false;
  unsigned transient_in_a_row_ = 0;
  std::chrono::milliseconds open_for_;
};

struct dispatcher_options {
  std::string owner;  // this process's lease owner id
  unsigned concurrency = 4;
  std::chrono::milliseconds lease{std::chrono::minutes(30)};
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  // How often leases that ran out (a release the store could not record, a dead daemon's) are
  // swept back.
  std::chrono::milliseconds sweep_interval{std::chrono::seconds(30)};
  // How often the leases of the jobs running here are renewed to `lease` from now; 0 = never
  // (the lease then outlasts any run). Each run holds its lease under an owner of its own
  // ("<owner>/<n>"), so that a run whose lease ran out and was claimed again, even here, can
  // write nothing more to its job.
  std::chrono::milliseconds renew_interval{0};
  retry_config retry;
  flow_settings flows;
  // How a Delete-URL job's right is routed (erase, opt-out, not handled), checked as it runs.
  requests_config requests;
  // Where completed copy exports are written (one JSON file per request, mode 0600).
  std::filesystem::path export_dir;
  // A completed copy's export goes into the store (PostgreSQL) before the job is released, and
  // its file is removed after (kept_exports.hpp).
  bool exports_in_store = false;
  breaker_config breaker;
  // No reporter: a finished job's e-mail is replaced by its hash at once (docs/contract.md §6).
  bool forget_finished_subjects = false;
  // Several daemons on one database (docs/contract.md §8). Why no job may be claimed now (the
  // database holds a newer schema; another daemon's circuit breaker is open), or nullopt. Empty:
  // never held.
  std::function<std::optional<std::string>()> cluster_hold;
  // The breaker opened here for `d` with `reason`, or closed (d = 0): shared with the others.
  std::function<void(std::chrono::milliseconds d, std::string reason)> share_breaker;
  // A side-effecting call (tracking an event, anonymizing) renews the run's lease first and starts
  // only with more than this left ([exponea] timeout_seconds), so that it cannot land after
  // another daemon took the job over. 0: the lease is still checked.
  std::chrono::milliseconds call_margin{0};
  // Called after a job reached a final state (the reporter's wake-up).
  std::function<void()> on_finished;
  // Held while a job runs, so that a graceful stop waits for it (http::server::hold).
  std::function<std::shared_ptr<void>()> hold;
  // Counts retries and finished jobs with their duration since receipt. Null: not counted.
  metrics_sink* metrics = nullptr;
};

class dispatcher {
 public:
  virtual ~dispatcher() = default;
  // Spawns the workers on the executor given at creation.
  virtual void start() = 0;
  // A job was queued: wake an idle worker now rather than at its next poll. Thread-safe.
  virtual void notify() = 0;
  // Workers claim nothing more; a running flow stops before its next step (its job goes back to
  // the queue, attempts untouched, and resumes from its journal at the next start). Thread-safe.
  virtual void stop() = 0;
  // Credentials were reloaded: end a pause at once. Thread-safe.
  virtual void resume() = 0;
  // A reload changed [retry]. Thread-safe.
  virtual void set_retry(const retry_config& retry) = 0;
  // Why dispatch is paused (the rejected value and Exponea's answer), or nullopt. Thread-safe.
  virtual std::optional<std::string> paused() const = 0;
};

std::unique_ptr<dispatcher> make_dispatcher(boost::asio::any_io_executor executor,
                                            async_store& store, exponea::api& api,
                                            std::shared_ptr<clock> clock,
                                            dispatcher_options options);

}  // namespace dsr
