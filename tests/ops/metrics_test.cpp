#include "dsr/ops/metrics.hpp"

#include "fakes/fake_clock.hpp"
#include "support/prometheus_text.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <regex>
#include <set>

namespace dsr::ops {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

TEST(Metrics, EmptyPageIsValidAndNamesEveryFamily) {
  metrics m;
  const auto page = m.render({{}, t0, false});
  const auto e = test::parse_exposition(page);
  for (const char* family :
       {"dsr_webhooks_total", "dsr_jobs", "dsr_job_duration_seconds", "dsr_exponea_requests_total",
        "dsr_exponea_request_duration_seconds", "dsr_retries_total",
        "dsr_rate_limit_wait_seconds_total", "dsr_reports_total",
        "dsr_oldest_queued_job_age_seconds", "dsr_jobs_due_soon", "dsr_jobs_overdue",
        "dsr_dispatch_paused", "dsr_build_info", "dsr_workers", "dsr_periodic_runs_total"}) {
    EXPECT_EQ(e.types.count(family), 1u) << family;
  }
  EXPECT_EQ(e.types.at("dsr_job_duration_seconds"), "histogram");
  EXPECT_EQ(e.types.at("dsr_webhooks_total"), "counter");
  EXPECT_EQ(e.types.at("dsr_jobs"), "gauge");
  EXPECT_EQ(e.value("dsr_build_info{version=\"" DSR_VERSION "\",schema=\"0\"}"), 1);
  EXPECT_EQ(e.value("dsr_workers"), 1);
  EXPECT_EQ(e.value("dsr_jobs{state=\"queued\"}"), 0);
  EXPECT_EQ(e.samples.count("dsr_jobs{state=\"cancelled\"}"), 1u);
}

// Several daemons (docs/contract.md §8): the live daemons, the schema this build expects, and the
// periodic runs this daemon made, by task.
TEST(Metrics, ShowTheLiveDaemonsTheSchemaAndThePeriodicRunsMadeHere) {
  metrics m;
  m.periodic_run("retention_purge");
  m.periodic_run("retention_purge");
  m.periodic_run("deadline_warning");
  metrics::gauges g{{}, t0, false};
  g.workers = 3;
  g.schema = 7;
  const auto e = test::parse_exposition(m.render(g));
  EXPECT_EQ(e.value("dsr_workers"), 3);
  EXPECT_EQ(e.value("dsr_build_info{version=\"" DSR_VERSION "\",schema=\"7\"}"), 1);
  EXPECT_EQ(e.value("dsr_periodic_runs_total{task=\"retention_purge\"}"), 2);
  EXPECT_EQ(e.value("dsr_periodic_runs_total{task=\"deadline_warning\"}"), 1);
  EXPECT_EQ(e.types.at("dsr_periodic_runs_total"), "counter");
}

TEST(Metrics, CountersAndHistogramsMoveWithWhatHappens) {
  metrics m;
  m.webhook("delete", 202);
  m.webhook("delete", 202);
  m.webhook("copy", 401);
  m.exponea_call("export-one", 200, 0.03s);
  m.exponea_call("export-one", 200, 2s);
  m.exponea_call("anonymize", 0, 30.5s);
  m.job_finished("delete", "Completed", 42s);
  m.retry("5xx");
  m.rate_limit_wait(0.25s);
  m.rate_limit_wait(0.5s);
  m.report("acknowledged");
  job_stats jobs;
  jobs.by_state[static_cast<std::size_t>(job_state::queued)] = 3;
  jobs.oldest_waiting = t0 - 90s;
  jobs.due_soon = 2;
  jobs.overdue = 1;
  const auto e = test::parse_exposition(m.render({jobs, t0, true}));

  EXPECT_EQ(e.value(R"(dsr_webhooks_total{operation="delete",code="202"})"), 2);
  EXPECT_EQ(e.value(R"(dsr_webhooks_total{operation="copy",code="401"})"), 1);
  EXPECT_EQ(e.value(R"(dsr_exponea_requests_total{endpoint="export-one",code="200"})"), 2);
  EXPECT_EQ(e.value(R"(dsr_exponea_requests_total{endpoint="anonymize",code="0"})"), 1);
  // 0.03 s falls in the 0.05 bucket, 2 s in 2.5, 30.5 s only in +Inf.
  EXPECT_EQ(
      e.value(R"(dsr_exponea_request_duration_seconds_bucket{endpoint="export-one",le="0.025"})"),
      0);
  EXPECT_EQ(
      e.value(R"(dsr_exponea_request_duration_seconds_bucket{endpoint="export-one",le="0.05"})"),
      1);
  EXPECT_EQ(
      e.value(R"(dsr_exponea_request_duration_seconds_bucket{endpoint="export-one",le="2.5"})"), 2);
  EXPECT_EQ(e.value(R"(dsr_exponea_request_duration_seconds_bucket{endpoint="anonymize",le="30"})"),
            0);
  EXPECT_EQ(e.value(R"(dsr_exponea_request_duration_seconds_count{endpoint="anonymize"})"), 1);
  EXPECT_DOUBLE_EQ(e.value(R"(dsr_exponea_request_duration_seconds_sum{endpoint="export-one"})"),
                   2.03);
  EXPECT_EQ(
      e.value(R"(dsr_job_duration_seconds_bucket{operation="delete",outcome="Completed",le="60"})"),
      1);
  EXPECT_EQ(
      e.value(R"(dsr_job_duration_seconds_bucket{operation="delete",outcome="Completed",le="15"})"),
      0);
  EXPECT_EQ(e.value(R"(dsr_retries_total{reason="5xx"})"), 1);
  EXPECT_DOUBLE_EQ(e.value("dsr_rate_limit_wait_seconds_total"), 0.75);
  EXPECT_EQ(e.value(R"(dsr_reports_total{result="acknowledged"})"), 1);
  EXPECT_EQ(e.value(R"(dsr_jobs{state="queued"})"), 3);
  EXPECT_EQ(e.value("dsr_oldest_queued_job_age_seconds"), 90);
  EXPECT_EQ(e.value("dsr_jobs_due_soon"), 2);
  EXPECT_EQ(e.value("dsr_jobs_overdue"), 1);
  EXPECT_EQ(e.value("dsr_dispatch_paused"), 1);
}

TEST(Metrics, LabelValuesAreEscaped) {
  metrics m;
  m.retry("odd \"reason\"\nwith \\ and newline");
  const auto page = m.render({{}, t0, false});
  EXPECT_THAT(page,
              HasSubstr(R"(dsr_retries_total{reason="odd \"reason\"\nwith \\ and newline"} 1)"));
  EXPECT_NO_THROW(test::parse_exposition(page));
}

TEST(Metrics, TheGrafanaDashboardQueriesOnlyMetricsTheDaemonExports) {
  std::ifstream in(DSR_SOURCE_DIR "/docs/grafana-dashboard.json");
  const auto dash = nlohmann::json::parse(in);  // importable: valid JSON
  metrics m;
  const auto families = test::parse_exposition(m.render({{}, t0, false})).types;
  std::set<std::string> used;
  const std::regex name(R"(dsr_[a-z_]+)");
  for (const auto& panel : dash["panels"]) {
    for (const auto& target : panel["targets"]) {
      const auto expr = target["expr"].get<std::string>();
      for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it) {
        std::string metric = it->str();
        for (const std::string suffix : {"_bucket", "_count", "_sum"}) {
          if (families.count(metric) == 0 && metric.ends_with(suffix)) {
            metric.resize(metric.size() - suffix.size());
          }
        }
        EXPECT_EQ(families.count(metric), 1u) << metric << " in " << expr;
        used.insert(metric);
      }
    }
  }
  // Intake, queue depth, Exponea latency and errors, deadlines at risk, pause.
  for (const char* needed : {"dsr_webhooks_total", "dsr_jobs",
                             "dsr_exponea_request_duration_seconds", "dsr_exponea_requests_total",
                             "dsr_jobs_overdue", "dsr_jobs_due_soon", "dsr_dispatch_paused"}) {
    EXPECT_EQ(used.count(needed), 1u) << needed;
  }
}

TEST(PrometheusText, TheReaderRefusesWhatTheFormatForbids) {
  EXPECT_THROW(test::parse_exposition("x 1\n"), std::runtime_error);                  // no TYPE
  EXPECT_THROW(test::parse_exposition("# TYPE x gauge\nx 1\n"), std::runtime_error);  // no HELP
  EXPECT_THROW(test::parse_exposition("# HELP x h\n# TYPE x gauge\nx{a=b} 1\n"),
               std::runtime_error);  // unquoted label
  EXPECT_THROW(test::parse_exposition("# HELP x h\n# TYPE x gauge\nx one\n"), std::runtime_error);
  EXPECT_THROW(test::parse_exposition("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                      "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                                      "h_count 2\n"),
               std::runtime_error);  // not cumulative
  EXPECT_THROW(test::parse_exposition("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                                      "h_bucket{le=\"+Inf\"} 2\nh_count 3\n"),
               std::runtime_error);  // +Inf is not the count
}

TEST(Metrics, SummaryForTheStatusPageCountsErrorsEstimatesP95AndKeepsTheLastHour) {
  auto time = std::make_shared<test::fake_clock>(t0);
  metrics m(time);
  for (int i = 0; i < 19; ++i) {
    m.exponea_call("track", 200, 0.02s);  // in the (0.01, 0.025] bucket
  }
  m.exponea_call("track", 429, 0.3s);
  m.exponea_call("anonymize", 0, 31s);       // no answer, beyond the last bound
  m.exponea_call("export-one", 404, 0.01s);  // "no such customer": not an error
  m.webhook("delete", 202);
  m.webhook("delete", 401);  // refused: not accepted
  m.job_finished("delete", "Completed", 3s);
  time->advance(59min);
  m.webhook("copy", 202);
  m.job_finished("copy", "Failed", 3s);

  auto s = m.summarize();
  ASSERT_EQ(s.exponea.size(), 3u);
  EXPECT_EQ(s.exponea[1].endpoint, "export-one");
  EXPECT_EQ(s.exponea[1].errors, 0u);
  EXPECT_EQ(s.exponea[2].endpoint, "track");
  EXPECT_EQ(s.exponea[2].calls, 20u);
  EXPECT_EQ(s.exponea[2].errors, 1u);
  EXPECT_NEAR(s.exponea[2].mean_seconds, (19 * 0.02 + 0.3) / 20, 1e-9);
  EXPECT_EQ(s.exponea[2].p95_at_most_seconds, 0.025);  // 19 of 20 within the 0.025 bucket
  EXPECT_EQ(s.exponea[0].errors, 1u);
  EXPECT_TRUE(std::isinf(s.exponea[0].p95_at_most_seconds));  // beyond the last bound
  EXPECT_EQ(s.accepted_last_hour, 2u);
  EXPECT_EQ(s.finished_last_hour["Completed"], 1u);
  EXPECT_EQ(s.finished_last_hour["Failed"], 1u);

  time->advance(1min);  // the first minute has left the window
  s = m.summarize();
  EXPECT_EQ(s.accepted_last_hour, 1u);
  EXPECT_EQ(s.finished_last_hour.count("Completed"), 0u);
  time->advance(2h);
  EXPECT_EQ(m.summarize().accepted_last_hour, 0u);
}

}  // namespace
}  // namespace dsr::ops
