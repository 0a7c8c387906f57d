#pragma once
// Where the lower layers (exponea, jobs, mineos) report what they count. They own this interface
// and never see how it is exposed; ops::metrics (ops/metrics.hpp) implements it as the Prometheus
// page, and tests may pass their own. A null `metrics_sink*` means "not counted".
//
// Thread safety: an implementation is called from any thread, concurrently.
// Labels are the names of the callers' enums (their to_string), a contract for the alerts written
// against the metrics (README, docs/operations.md): callers never pass free text.

#include <chrono>
#include <string_view>

namespace dsr {

class metrics_sink {
 public:
  using seconds = std::chrono::duration<double>;

  virtual ~metrics_sink() = default;

  // A new job was accepted, routed to operation "delete" | "opt_out" | "copy".
  virtual void request_accepted(std::string_view operation) = 0;
  // A webhook answered: operation "delete" | "copy" | "preview", the HTTP status sent.
  virtual void webhook(std::string_view operation, unsigned code) = 0;
  // A call to Exponea: endpoint "export-one" | "track" | "anonymize" | "system-time" |
  // "consent-categories" (exponea::to_string(endpoint)), the HTTP status (0: no answer), how long
  // it took.
  virtual void exponea_call(std::string_view endpoint, unsigned code, seconds took) = 0;
  // A job reached a final state: outcome "Completed" | "UserNotFound" | "MissingIdentifiers" |
  // "Failed" (to_string(job_outcome)) | "cancelled"; `took` from its receipt.
  virtual void job_finished(std::string_view operation, std::string_view outcome, seconds took) = 0;
  // A job attempt that will be retried, and why (to_string(exponea::retry_reason)).
  virtual void retry(std::string_view reason) = 0;
  // Time a call waited for the shared rate limiter.
  virtual void rate_limit_wait(seconds waited) = 0;
  // A report to MineOS: "acknowledged", "retry" or "gave_up".
  virtual void report(std::string_view result) = 0;
  // This daemon ran a periodic task (the purge, the deadline warning, the export expiry).
  virtual void periodic_run(std::string_view /*task*/) {}

 protected:
  metrics_sink() = default;
  metrics_sink(const metrics_sink&) = default;
  metrics_sink& operator=(const metrics_sink&) = default;
};

}  // namespace dsr
