#include "dsr/ops/metrics.hpp"

#include "dsr/jobs/job.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

namespace dsr::ops {
namespace {

// Label values are escaped as the format asks: backslash, double quote and newline.
std::string escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra = {}) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], escape(values[i]));
  }
  if (!extra.empty()) {
    out += fmt::format("{}{}", out.empty() ? "" : ",", extra);
  }
  return out.empty() ? std::string() : "{" + out + "}";
}

std::string number(double v) {
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return fmt::format("{}", static_cast<long long>(v));
  }
  return fmt::format("{}", v);
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void samples(std::string& out, std::string_view name, const std::vector<std::string>& label_names,
             const std::map<std::vector<std::string>, double>& series) {
  for (const auto& [values, v] : series) {
    out += fmt::format("{}{} {}\n", name, label_set(label_names, values), number(v));
  }
}

}  // namespace

metrics::metrics(std::shared_ptr<clock> time) : time_(std::move(time)) {
  exponea_duration_.bounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  job_duration_.bounds = {1, 5, 15, 60, 300, 900, 3600, 14400, 86400, 604800};
}

void metrics::observe(histogram_family& f, const labels& l, double v) {
  auto& h = f.series[l];
  if (h.buckets.empty()) {
    h.buckets.assign(f.bounds.size(), 0);
  }
  const auto at = std::lower_bound(f.bounds.begin(), f.bounds.end(), v);
  if (at != f.bounds.end()) {
    ++h.buckets[static_cast<std::size_t>(std::distance(f.bounds.begin(), at))];
  }
  h.sum += v;
  ++h.count;
}

metrics::minute& metrics::this_minute() {
  const auto at = std::chrono::floor<std::chrono::minutes>(time_->now()).time_since_epoch().count();
  auto& m = last_hour_[static_cast<std::size_t>(at % 60)];
  if (m.at != at) {
    m = minute{at, 0, {}};
  }
  return m;
}

void metrics::request_accepted(std::string_view operation) {
  const std::lock_guard lock(mutex_);
  requests_[{std::string(operation)}] += 1;
}

void metrics::webhook(std::string_view operation, unsigned code) {
  const std::lock_guard lock(mutex_);
  webhooks_[{std::string(operation), std::to_string(code)}] += 1;
  if (code == 202) {
    ++this_minute().accepted;
  }
}

void metrics::exponea_call(std::string_view endpoint, unsigned code, seconds took) {
  const std::lock_guard lock(mutex_);
  exponea_requests_[{std::string(endpoint), std::to_string(code)}] += 1;
  observe(exponea_duration_, {std::string(endpoint)}, took.count());
}

void metrics::job_finished(std::string_view operation, std::string_view outcome, seconds took) {
  const std::lock_guard lock(mutex_);
  observe(job_duration_, {std::string(operation), std::string(outcome)},
          std::max(0.0, took.count()));
  auto& m = this_minute();
  if (const auto it = m.finished.find(outcome); it != m.finished.end()) {
    ++it->second;
  } else {
    m.finished.emplace(outcome, 1);
  }
}

void metrics::retry(std::string_view reason) {
  const std::lock_guard lock(mutex_);
  retries_[{std::string(reason)}] += 1;
}

void metrics::rate_limit_wait(seconds waited) {
  const std::lock_guard lock(mutex_);
  rate_limit_wait_ += std::max(0.0, waited.count());
}

void metrics::report(std::string_view result) {
  const std::lock_guard lock(mutex_);
  reports_[{std::string(result)}] += 1;
}

void metrics::periodic_run(std::string_view task) {
  const std::lock_guard lock(mutex_);
  periodic_runs_[{std::string(task)}] += 1;
}

double metrics::quantile_bound(const histogram_family& f, const histogram& h, double q) {
  const double rank = q * static_cast<double>(h.count);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < f.bounds.size(); ++i) {
    below += h.buckets[i];
    if (h.count != 0 && static_cast<double>(below) >= rank) {
      return f.bounds[i];
    }
  }
  return h.count == 0 ? 0 : std::numeric_limits<double>::infinity();
}

metrics::summary metrics::summarize() const {
  summary out;
  const auto now =
      std::chrono::floor<std::chrono::minutes>(time_->now()).time_since_epoch().count();
  const std::lock_guard lock(mutex_);
  std::map<std::string, endpoint_summary> by_endpoint;
  for (const auto& [l, v] : exponea_requests_) {
    auto& e = by_endpoint[l[0]];
    e.endpoint = l[0];
    const auto n = static_cast<std::uint64_t>(v);
    e.calls += n;
    const unsigned code = static_cast<unsigned>(std::stoul(l[1]));
    if (code == 0 || (code >= 400 && code != 404)) {
      e.errors += n;
    }
  }
  for (const auto& [l, h] : exponea_duration_.series) {
    auto& e = by_endpoint[l[0]];
    e.endpoint = l[0];
    e.mean_seconds = h.count == 0 ? 0 : h.sum / static_cast<double>(h.count);
    e.p95_at_most_seconds = quantile_bound(exponea_duration_, h, 0.95);
  }
  for (auto& [name, e] : by_endpoint) {
    out.exponea.push_back(std::move(e));
  }
  for (const auto& [l, v] : retries_) {
    out.retries[l[0]] = static_cast<std::uint64_t>(v);
  }
  for (const auto& [l, v] : reports_) {
    out.reports[l[0]] = static_cast<std::uint64_t>(v);
  }
  out.rate_limit_wait_seconds = rate_limit_wait_;
  for (const auto& m : last_hour_) {
    if (m.at >= 0 && m.at > now - 60 && m.at <= now) {
      out.accepted_last_hour += m.accepted;
      for (const auto& [outcome, n] : m.finished) {
        out.finished_last_hour[outcome] += n;
      }
    }
  }
  return out;
}

std::string metrics::render(const gauges& g) const {
  std::string out;
  const std::lock_guard lock(mutex_);
  const auto histograms = [&out](std::string_view name, const std::vector<std::string>& names,
                                 const histogram_family& f) {
    for (const auto& [values, h] : f.series) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < f.bounds.size(); ++i) {
        cumulative += h.buckets[i];
        out += fmt::format("{}_bucket{} {}\n", name,
                           label_set(names, values, fmt::format("le=\"{}\"", number(f.bounds[i]))),
                           cumulative);
      }
      out +=
          fmt::format("{}_bucket{} {}\n", name, label_set(names, values, "le=\"+Inf\""), h.count);
      out += fmt::format("{}_sum{} {}\n", name, label_set(names, values), number(h.sum));
      out += fmt::format("{}_count{} {}\n", name, label_set(names, values), h.count);
    }
  };

  header(out, "dsr_webhooks_total", "counter",
         "MineOS webhooks answered, by operation and status.");
  samples(out, "dsr_webhooks_total", {"operation", "code"}, webhooks_);

  header(out, "dsr_requests_accepted_total", "counter",
         "New jobs accepted, by the operation they were routed to (delete, opt_out, copy).");
  samples(out, "dsr_requests_accepted_total", {"operation"}, requests_);

  header(out, "dsr_jobs", "gauge", "Jobs in the store, by state.");
  for (std::size_t i = 0; i < g.jobs.by_state.size(); ++i) {
    out += fmt::format("dsr_jobs{{state=\"{}\"}} {}\n", to_string(static_cast<job_state>(i)),
                       g.jobs.by_state[i]);
  }

  header(out, "dsr_job_duration_seconds", "histogram",
         "Time from a job's receipt to its final state, by operation and outcome.");
  histograms("dsr_job_duration_seconds", {"operation", "outcome"}, job_duration_);

  header(out, "dsr_exponea_requests_total", "counter",
         "Calls to Exponea, by endpoint and HTTP status (0: no answer).");
  samples(out, "dsr_exponea_requests_total", {"endpoint", "code"}, exponea_requests_);

  header(out, "dsr_exponea_request_duration_seconds", "histogram",
         "Duration of calls to Exponea, by endpoint.");
  histograms("dsr_exponea_request_duration_seconds", {"endpoint"}, exponea_duration_);

  header(out, "dsr_retries_total", "counter", "Job attempts that will be retried, by reason.");
  samples(out, "dsr_retries_total", {"reason"}, retries_);

  header(out, "dsr_rate_limit_wait_seconds_total", "counter",
         "Time calls to Exponea waited for the shared rate limiter.");
  out += fmt::format("dsr_rate_limit_wait_seconds_total {}\n", number(rate_limit_wait_));

  header(out, "dsr_reports_total", "counter", "Status reports to MineOS, by result.");
  samples(out, "dsr_reports_total", {"result"}, reports_);

  header(out, "dsr_oldest_queued_job_age_seconds", "gauge",
         "Age of the oldest job waiting to run (queued or retrying); 0 when none waits.");
  const double age =
      g.jobs.oldest_waiting
          ? std::max(0.0, std::chrono::duration<double>(g.now - *g.jobs.oldest_waiting).count())
          : 0.0;
  out += fmt::format("dsr_oldest_queued_job_age_seconds {}\n", number(age));

  header(out, "dsr_jobs_due_soon", "gauge",
         "Unfinished jobs due within deadline_warning_days of their legal due date.");
  out += fmt::format("dsr_jobs_due_soon {}\n", g.jobs.due_soon);
  header(out, "dsr_jobs_overdue", "gauge", "Unfinished jobs past their legal due date.");
  out += fmt::format("dsr_jobs_overdue {}\n", g.jobs.overdue);

  header(out, "dsr_dispatch_paused", "gauge",
         "1 while dispatch is paused because Exponea rejected a credential or permission.");
  out += fmt::format("dsr_dispatch_paused {}\n", g.dispatch_paused ? 1 : 0);

  header(out, "dsr_periodic_runs_total", "counter",
         "Runs of the periodic tasks this daemon made (one daemon at a time runs each).");
  samples(out, "dsr_periodic_runs_total", {"task"}, periodic_runs_);

  header(out, "dsr_workers", "gauge",
         "Daemons alive on this job store (seen within lease_seconds); 1 with SQLite.");
  out += fmt::format("dsr_workers {}\n", g.workers);

  header(out, "dsr_build_info", "gauge",
         "The running version and the store schema it expects (always 1).");
  out += fmt::format("dsr_build_info{{version=\"{}\",schema=\"{}\"}} 1\n", escape(DSR_VERSION),
                     g.schema);
  return out;
}

}  // namespace dsr::ops
