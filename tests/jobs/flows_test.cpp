#include "dsr/jobs/flows.hpp"

#include "dsr/sim/exponea_sim.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "fakes/handler_client.hpp"
#include "support/run_sync.hpp"
#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <numeric>

namespace dsr {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using kind = flow_outcome::kind;

class recording_journal final : public journal {
 public:
  boost::asio::awaitable<result<void>> record(step_name step, std::string result) override {
    if (fail_at_ && steps.size() == *fail_at_) {
      co_return make_failure(errc::lease_lost, "lease lost (injected)");
    }
    steps.push_back(to_string(step) + " " + result);
    entries.push_back(job_step{time_point{}, std::move(step), std::move(result)});
    co_return dsr::result<void>{};
  }
  // The lease check before each side-effecting call: counted, and refused after the n-th.
  boost::asio::awaitable<result<void>> before_call() override {
    if (refuse_call_at_ && ++checks_ > *refuse_call_at_) {
      co_return make_failure(errc::lease_lost, "less than timeout_seconds of its lease is left");
    }
    co_return dsr::result<void>{};
  }
  std::vector<std::string> steps;
  std::optional<std::size_t> refuse_call_at_;
  std::size_t checks_ = 0;
  std::vector<job_step> entries;  // what a resumed job's history would hold
  std::optional<std::size_t> fail_at_;
};

class fake_flow_clock final : public flow_clock {
 public:
  explicit fake_flow_clock(std::shared_ptr<test::fake_clock> c) : clock_(std::move(c)) {}
  time_point now() const override { return clock_->now(); }
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds d) override {
    slept.push_back(d);
    clock_->advance(d);
    co_return;
  }
  bool stopping() const override { return stopping_; }
  std::vector<std::chrono::milliseconds> slept;
  bool stopping_ = false;

 private:
  std::shared_ptr<test::fake_clock> clock_;
};

// The real API, with a shutdown that begins while a side-effecting call waits for its turn (the
// limiter, a batch filling): `on_wait` runs before the call is handed on.
class waiting_api final : public exponea::api {
 public:
  waiting_api(exponea::api& inner, std::function<void()> on_wait)
      : inner_(inner), on_wait_(std::move(on_wait)) {}
  boost::asio::awaitable<exponea::outcome<std::optional<exponea::export_summary>>> export_one(
      exponea::export_request r) override {
    co_return co_await inner_.export_one(std::move(r));
  }
  boost::asio::awaitable<exponea::outcome<void>> track(nlohmann::json ids, exponea::event e,
                                                       exponea::auth a,
                                                       exponea::before_send go) override {
    on_wait_();
    auto r = co_await inner_.track(std::move(ids), std::move(e), a, std::move(go));
    co_return r;
  }
  boost::asio::awaitable<exponea::outcome<bool>> anonymize(nlohmann::json ids,
                                                           exponea::before_send go) override {
    on_wait_();
    auto r = co_await inner_.anonymize(std::move(ids), std::move(go));
    co_return r;
  }
  boost::asio::awaitable<exponea::outcome<void>> system_time(exponea::auth a) override {
    co_return co_await inner_.system_time(a);
  }
  boost::asio::awaitable<exponea::outcome<std::vector<exponea::consent_category>>>
  consent_categories() override {
    co_return co_await inner_.consent_categories();
  }

 private:
  exponea::api& inner_;
  std::function<void()> on_wait_;
};

json seed(int write_delay_ms) {
  std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
  auto s = json::parse(in);
  s["write_delay_ms"] = write_delay_ms;
  return s;
}

class FlowTest : public ::testing::Test {
 protected:
  explicit FlowTest(int write_delay_ms = 0)
      : sim_(seed(write_delay_ms), clock_, [](auto, auto fn) { fn(); }) {
    creds_.set(credential::exponea_api_key, "demo-api-key")
        .set(credential::exponea_api_secret, "demo-api-secret")
        .set(credential::exponea_project_token, "demo-project-token")
        .set(credential::exponea_api_token, "demo-api-token");
    api_ = exponea::make_api(std::make_unique<test::handler_client>(sim_), creds_, clock_,
                             {dir_.path(), 1024 * 1024});
    settings_.verify_timeout = 60s;
  }

  job make_job(operation op, std::string email = "jane@example.com") {
    job j;
    j.id = 1;
    j.op = op;
    j.request_id = "req-1";
    j.trace_id = "trace-1";
    j.integration_id = "int-42";
    j.subject = std::move(email);
    j.received_at = clock_->now();
    return j;
  }
  flow_outcome run(const job& j) {
    switch (j.op) {
      case operation::delete_:
        return test::run_sync(ioc_, run_delete(j, *api_, journal_, time_, settings_));
      case operation::opt_out:
        return test::run_sync(ioc_, run_opt_out(j, *api_, journal_, time_, settings_));
      case operation::copy:
        break;
    }
    return test::run_sync(ioc_, run_copy(j, *api_, journal_, time_, settings_, export_file()));
  }
  // The consent events on the customer holding `email`: (category, action) each.
  std::vector<std::pair<std::string, std::string>> consent_events(const std::string& email) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& c : sim_.state()) {
      if (c["ids"].value("registered", "") != email) {
        continue;
      }
      for (const auto& e : c["events"]) {
        if (e.value("type", "") == "consent") {
          out.emplace_back(e["properties"].value("category", ""),
                           e["properties"].value("action", ""));
        }
      }
    }
    return out;
  }
  std::filesystem::path export_file() const { return dir_.path() / "1.json"; }
  json exported() const {
    std::ifstream in(export_file());
    return json::parse(in);
  }
  // Endpoints called, in order.
  std::vector<std::string> calls() {
    std::vector<std::string> out;
    for (const auto& c : sim_.calls()) {
      out.push_back(c["endpoint"].get<std::string>());
    }
    return out;
  }
  // Customers holding this ID now.
  int holders(const std::string& email) {
    int n = 0;
    for (const auto& c : sim_.state()) {
      n += c["ids"].value("registered", "") == email ? 1 : 0;
    }
    return n;
  }
  int audit_events(const std::string& request_id) {
    int n = 0;
    for (const auto& c : sim_.state()) {
      for (const auto& e : c["events"]) {
        n += e.is_object() && e.value("type", "") == "privacy_request" &&
                     e.contains("properties") && e["properties"].is_object() &&
                     e["properties"].contains("request_id") &&
                     e["properties"]["request_id"] == request_id
                 ? 1
                 : 0;
      }
    }
    return n;
  }
  void fault(json f) {
    http::request req;
    req.method = "POST";
    req.target = "/_sim/faults";
    req.body = f.dump();
    sim_.handle(req, [](http::response) {});
  }

  boost::asio::io_context ioc_;
  test::temp_dir dir_;
  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  sim::exponea_simulator sim_;
  test::fake_credentials creds_;
  std::unique_ptr<exponea::api> api_;
  recording_journal journal_;
  fake_flow_clock time_{clock_};
  flow_settings settings_;
};

TEST_F(FlowTest, DeleteTracksTheEventThenAnonymizesThenVerifies) {
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::completed) << out.message;
  EXPECT_EQ(calls(), (std::vector<std::string>{"export-one", "track", "anonymize", "export-one"}));
  EXPECT_EQ(journal_.steps,
            (std::vector<std::string>{"track started", "track done", "anonymize started",
                                      "anonymize done", "verify done"}));
  EXPECT_EQ(holders("jane@example.com"), 0);
  EXPECT_EQ(audit_events("req-1"), 1);
  // The audit event carries no personal data and was sent with the public token.
  const auto track_call = sim_.calls()[1];
  EXPECT_EQ(track_call["auth"], "token");
  const auto body = json::parse(track_call["body"].get<std::string>());
  EXPECT_EQ(body["properties"], (json{{"request_id", "req-1"},
                                      {"source", "MineOS"},
                                      {"type", "delete"},
                                      {"trace_id", "trace-1"},
                                      {"integration_id", "int-42"}}));
  EXPECT_EQ(body["event_type"], "privacy_request");
}

TEST_F(FlowTest, MixedCaseEmailIsLowerCasedBeforeUse) {
  EXPECT_EQ(run(make_job(operation::delete_, "Jane@Example.COM")).result, kind::completed);
  EXPECT_EQ(holders("jane@example.com"), 0);
}

TEST_F(FlowTest, UnknownCustomerIsUserNotFoundAndNothingIsWritten) {
  for (const auto op : {operation::delete_, operation::copy}) {
    EXPECT_EQ(run(make_job(op, "nobody@example.com")).result, kind::user_not_found);
  }
  EXPECT_EQ(calls(), (std::vector<std::string>{"export-one", "export-one"}));
  EXPECT_EQ(holders("nobody@example.com"), 0);  // no customer created by tracking
  EXPECT_TRUE(journal_.steps.empty());
}

TEST_F(FlowTest, CopyExportsAndTracksOneEvent) {
  const auto out = run(make_job(operation::copy));
  ASSERT_EQ(out.result, kind::completed) << out.message;
  const auto data = exported();
  EXPECT_EQ(data["properties"]["first_name"], "Jane");
  EXPECT_EQ(data["events"].size(), 2u);  // the export taken before the audit event
  EXPECT_EQ(data["ids"]["registered"], "jane@example.com");
  EXPECT_EQ(audit_events("req-1"), 1);
  const auto body = json::parse(sim_.calls()[1]["body"].get<std::string>());
  EXPECT_EQ(body["properties"]["type"], "copy");
  EXPECT_EQ(holders("jane@example.com"), 1);  // copy never anonymizes
}

TEST_F(FlowTest, StillResolvingCustomerIsAnonymizedAgainThenFailsAfterTheTimeout) {
  // Exponea says success but never removes the customer.
  fault({{"endpoint", "anonymize"},
         {"status", 200},
         {"body", R"({"success":true})"},
         {"count", 100}});
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::failed);
  EXPECT_THAT(out.message, ::testing::HasSubstr("still resolves"));
  const auto c = calls();
  EXPECT_GT(std::count(c.begin(), c.end(), "anonymize"), 1);  // anonymized again while there
  // It waited out verify_timeout (60 s here) before giving up, never longer.
  const auto waited = std::accumulate(time_.slept.begin(), time_.slept.end(), 0ms);
  EXPECT_EQ(waited, 60s);
}

class QueuedWritesFlowTest : public FlowTest {
 protected:
  QueuedWritesFlowTest() : FlowTest(5000) {}
};

TEST_F(QueuedWritesFlowTest, DeleteCompletesOnlyOnceVerificationSeesTheCustomerGone) {
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::completed) << out.message;
  EXPECT_EQ(holders("jane@example.com"), 0);
  // It polled with growing waits until the queued anonymization took effect (5 s).
  ASSERT_GE(time_.slept.size(), 2u);
  EXPECT_EQ(time_.slept[0], 1s);
  EXPECT_EQ(time_.slept[1], 2s);
  EXPECT_EQ(audit_events("req-1"), 1);
}

TEST_F(FlowTest, ResumedAfterTrackStartedDoesNotTrackTwiceWhenTheEventArrived) {
  auto j = make_job(operation::delete_);
  // The previous run tracked the event, then crashed before journaling `track done`.
  ASSERT_EQ(run(make_job(operation::copy)).result, kind::completed);  // puts req-1's event there
  j.history = {{clock_->now(), step_kind::track, "started"}};
  journal_.steps.clear();
  EXPECT_EQ(run(j).result, kind::completed);
  EXPECT_EQ(audit_events("req-1"), 1);
  EXPECT_EQ(journal_.steps.front(), "anonymize started");
}

TEST_F(FlowTest, ResumedAfterTrackStartedTracksWhenTheEventNeverArrived) {
  auto j = make_job(operation::delete_);
  j.history = {{clock_->now(), step_kind::track, "started"}};
  EXPECT_EQ(run(j).result, kind::completed);
  EXPECT_EQ(journal_.steps.front(), "track started");
  EXPECT_EQ(holders("jane@example.com"), 0);
}

TEST_F(QueuedWritesFlowTest, ResumedAfterTrackStartedWaitsForAQueuedEventInsteadOfTracking) {
  auto j = make_job(operation::copy);
  // The crashed run's track call reached Exponea, which queued the write (5 s here).
  exponea::event e{"privacy_request", 1, event_properties(j, settings_)};
  ASSERT_TRUE(
      test::run_sync(ioc_, api_->track(customer_ids(j, settings_), e, exponea::auth::token)));
  j.history = {{clock_->now(), step_kind::track, "started"}};
  EXPECT_EQ(run(j).result, kind::completed);
  EXPECT_EQ(audit_events("req-1"), 1);  // found in the export once applied, not tracked again
  EXPECT_TRUE(std::find(journal_.steps.begin(), journal_.steps.end(), "track started") ==
              journal_.steps.end());
  EXPECT_FALSE(time_.slept.empty());
}

TEST_F(FlowTest, ResumedAfterAnonymizeStartedTreatsNotFoundAsCompleted) {
  auto j = make_job(operation::delete_);
  j.history = {{clock_->now(), step_kind::track, "started"},
               {clock_->now(), step_kind::track, "done"},
               {clock_->now(), step_kind::anonymize, "started"}};
  // The anonymization of the crashed run took effect.
  ASSERT_EQ(test::run_sync(ioc_, api_->anonymize(customer_ids(j, settings_))).value(), true);
  const auto out = run(j);
  EXPECT_EQ(out.result, kind::completed) << out.message;
  EXPECT_EQ(calls().back(), "export-one");
  EXPECT_EQ(holders("jane@example.com"), 0);
  EXPECT_EQ(audit_events("req-1"), 0);  // nothing tracked on the anonymous profile
}

TEST_F(FlowTest, ResumedAfterAnUnansweredAnonymizeSendsItAgainInsteadOfFailing) {
  auto j = make_job(operation::delete_);
  // The last attempt's anonymize met a 429 (Exponea dropped it); the job then waited in the
  // queue for longer than verify_timeout.
  j.history = {
      {clock_->now(), step_kind::track, "started"},
      {clock_->now(), step_kind::track, "done"},
      {clock_->now(), step_kind::anonymize, "started"},
      {clock_->now(), step_name::attempt(1), "retry: Bloomreach anonymize: 429 Too many requests"}};
  clock_->advance(5min);
  const auto out = run(j);
  EXPECT_EQ(out.result, kind::completed) << out.message;
  EXPECT_EQ(holders("jane@example.com"), 0);
  EXPECT_EQ(journal_.steps,
            (std::vector<std::string>{"anonymize started", "anonymize done", "verify done"}));
}

TEST_F(FlowTest, OptOutTracksTheAuditEventThenRejectsEachCategoryAndNeverAnonymizes) {
  settings_.consent_categories = {"marketing", "personalisation"};
  const auto out = run(make_job(operation::opt_out));
  ASSERT_EQ(out.result, kind::completed) << out.message;
  EXPECT_EQ(out.message, "Consent revoked in Bloomreach: marketing, personalisation");
  EXPECT_EQ(calls(), (std::vector<std::string>{"export-one", "track", "track", "track"}));
  EXPECT_EQ(holders("jane@example.com"), 1);  // nothing anonymized
  EXPECT_EQ(consent_events("jane@example.com"),
            (std::vector<std::pair<std::string, std::string>>{{"marketing", "reject"},
                                                              {"personalisation", "reject"}}));
  const auto audit = json::parse(sim_.calls()[1]["body"].get<std::string>());
  EXPECT_EQ(audit["properties"]["type"], "opt_out");
  EXPECT_EQ(sim_.calls()[1]["auth"], "token");
  // Exactly the documented consent attributes (an invalid one would count as a revocation of
  // something else), with the private key, the timestamp journaled before the call.
  const auto consent = json::parse(sim_.calls()[2]["body"].get<std::string>());
  EXPECT_EQ(sim_.calls()[2]["auth"], "basic");
  EXPECT_EQ(consent["event_type"], "consent");
  EXPECT_EQ(consent["properties"],
            (json{{"action", "reject"}, {"category", "marketing"}, {"valid_until", "unlimited"}}));
  const auto ts = consent["timestamp"].get<std::int64_t>();
  EXPECT_EQ(journal_.steps,
            (std::vector<std::string>{
                "track started", "track done", "consent marketing started " + std::to_string(ts),
                "consent marketing done", "consent personalisation started " + std::to_string(ts),
                "consent personalisation done"}));
  for (const auto& c : sim_.state()) {
    if (c["ids"].value("registered", "") == "jane@example.com") {
      EXPECT_EQ(c["consents"]["marketing"]["action"], "reject");
      EXPECT_EQ(c["consents"]["personalisation"]["action"], "reject");
    }
  }
}

TEST_F(FlowTest, OptOutWithoutConsentCategoriesFailsBeforeAnyCall) {
  const auto out = run(make_job(operation::opt_out));
  EXPECT_EQ(out.result, kind::failed);
  EXPECT_THAT(out.message, ::testing::HasSubstr("no consent categories configured"));
  EXPECT_TRUE(calls().empty());
}

TEST_F(FlowTest, OptOutOfAnUnknownCustomerIsUserNotFoundAndTracksNothing) {
  settings_.consent_categories = {"marketing"};
  EXPECT_EQ(run(make_job(operation::opt_out, "nobody@example.com")).result, kind::user_not_found);
  EXPECT_EQ(calls(), (std::vector<std::string>{"export-one"}));
  EXPECT_EQ(holders("nobody@example.com"), 0);
}

TEST_F(FlowTest, OptOutWithoutTheConsentPermissionPausesNamingIt) {
  settings_.consent_categories = {"marketing"};
  // The audit event goes through; the consent event meets Exponea's answer to a private key
  // without Events > consent Set.
  fault(json::array(
      {{{"endpoint", "track"}},
       {{"endpoint", "track"},
        {"status", 200},
        {"body",
         R"({"success":false,"errors":["Not authorized to add event of specified type"]})"}}}));
  const auto out = run(make_job(operation::opt_out));
  EXPECT_EQ(out.result, kind::rejected);
  EXPECT_THAT(out.value, ::testing::HasSubstr("exponea_api_key"));
  EXPECT_THAT(out.value, ::testing::HasSubstr("consent"));
}

TEST_F(FlowTest, ACustomFieldIdIsTheOnlyIdSent) {
  http::request req;
  req.method = "POST";
  req.target = "/_sim/customers";
  req.body = R"({"ids":{"customer_id":"C-1042","registered":"kim@example.com"}})";
  sim_.handle(req, [](http::response) {});
  auto j = make_job(operation::delete_, "C-1042");
  j.subject_id_name = "customer_id";
  ASSERT_EQ(run(j).result, kind::completed);
  for (const auto& c : sim_.calls()) {
    const auto body = json::parse(c["body"].get<std::string>());
    EXPECT_EQ(body["customer_ids"], (json{{"customer_id", "C-1042"}})) << c.dump();
  }
  EXPECT_EQ(holders("kim@example.com"), 0);
}

// Crash points: the run stops at each journal write (the write fails, as when the process dies
// right there), then the job resumes from what was journaled. Every consent event and the audit
// event end up tracked exactly once, whether the interrupted call landed or not.
class OptOutCrashTest : public FlowTest,
                        public ::testing::WithParamInterface<std::tuple<int, int>> {
 protected:
  OptOutCrashTest() : FlowTest(std::get<1>(GetParam())) {
    settings_.consent_categories = {"marketing", "personalisation"};
  }
};

TEST_P(OptOutCrashTest, ResumedFromEachJournaledStepTracksEachEventOnce) {
  const int k = std::get<0>(GetParam());
  auto j = make_job(operation::opt_out);
  journal_.fail_at_ = static_cast<std::size_t>(k);
  const auto first = run(j);
  ASSERT_EQ(first.result, kind::interrupted) << first.message;
  j.history = journal_.entries;
  journal_.fail_at_.reset();
  clock_->advance(1s);
  const auto resumed = run(j);
  ASSERT_EQ(resumed.result, kind::completed) << resumed.message;
  clock_->advance(60s);  // queued writes, if any, land
  EXPECT_EQ(audit_events("req-1"), 1);
  EXPECT_EQ(consent_events("jane@example.com"),
            (std::vector<std::pair<std::string, std::string>>{{"marketing", "reject"},
                                                              {"personalisation", "reject"}}));
  EXPECT_EQ(holders("jane@example.com"), 1);
}

// Six journal writes (audit started/done, then started/done per category); Exponea applying
// writes at once, or 5 s later (queued).
INSTANTIATE_TEST_SUITE_P(EveryStep, OptOutCrashTest,
                         ::testing::Combine(::testing::Range(0, 6), ::testing::Values(0, 5000)));

TEST_F(FlowTest, OddlyShapedEventsInTheExportAreNotMistakenForTheAuditEvent) {
  http::request req;
  req.method = "POST";
  req.target = "/_sim/customers";
  req.body = R"({"ids":{"registered":"odd@example.com"},
                 "events":[1, "x", {"type":"privacy_request"},
                           {"type":"privacy_request","properties":[]},
                           {"type":"privacy_request","properties":{"request_id":7}}]})";
  sim_.handle(req, [](http::response) {});
  const auto out = run(make_job(operation::copy, "odd@example.com"));
  EXPECT_EQ(out.result, kind::completed) << out.message;
  EXPECT_EQ(audit_events("req-1"), 1);  // tracked: none of those was this request's event
}

TEST_F(FlowTest, TransientFailureAsksForARetryWithRetryAfter) {
  fault({{"endpoint", "export-one"}, {"status", 503}, {"retry_after", "7"}});
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::retry);
  EXPECT_EQ(out.retry_after, 7s);
  EXPECT_EQ(holders("jane@example.com"), 1);
}

TEST_F(FlowTest, LostAnswerOfTrackIsRetriedWithoutASecondEvent) {
  fault({{"endpoint", "track"}, {"drop", true}, {"apply", true}});
  auto j = make_job(operation::delete_);
  const auto first = run(j);
  ASSERT_EQ(first.result, kind::retry);
  // The dispatcher resumes the job with the journal it left.
  j.history = {{clock_->now(), step_kind::track, "started"}};
  EXPECT_EQ(run(j).result, kind::completed);
  EXPECT_EQ(audit_events("req-1"), 1);
}

TEST_F(FlowTest, CredentialRejectionNamesTheValue) {
  creds_.set(credential::exponea_api_secret, "wrong");
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::rejected);
  EXPECT_EQ(out.value, "exponea_api_secret");
  EXPECT_THAT(out.message, ::testing::HasSubstr("invalid secret"));
}

TEST_F(FlowTest, PermanentErrorFailsWithExponeasText) {
  fault({{"endpoint", "anonymize"},
         {"status", 400},
         {"body", R"({"success":false,"message":"Invalid JSON"})"}});
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::failed);
  EXPECT_THAT(out.message, ::testing::HasSubstr("Invalid JSON"));
}

// The lease is renewed before each side-effecting call (docs/contract.md §8): a run that cannot
// renew it with more than timeout_seconds left makes no such call; the next run resumes from the
// journal (the track was journaled as done, so only the anonymize is left for it).
TEST_F(FlowTest, ALeaseTooShortForTheNextCallStopsTheFlowBeforeIt) {
  journal_.refuse_call_at_ = 1;  // the track's check passes, the anonymize's fails
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::interrupted);
  EXPECT_EQ(journal_.checks_, 2u);
  EXPECT_EQ(journal_.steps,
            (std::vector<std::string>{"track started", "track done", "anonymize started"}));
  EXPECT_THAT(out.message, ::testing::HasSubstr("timeout_seconds"));
  EXPECT_EQ(calls(), (std::vector<std::string>{"export-one", "track"}));
  EXPECT_EQ(holders("jane@example.com"), 1);
  // An opt-out's consent events are checked as well: none goes without a renewed lease.
  recording_journal fresh;
  journal_ = fresh;
  journal_.refuse_call_at_ = 0;
  settings_.consent_categories = {"newsletter"};
  const auto opt_out = run(make_job(operation::opt_out));
  EXPECT_EQ(opt_out.result, kind::interrupted);
  EXPECT_EQ(audit_events("req-1"), 1);  // the delete's event only
}

// `started` is journaled when the call actually goes, not while it waits for its turn: a job
// stopped meanwhile resumes with nothing to look for (no 30-second poll for an event that was
// never sent).
TEST_F(FlowTest, AJobStoppedWhileItsCallWaitsForItsTurnJournalsNothingStarted) {
  waiting_api api(*api_, [this] { time_.stopping_ = true; });
  const auto j = make_job(operation::delete_);
  const auto out = test::run_sync(ioc_, run_delete(j, api, journal_, time_, settings_));
  EXPECT_EQ(out.result, kind::stopped);
  EXPECT_TRUE(journal_.steps.empty()) << ::testing::PrintToString(journal_.steps);
  EXPECT_EQ(calls(), (std::vector<std::string>{"export-one"}));
  EXPECT_EQ(audit_events("req-1"), 0);
}

TEST_F(FlowTest, JournalFailureStopsBeforeTheNextCall) {
  journal_.fail_at_ = 2;  // `track started`, `track done` recorded; `anonymize started` fails
  const auto out = run(make_job(operation::delete_));
  EXPECT_EQ(out.result, kind::interrupted);
  EXPECT_EQ(calls(), (std::vector<std::string>{"export-one", "track"}));
  EXPECT_EQ(holders("jane@example.com"), 1);
}

}  // namespace
}  // namespace dsr
