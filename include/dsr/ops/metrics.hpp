#pragma once
// The daemon's Prometheus metrics (text exposition format 0.0.4), served at GET /metrics.
//
// Counters and histograms are recorded as things happen, from any thread; the gauges (jobs by
// state, the oldest waiting job, deadlines at risk, pause) are read from the store and the
// dispatcher when the page is rendered. The names are a contract: alerts are written against
// them (README, docs/operations.md).

#include "dsr/common/clock.hpp"
#include "dsr/common/metrics_sink.hpp"
#include "dsr/jobs/store.hpp"

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace dsr::ops {

class metrics final : public metrics_sink {
 public:
  // `time` dates the last hour's throughput (the status page); counters need no clock.
  explicit metrics(std::shared_ptr<clock> time = make_system_clock());
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // The counters of metrics_sink (common/metrics_sink.hpp), each a labelled series here.
  void request_accepted(std::string_view operation) override;
  void webhook(std::string_view operation, unsigned code) override;
  void exponea_call(std::string_view endpoint, unsigned code, seconds took) override;
  void job_finished(std::string_view operation, std::string_view outcome, seconds took) override;
  void retry(std::string_view reason) override;
  void rate_limit_wait(seconds waited) override;
  void report(std::string_view result) override;
  void periodic_run(std::string_view task) override;

  // The page, with the gauges read at this moment.
  struct gauges {
    job_stats jobs;
    time_point now{};
    bool dispatch_paused = false;
    std::size_t workers = 1;  // live daemons on the store (1 with SQLite)
    std::int64_t schema = 0;  // the store schema this build expects
  };
  std::string render(const gauges& g) const;

  // What the status page shows, read from the same counters as the page above.
  struct endpoint_summary {
    std::string endpoint;
    std::uint64_t calls = 0;
    // No answer, or a status of 400 or more (429 included) but 404: Exponea's 404 says it holds no
    // such customer, which is how every delete is verified.
    std::uint64_t errors = 0;
    double mean_seconds = 0;
    // The upper bound of the histogram bucket holding the 95th percentile (+inf beyond the last).
    double p95_at_most_seconds = 0;
  };
  struct summary {
    std::vector<endpoint_summary> exponea;
    std::map<std::string, std::uint64_t> retries;  // by reason
    std::map<std::string, std::uint64_t> reports;  // by result
    double rate_limit_wait_seconds = 0;
    // In the last 60 minutes (or since start, if sooner): webhooks accepted (202), and jobs that
    // reached a final state by outcome.
    std::uint64_t accepted_last_hour = 0;
    std::map<std::string, std::uint64_t> finished_last_hour;
  };
  summary summarize() const;

 private:
  using labels = std::vector<std::string>;
  struct histogram {
    std::vector<std::uint64_t> buckets;  // per bound, not cumulative
    double sum = 0;
    std::uint64_t count = 0;
  };
  struct histogram_family {
    std::vector<double> bounds;
    std::map<labels, histogram> series;
  };
  static void observe(histogram_family& f, const labels& l, double v);
  static double quantile_bound(const histogram_family& f, const histogram& h, double q);
  // One minute of the last hour: the minute (since the epoch) it counts, and its counts.
  struct minute {
    std::int64_t at = -1;
    std::uint64_t accepted = 0;
    std::map<std::string, std::uint64_t, std::less<>> finished;
  };
  minute& this_minute();

  std::shared_ptr<clock> time_;
  std::array<minute, 60> last_hour_;

  mutable std::mutex mutex_;
  std::map<labels, double> webhooks_;
  std::map<labels, double> requests_;
  std::map<labels, double> exponea_requests_;
  histogram_family exponea_duration_;
  histogram_family job_duration_;
  std::map<labels, double> retries_;
  double rate_limit_wait_ = 0;
  std::map<labels, double> reports_;
  std::map<labels, double> periodic_runs_;
};

}  // namespace dsr::ops
