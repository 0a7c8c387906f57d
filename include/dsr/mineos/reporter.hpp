#pragma once
// Reports finished jobs to MineOS (contract §6) from the store's outbox: POST status_url with
// `Authorization: Bearer <mineos_api_key>` and
//   {"traceId","integrationId","requestId","operation","status","message","data"?}
// (`data` = {ids, properties, events} for a completed copy, read from its export file). 2xx marks
// the job reported (and deletes the export); 429, 5xx, timeouts and connection errors are retried
// with backoff, across restarts, until acknowledged; any other answer counts an attempt, sets
// reportError, and after max_attempts the report waits for an operator's `retry`.
// The MineOS endpoint and body are not public: this module is the one place to adapt.

#include "dsr/common/clock.hpp"
#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/http/client.hpp"
#include "dsr/jobs/job.hpp"
#include "dsr/jobs/store_worker.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <memory>

namespace dsr::ops {
class metrics;  // ops/metrics.hpp
}  // namespace dsr::ops

namespace dsr::mineos {

// The report body for a finished job, without `data`.
nlohmann::json report_body(const job& j);

// The body of a completed copy's report: report_body(j) with `data` streamed from the export
// `file`. Fails (errc::io_error) when the file cannot be opened.
// `key`: the file is sealed with it (sealed_file.hpp); empty: in the clear.
result<std::shared_ptr<http::body_source>> report_with_data(const job& j,
                                                            const std::filesystem::path& file,
                                                            const std::string& key = {});

struct reporter_options {
  retry_config retry;
  std::filesystem::path export_dir;
  std::string export_key;  // store_key: exports are sealed with it
  std::chrono::milliseconds poll_interval{std::chrono::seconds(1)};
  // Held while a report is on its way, so that a graceful stop waits for MineOS's answer and its
  // record (http::server::hold): a stop then never causes a report to be sent twice.
  std::function<std::shared_ptr<void>()> hold;
  // Counts each report's result (dsr_reports_total). Null: not counted.
  ops::metrics* metrics = nullptr;
};

class reporter {
 public:
  virtual ~reporter() = default;
  virtual void start() = 0;
  virtual void notify() = 0;  // a job finished: look at the outbox now. Thread-safe.
  virtual void stop() = 0;    // thread-safe
};

std::unique_ptr<reporter> make_reporter(boost::asio::any_io_executor executor, job_queue& queue,
                                        std::unique_ptr<http::client> client,
                                        const credential_store& credentials,
                                        std::shared_ptr<clock> clock, reporter_options options);

}  // namespace dsr::mineos
