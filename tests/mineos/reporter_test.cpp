#include "dsr/mineos/reporter.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/jobs/store.hpp"
#include "dsr/mineos/file_links.hpp"
#include "dsr/sim/exponea_sim.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "fakes/handler_client.hpp"
#include "fakes/inline_queue.hpp"

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <fstream>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dsr::mineos {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 12 / 1}};

job finished(operation op, std::string outcome, std::string message) {
  job j;
  j.request_id = "fb8667b6-7abf";
  j.trace_id = "trace-1";
  j.integration_id = "int-42";
  j.op = op;
  j.outcome = parse_job_outcome(outcome).value();
  j.outcome_message = std::move(message);
  j.subject = "jane@example.com";
  return j;
}

TEST(Report, BodyHoldsOnlyTheFieldsMineOsDefines) {
  const auto body =
      report_body(finished(operation::delete_, "Completed", "Anonymized in Bloomreach"));
  EXPECT_EQ(body, (json{{"action", "Delete"},
                        {"status", "Completed"},
                        {"message", "Anonymized in Bloomreach"}}));
  // An opt-out closes MineOS's Delete action too; a copy the Copy action.
  EXPECT_EQ(report_body(finished(operation::opt_out, "Completed", "x"))["action"], "Delete");
  EXPECT_EQ(report_body(finished(operation::copy, "UserNotFound", "x"))["action"], "Copy");
  EXPECT_EQ(report_body(finished(operation::copy, "Completed", "x")).dump().find("jane"),
            std::string::npos);
}

TEST(Report, GoesToThePublishedPath) {
  EXPECT_EQ(status_path("fb8667b6-7abf", "int-42"),
            "/api/ticket/fb8667b6-7abf/custom-integrations/int-42");
  // An id stored by an older version may hold anything: encoded, never a path of its own.
  EXPECT_EQ(status_path("a/b c", "i?d"), "/api/ticket/a%2Fb%20c/custom-integrations/i%3Fd");
}

TEST(Report, MineOsAnswersAreClassified) {
  EXPECT_EQ(classify_report_answer(200), report_answer::acknowledged);
  EXPECT_EQ(classify_report_answer(204), report_answer::acknowledged);
  EXPECT_EQ(classify_report_answer(401), report_answer::unauthorized);
  EXPECT_EQ(classify_report_answer(429), report_answer::transient);
  EXPECT_EQ(classify_report_answer(503), report_answer::transient);
  EXPECT_EQ(classify_report_answer(408), report_answer::transient);
  EXPECT_EQ(classify_report_answer(400), report_answer::refused);
  EXPECT_EQ(classify_report_answer(404), report_answer::refused);
  EXPECT_EQ(classify_report_answer(403), report_answer::refused);
}

TEST(Report, ErrorTextQuotesMineOsCutOnACharacterAndCleaned) {
  EXPECT_EQ(report_error_text(400, R"({"internalErrorCode":"InvalidArgument","message":"bad"})"),
            "MineOS answered 400: bad");
  EXPECT_THAT(report_error_text(404, R"({"internalErrorCode":"NotFound","message":"no ticket"})"),
              HasSubstr("unknown ticket or integrationId"));
  // A raw 199-byte body and an "é": a byte cut at 200 would leave half a character.
  const auto text = report_error_text(502, std::string(199, 'x') + "\xC3\xA9");
  EXPECT_EQ(text, "MineOS answered 502: " + std::string(199, 'x'));
  EXPECT_NO_THROW((void)json(text).dump());
  EXPECT_EQ(report_error_text(500, "\x1b[31mred\x1b[0m").find('\x1b'), std::string::npos);
  EXPECT_EQ(report_error_text(401, ""), "MineOS answered 401 (mineos_api_key rejected)");
}

class FileLinks : public ::testing::Test {
 protected:
  const std::string key_ = std::string(32, 'k');
  file_links links_{key_, "https://dsr.example.com"};
};

TEST_F(FileLinks, ALinkCarriesTheRequestIdAnExpiryAndASignatureNothingPersonal) {
  const auto url = links_.url("fb8667b6", t0 + 72h);
  EXPECT_THAT(url, ::testing::StartsWith("https://dsr.example.com/v1/files/fb8667b6?expires="));
  EXPECT_THAT(url, HasSubstr("&sig="));
  const auto expires = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>((t0 + 72h).time_since_epoch()).count());
  EXPECT_THAT(url, HasSubstr("expires=" + expires));
}

TEST_F(FileLinks, AValidLinkPassesUntilItExpires) {
  const auto target = links_.target("fb8667b6", t0 + 72h);
  const auto expires =
      target.substr(target.find("expires=") + 8, target.find('&') - target.find("expires=") - 8);
  const auto sig = target.substr(target.find("sig=") + 4);
  EXPECT_EQ(links_.check("fb8667b6", expires, sig, t0), file_links::verdict::ok);
  EXPECT_EQ(links_.check("fb8667b6", expires, sig, t0 + 72h - 1s), file_links::verdict::ok);
  EXPECT_EQ(links_.check("fb8667b6", expires, sig, t0 + 72h), file_links::verdict::expired);
}

TEST_F(FileLinks, ATamperedLinkIsRefusedBeforeItsExpiryIsLookedAt) {
  const auto target = links_.target("fb8667b6", t0 + 72h);
  const auto expires =
      target.substr(target.find("expires=") + 8, target.find('&') - target.find("expires=") - 8);
  auto sig = target.substr(target.find("sig=") + 4);
  // Another request, a later expiry, an altered signature, or another key: all 403.
  EXPECT_EQ(links_.check("fb8667b7", expires, sig, t0), file_links::verdict::bad_signature);
  EXPECT_EQ(links_.check("fb8667b6", expires + "0", sig, t0), file_links::verdict::bad_signature);
  sig[0] = sig[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(links_.check("fb8667b6", expires, sig, t0), file_links::verdict::bad_signature);
  const file_links other(std::string(32, 'x'), "https://dsr.example.com");
  const auto theirs = other.target("fb8667b6", t0 + 72h);
  EXPECT_EQ(links_.check("fb8667b6", expires, theirs.substr(theirs.find("sig=") + 4), t0),
            file_links::verdict::bad_signature);
  // Expired and tampered: the signature answers first.
  EXPECT_EQ(links_.check("fb8667b6", expires, sig, t0 + 100h), file_links::verdict::bad_signature);
}

TEST_F(FileLinks, TheSigningKeyIsDerivedNotTheStoreKeyItself) {
  // An HMAC under store_key itself would make every link a chosen-message oracle for it.
  const auto target = links_.target("r", t0);
  const auto sig = target.substr(target.find("sig=") + 4);
  const auto expires = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(t0.time_since_epoch()).count());
  EXPECT_NE(sig, crypto::to_hex(crypto::hmac_sha256(key_, "r\n" + expires)));
  EXPECT_EQ(sig,
            crypto::to_hex(crypto::hmac_sha256(
                crypto::hkdf_sha256(key_, "", "dsr-connector file links v1"), "r\n" + expires)));
}

TEST(Hkdf, MatchesRfc5869TestCase1) {
  const auto ikm = std::string(22, '\x0b');
  const auto salt = *crypto::from_hex("000102030405060708090a0b0c");
  const auto info = *crypto::from_hex("f0f1f2f3f4f5f6f7f8f9");
  EXPECT_EQ(crypto::to_hex(crypto::hkdf_sha256(ikm, salt, info, 42)),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

// The reporter against the simulator's MineOS, with an injected clock: a 401 pauses reporting,
// one report is let through every pause_probe, and a reload resumes at once.
class ReporterTest : public ::testing::Test {
 protected:
  ReporterTest() {
    std::ifstream in(DSR_SOURCE_DIR "/config/exponea-sim.example.json");
    sim_ = std::make_unique<sim::exponea_simulator>(json::parse(in), clock_,
                                                    [](auto, auto fn) { fn(); });
    store_ = std::move(*open_sqlite_store({":memory:"}));
    queue_ = std::make_unique<test::inline_queue>(*store_);
    db_ = std::make_unique<async_store>(*queue_, ioc_.get_executor());
  }
  ~ReporterTest() override {
    if (reporter_) {
      reporter_->stop();
      ioc_.restart();
      ioc_.run_for(std::chrono::milliseconds(50));
    }
  }
  void add_finished_job(const std::string& id) {
    new_job j;
    j.request_id = id;
    j.trace_id = "t-" + id;
    j.integration_id = "int-42";
    j.received_at = clock_->now();
    j.ended = intake_outcome{job_state::missing_identifiers, job_outcome::missing_identifiers,
                             "no e-mail"};
    ASSERT_TRUE(store_->insert(std::span<const new_job>(&j, 1), 100));
  }
  void start() { start(std::make_unique<test::handler_client>(*sim_)); }
  void start(std::unique_ptr<http::client> mineos, std::size_t max_in_flight = 64) {
    reporter_options o;
    o.retry.pause_probe = 60s;
    o.poll_interval = 5ms;
    o.max_in_flight = max_in_flight;
    o.max_requests_per_minute = per_minute_;
    reporter_ = make_reporter(ioc_.get_executor(), *db_, std::move(mineos), creds_, clock_, o);
    reporter_->start();
  }
  // Runs the reporter until `done` holds (bounded), then a little longer for anything extra.
  template <class Pred>
  bool run_until(Pred done) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!done() && std::chrono::steady_clock::now() < until) {
      ioc_.restart();
      ioc_.run_for(std::chrono::milliseconds(5));
    }
    ioc_.restart();
    ioc_.run_for(std::chrono::milliseconds(50));
    return done();
  }
  std::size_t calls() { return sim_->reports().size(); }
  bool reported(const std::string& id) { return (**store_->find(id)).reported; }
  // r-0 .. r-<n-1> all acknowledged.
  bool all_reported(int n) {
    for (int i = 0; i < n; ++i) {
      if (!reported(fmt::format("r-{}", i))) {
        return false;
      }
    }
    return true;
  }

  boost::asio::io_context ioc_;
  std::shared_ptr<test::fake_clock> clock_ = std::make_shared<test::fake_clock>();
  std::unique_ptr<sim::exponea_simulator> sim_;
  std::unique_ptr<job_store> store_;
  std::unique_ptr<test::inline_queue> queue_;
  std::unique_ptr<async_store> db_;
  test::fake_credentials creds_;
  std::unique_ptr<reporter> reporter_;
  std::uint32_t per_minute_ = 600;
};

// MineOS as the test drives it: each status call is recorded as it arrives and answered only when
// the test opens the gate (then at once); `answers` are given in order, then 200.
class gated_mineos final : public http::client {
 public:
  explicit gated_mineos(boost::asio::any_io_executor ex) : gate_(ex) {
    gate_.expires_at(boost::asio::steady_timer::time_point::max());
  }
  boost::asio::awaitable<result<http::client_response>> send(http::client_request req) override {
    arrived.push_back(req.target);
    ++waiting;
    if (!open_) {
      co_await gate_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    --waiting;
    http::client_response out;
    out.status = 200;
    out.body = "{}";
    if (!answers.empty()) {
      out = std::move(answers.front());
      answers.pop_front();
    }
    co_return out;
  }
  boost::asio::awaitable<result<void>> probe() override { co_return result<void>{}; }
  const std::string& host() const override { return host_; }
  void open() {
    open_ = true;
    gate_.cancel();
  }
  // Answers the call that has waited longest.
  void answer_one() { gate_.cancel_one(); }

  std::vector<std::string> arrived;  // each call's target, as it came
  std::size_t waiting = 0;           // calls not answered yet
  std::deque<http::client_response> answers;

 private:
  boost::asio::steady_timer gate_;
  bool open_ = false;
  std::string host_ = "gated";
};

// MineOS answering slowly does not slow the reports down: the next ones go while the first wait
// for their answers, up to max_in_flight, and each is still sent once.
TEST_F(ReporterTest, ReportsGoOutWhileEarlierOnesAwaitMineOsUpToTheInFlightBound) {
  per_minute_ = 60000;  // turns 1 ms apart: the bound, not the pace, is what stops them
  for (int i = 0; i < 20; ++i) {
    add_finished_job(fmt::format("r-{}", i));
  }
  auto mineos = std::make_unique<gated_mineos>(ioc_.get_executor());
  auto* gate = mineos.get();
  start(std::move(mineos), 8);
  ASSERT_TRUE(run_until([&] { return gate->arrived.size() >= 8; }));
  EXPECT_EQ(gate->arrived.size(), 8u);  // none of them answered: the bound holds the rest
  EXPECT_EQ(gate->waiting, 8u);
  gate->open();
  ASSERT_TRUE(run_until([&] { return all_reported(20); }));
  EXPECT_EQ(gate->arrived.size(), 20u);
  std::set<std::string> targets(gate->arrived.begin(), gate->arrived.end());
  EXPECT_EQ(targets.size(), 20u);  // each report once
}

http::client_response answered(unsigned status) {
  http::client_response r;
  r.status = status;
  r.body = "{}";
  return r;
}

// Reports in flight together are answered after the pause changed: a 2xx to a report sent before
// MineOS refused the key does not end the pause (only the probe can), and a 401 to one sent before
// the reload does not begin a new one.
TEST_F(ReporterTest, AnAnswerToAReportSentBeforeThePauseChangedLeavesItAsItIs) {
  per_minute_ = 60000;
  for (int i = 0; i < 4; ++i) {
    add_finished_job(fmt::format("r-{}", i));
  }
  auto mineos = std::make_unique<gated_mineos>(ioc_.get_executor());
  auto* gate = mineos.get();
  gate->answers = {answered(401), answered(200)};
  start(std::move(mineos), 2);
  ASSERT_TRUE(run_until([&] { return gate->arrived.size() >= 2; }));
  gate->answer_one();  // 401: the key is refused
  ASSERT_TRUE(run_until([&] { return reporter_->paused().has_value(); }));
  gate->answer_one();  // 200, to a report sent before the 401 came
  ASSERT_TRUE(run_until([&] { return gate->waiting == 0; }));
  EXPECT_TRUE(reporter_->paused().has_value());
  EXPECT_EQ(gate->arrived.size(), 2u);  // nothing else goes until the probe
}

TEST_F(ReporterTest, A401ToAReportSentBeforeAReloadDoesNotPauseAgain) {
  per_minute_ = 60000;
  for (int i = 0; i < 4; ++i) {
    add_finished_job(fmt::format("r-{}", i));
  }
  auto mineos = std::make_unique<gated_mineos>(ioc_.get_executor());
  auto* gate = mineos.get();
  gate->answers = {answered(401), answered(401)};  // then 200s
  start(std::move(mineos), 2);
  ASSERT_TRUE(run_until([&] { return gate->arrived.size() >= 2; }));
  gate->answer_one();  // 401: the key is refused
  ASSERT_TRUE(run_until([&] { return reporter_->paused().has_value(); }));
  reporter_->resume();  // the key was fixed and reloaded
  ASSERT_TRUE(run_until([&] { return gate->arrived.size() >= 3; }));
  gate->answer_one();  // 401 to the report sent with the old key
  // Reporting goes on: the place it freed is taken by the next report.
  ASSERT_TRUE(run_until([&] { return gate->arrived.size() >= 4; }));
  EXPECT_FALSE(reporter_->paused().has_value());
  gate->open();
  ASSERT_TRUE(run_until([&] { return all_reported(4); }));
  EXPECT_FALSE(reporter_->paused().has_value());
}

// MineOS's 429 holds every report, not only the one that met it, for its Retry-After; the
// refused report goes again after it.
TEST_F(ReporterTest, A429HoldsEveryReportForItsRetryAfter) {
  per_minute_ = 60000;
  for (int i = 0; i < 5; ++i) {
    add_finished_job(fmt::format("r-{}", i));
  }
  auto mineos = std::make_unique<gated_mineos>(ioc_.get_executor());
  auto* gate = mineos.get();
  http::client_response throttled;
  throttled.status = 429;
  throttled.headers.push_back({"Retry-After", "1"});
  gate->answers.push_back(throttled);
  gate->open();
  start(std::move(mineos), 1);  // one at a time: the 429 is the first answer
  ASSERT_TRUE(run_until([&] { return gate->arrived.size() >= 1; }));
  ioc_.restart();
  ioc_.run_for(300ms);  // well within the Retry-After: time for reports that should not go
  EXPECT_EQ(gate->arrived.size(), 1u);
  clock_->advance(2s);  // the refused report is due again after its Retry-After
  ASSERT_TRUE(run_until([&] { return all_reported(5); }));
  EXPECT_EQ(gate->arrived.size(), 6u);
}

TEST_F(ReporterTest, A401PausesReportingLetsOneProbeThroughPerIntervalAndAReloadResumes) {
  creds_.set(credential::mineos_api_key, "rotated-away");
  for (const char* id : {"r-1", "r-2", "r-3"}) {
    add_finished_job(id);
  }
  start();
  ASSERT_TRUE(run_until([&] { return calls() >= 1; }));
  EXPECT_EQ(calls(), 1u);  // the other reports wait: nothing is wrong with them
  EXPECT_THAT(reporter_->paused().value_or(""), HasSubstr("mineos_api_key"));
  EXPECT_THAT((**store_->find("r-1")).report_error.value_or(""), HasSubstr("401"));
  EXPECT_EQ((**store_->find("r-1")).report_attempts, 0u);  // a pause uses no attempt

  clock_->advance(59s);
  reporter_->notify();
  ioc_.restart();
  ioc_.run_for(std::chrono::milliseconds(100));  // time for a report it should not send
  EXPECT_EQ(calls(), 1u);
  clock_->advance(1s);  // pause_probe later: one report is let through
  reporter_->notify();
  ASSERT_TRUE(run_until([&] { return calls() >= 2; }));
  EXPECT_EQ(calls(), 2u);
  EXPECT_EQ(sim_->reports()[1]["status"], 401);

  creds_.set(credential::mineos_api_key, "mineos-key-SECRET");
  reporter_->resume();  // a reload: no wait for the next probe
  ASSERT_TRUE(run_until([&] { return reported("r-1") && reported("r-2") && reported("r-3"); }));
  EXPECT_EQ(calls(), 5u);
  EXPECT_FALSE(reporter_->paused());
}

TEST_F(ReporterTest, AProbeThatSucceedsEndsThePauseWithoutAReload) {
  creds_.set(credential::mineos_api_key, "wrong");
  add_finished_job("r-1");
  add_finished_job("r-2");
  start();
  ASSERT_TRUE(run_until([&] { return calls() >= 1; }));
  ASSERT_TRUE(reporter_->paused());
  creds_.set(credential::mineos_api_key, "mineos-key-SECRET");  // fixed where it is read
  clock_->advance(60s);
  reporter_->notify();
  ASSERT_TRUE(run_until([&] { return reported("r-1") && reported("r-2"); }));
  EXPECT_FALSE(reporter_->paused());
}

}  // namespace
}  // namespace dsr::mineos
