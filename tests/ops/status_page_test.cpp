#include "dsr/ops/status_page.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/ops/admin_api.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_credentials.hpp"
#include "fakes/inline_queue.hpp"
#include "support/temp_dir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

namespace dsr::ops {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

const time_point t0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 29}};

// data-figure="what" data-value="v" → v, for every figure on a page.
std::map<std::string, double> figures_of(const std::string& page) {
  std::map<std::string, double> out;
  const std::regex re(R"re(data-figure="([^"]+)" data-value="([^"]+)")re");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), re); it != std::sregex_iterator();
       ++it) {
    out[(*it)[1]] = std::stod((*it)[2]);
  }
  return out;
}

job failed_job(std::string request_id) {
  job j;
  j.request_id = std::move(request_id);
  j.state = job_state::failed;
  j.outcome = job_outcome::failed;
  j.outcome_message = "Exponea answered 400: <bad> property";
  j.attempts = 3;
  j.received_at = t0 - 1h;
  j.updated_at = t0 - 10min;
  return j;
}

TEST(StatusPageHtml, ShowsTheFiguresAndEscapesEverythingFromAJob) {
  status_view v;
  v.now = t0;
  v.paused = "Exponea rejected api_key (401) <now>";
  v.jobs.by_state[static_cast<std::size_t>(job_state::queued)] = 12;
  v.jobs.by_state[static_cast<std::size_t>(job_state::failed)] = 1;
  v.jobs.oldest_waiting = t0 - 125s;
  v.jobs.overdue = 1;
  v.jobs.due_soon = 4;
  metrics::summary f;
  f.exponea.push_back({"anonymize", 10, 2, 0.125, 0.25});
  f.retries["429"] = 3;
  f.reports["acknowledged"] = 7;
  f.accepted_last_hour = 9;
  f.finished_last_hour["Completed"] = 6;
  v.figures = f;
  auto late = failed_job("<script>alert(1)</script>");
  late.created_at = t0 - 31 * 24h;
  v.at_risk = {late};
  v.failed = {late};
  v.csrf = "c5rf";

  const auto page = render_status_page(v);
  EXPECT_THAT(page, Not(HasSubstr("<script>")));
  EXPECT_THAT(page, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(page, HasSubstr("&lt;bad&gt; property"));
  EXPECT_THAT(page, HasSubstr("Dispatch is paused: Exponea rejected api_key (401) &lt;now&gt;"));
  EXPECT_THAT(page, HasSubstr("2 min 5 s"));       // the oldest waiting job
  EXPECT_THAT(page, HasSubstr("overdue by 1 d"));  // created 31 days ago, due after 30
  // The retry button posts to the job's hex id with the session's form token.
  EXPECT_THAT(page, HasSubstr(fmt::format("action=\"/status/retry/{}\"",
                                          crypto::to_hex("<script>alert(1)</script>"))));
  EXPECT_THAT(page, HasSubstr("name=\"csrf\" value=\"c5rf\""));

  const auto shown = figures_of(page);
  EXPECT_EQ(shown.at("jobs:queued"), 12);
  EXPECT_EQ(shown.at("jobs:failed"), 1);
  EXPECT_EQ(shown.at("jobs:cancelled"), 0);
  EXPECT_EQ(shown.at("overdue"), 1);
  EXPECT_EQ(shown.at("due_soon"), 4);
  EXPECT_EQ(shown.at("paused"), 1);
  EXPECT_EQ(shown.at("exponea_calls:anonymize"), 10);
  EXPECT_EQ(shown.at("exponea_errors:anonymize"), 2);
  EXPECT_EQ(shown.at("exponea_mean_seconds:anonymize"), 0.125);
  EXPECT_EQ(shown.at("retries:429"), 3);
  EXPECT_EQ(shown.at("reports:acknowledged"), 7);
}

TEST(StatusPageHtml, RunningDaemonWithNothingToDoSaysSo) {
  status_view v;
  v.now = t0;
  const auto page = render_status_page(v);
  EXPECT_EQ(figures_of(page).at("paused"), 0);
  EXPECT_THAT(page, HasSubstr("Dispatch is running"));
  EXPECT_THAT(page, HasSubstr("No failed job."));
  EXPECT_THAT(page, HasSubstr("No unfinished job is near its due date."));
  EXPECT_THAT(page, HasSubstr("This daemon keeps no metrics."));
}

TEST(Sessions, LiveUntilTheirLifetimeEndsTheTokenChangesOrTheyAreClosed) {
  auto time = std::make_shared<test::fake_clock>(t0);
  sessions s(time, {.lifetime = 60min, .max_sessions = 2});
  const auto a = s.open("token-1");
  EXPECT_EQ(a.id.size(), 64u);  // 256 random bits in hex
  EXPECT_NE(a.id, a.csrf);
  EXPECT_EQ(s.check(a.id, "token-1"), a.csrf);
  EXPECT_EQ(s.check(a.id + "0", "token-1"), std::nullopt);
  EXPECT_EQ(s.check("", "token-1"), std::nullopt);
  time->advance(59min);
  EXPECT_EQ(s.check(a.id, "token-1"), a.csrf);
  time->advance(1min);
  EXPECT_EQ(s.check(a.id, "token-1"), std::nullopt);

  const auto b = s.open("token-1");
  EXPECT_EQ(s.check(b.id, "token-2"), std::nullopt);  // a rotated token ends it...
  EXPECT_EQ(s.check(b.id, "token-1"), std::nullopt);  // ...for good
  const auto c = s.open("token-1");
  s.close(c.id);
  EXPECT_EQ(s.check(c.id, "token-1"), std::nullopt);

  // Beyond max_sessions the one closest to its end goes.
  const auto d = s.open("t");
  time->advance(1min);
  const auto e = s.open("t");
  const auto f = s.open("t");
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.check(d.id, "t"), std::nullopt);
  EXPECT_TRUE(s.check(e.id, "t"));
  EXPECT_TRUE(s.check(f.id, "t"));
}

TEST(StatusPageForms, CookiesAndFormBodiesAreRead) {
  EXPECT_EQ(cookie_value("a=1; dsr_session=abc; b=2", "dsr_session"), "abc");
  EXPECT_EQ(cookie_value("dsr_session=abc", "dsr_session"), "abc");
  EXPECT_EQ(cookie_value("xdsr_session=abc", "dsr_session"), std::nullopt);
  EXPECT_EQ(cookie_value("", "dsr_session"), std::nullopt);
  const auto form = parse_form("token=a%2Bb+c&csrf=x");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->at("token"), "a+b c");
  EXPECT_EQ(form->at("csrf"), "x");
  EXPECT_EQ(parse_form("token=%zz"), std::nullopt);
}

// The page through the admin API, over a real (in-memory) store.
class StatusPageTest : public ::testing::Test {
 protected:
  StatusPageTest() {
    for (const auto c : all_credentials) {
      credentials_.set(c, std::string(name(c)) + "-value");
    }
    credentials_.set(credential::admin_token, "admin-secret");
    store_ = std::move(*open_sqlite_store({":memory:"}));
    queue_ = std::make_unique<test::inline_store>(*store_);
    admin_options o{30, exports_.path(), [this] { ++changes_; }, time_};
    o.counters = &counters_;
    o.paused = [this] { return paused_; };
    o.throttle = &throttle_;
    api_ = std::make_unique<admin_api>(queue_->db, credentials_, o);
    api_->add_routes(router_);
    for (const auto& [id, created] :
         {std::pair{"req-ok", t0}, std::pair{"req-late", t0 - 40 * 24h}}) {
      new_job j;
      j.request_id = id;
      j.trace_id = std::string("trace-") + id;
      j.received_at = t0;
      j.created_at = created;
      j.subject = "jane@example.com";
      store_->insert(std::span<const new_job>(&j, 1), 100);
    }
    // req-late fails.
    auto j = **store_->claim_next("w", t0, 1min);
    while (j.request_id != "req-late") {
      store_->release(j.id, "w", {job_state::queued, 0, t0 + 1h, job_outcome::none, ""}, t0);
      j = **store_->claim_next("w", t0, 1min);
    }
    store_->release(j.id, "w",
                    {job_state::failed, 3, t0, job_outcome::failed, "Exponea answered 400"}, t0);
  }

  http::response send(std::string method, std::string target, std::string body = {},
                      std::vector<http::header_field> headers = {}, bool tls = false) {
    http::request req;
    req.tls = tls;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    req.headers = std::move(headers);
    req.remote = "192.0.2.7:40000";
    http::response out;
    router_.handle(std::move(req), [&](http::response r) { out = std::move(r); });
    queue_->settle();
    return out;
  }
  static std::optional<std::string> header(const http::response& r, std::string_view name) {
    for (const auto& h : r.headers) {
      if (h.name == name) {
        return h.value;
      }
    }
    return std::nullopt;
  }
  // Signs in and returns the Cookie header to send.
  std::string sign_in() {
    const auto r = send("POST", "/login", "token=admin-secret",
                        {{"Content-Type", "application/x-www-form-urlencoded"}});
    EXPECT_EQ(r.status, 303u);
    const auto cookie = header(r, "Set-Cookie").value_or("");
    return cookie.substr(0, cookie.find(';'));
  }
  std::string csrf_of(const std::string& page) {
    std::smatch m;
    EXPECT_TRUE(std::regex_search(page, m, std::regex(R"re(name="csrf" value="([0-9a-f]+)")re")));
    return m.size() > 1 ? m[1].str() : "";
  }
  job_state state_of(const std::string& id) { return (**store_->find(id)).state; }

  std::shared_ptr<test::fake_clock> time_ = std::make_shared<test::fake_clock>(t0);
  std::vector<std::chrono::milliseconds> delays_;
  http::auth_throttle throttle_{time_,
                                [this](std::chrono::milliseconds d, std::function<void()> fn) {
                                  delays_.push_back(d);
                                  fn();
                                },
                                {.free_failures = 1}};
  metrics counters_{time_};
  std::optional<std::string> paused_;
  test::temp_dir exports_;
  int changes_ = 0;
  test::fake_credentials credentials_;
  std::unique_ptr<job_store> store_;
  std::unique_ptr<test::inline_store> queue_;
  std::unique_ptr<admin_api> api_;
  http::router router_;
};

TEST_F(StatusPageTest, WithoutCredentialsItIsTheSignInFormAndNothingElse) {
  for (const auto& headers : std::vector<std::vector<http::header_field>>{
           {}, {{"Cookie", "dsr_session=0123"}}, {{"Authorization", "Bearer wrong"}}}) {
    const auto r = send("GET", "/", "", headers);
    EXPECT_EQ(r.status, 401u);
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_THAT(r.body, HasSubstr("action=\"/login\""));
    EXPECT_THAT(r.body, Not(HasSubstr("req-late")));
    EXPECT_THAT(r.body, Not(HasSubstr("data-figure")));
  }
}

TEST_F(StatusPageTest, BearerHeaderOrTheSignInCookieOpensIt) {
  auto r = send("GET", "/", "", {{"Authorization", "Bearer admin-secret"}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_THAT(r.body, HasSubstr("req-late"));

  r = send("POST", "/login", "token=admin-secret");
  ASSERT_EQ(r.status, 303u);
  EXPECT_EQ(header(r, "Location"), "/");
  const auto cookie = header(r, "Set-Cookie").value_or("");
  EXPECT_THAT(cookie, HasSubstr("HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("SameSite=Strict"));
  EXPECT_THAT(cookie, Not(HasSubstr("admin-secret")));
  r = send("GET", "/", "", {{"Cookie", cookie.substr(0, cookie.find(';'))}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_THAT(header(r, "Content-Security-Policy").value_or(""), HasSubstr("default-src 'none'"));
  EXPECT_EQ(header(r, "Cache-Control"), "no-store");
  EXPECT_EQ(delays_.size(), 0u);
}

TEST_F(StatusPageTest, TheSessionCookieIsSecureWhenServedOverTls) {
  const auto plain = header(send("POST", "/login", "token=admin-secret"), "Set-Cookie");
  EXPECT_THAT(plain.value_or(""), Not(HasSubstr("Secure")));
  const auto over_tls =
      header(send("POST", "/login", "token=admin-secret", {}, true), "Set-Cookie");
  EXPECT_THAT(over_tls.value_or(""), HasSubstr("; Secure"));
  const auto out = header(send("POST", "/logout", "", {}, true), "Set-Cookie");
  EXPECT_THAT(out.value_or(""), HasSubstr("; Secure"));
}

TEST_F(StatusPageTest, AWrongTokenIsRefusedAndSlowedLikeAnyOther) {
  for (int i = 0; i < 3; ++i) {
    const auto r = send("POST", "/login", "token=admin-secrets");
    EXPECT_EQ(r.status, 401u);
    EXPECT_FALSE(header(r, "Set-Cookie"));
    EXPECT_THAT(r.body, HasSubstr("That is not the admin token."));
  }
  EXPECT_EQ(send("POST", "/login", "").status, 401u);
  EXPECT_EQ(throttle_.failures_total(), 4u);
  EXPECT_EQ(delays_.size(), 3u);  // all but the first free failure waited
}

TEST_F(StatusPageTest, FiguresComeFromTheStoreTheMetricsAndThePause) {
  counters_.webhook("delete", 202);
  counters_.exponea_call("anonymize", 200, 20ms);
  counters_.exponea_call("anonymize", 500, 40ms);
  counters_.job_finished("delete", "Completed", 5s);
  paused_ = "Exponea rejected api_key";
  const auto page = send("GET", "/", "", {{"Cookie", sign_in()}}).body;
  const auto shown = figures_of(page);
  EXPECT_EQ(shown.at("jobs:queued"), 1);
  EXPECT_EQ(shown.at("jobs:failed"), 1);
  EXPECT_EQ(shown.at("overdue"), 1);  // req-late: created 40 days ago
  EXPECT_EQ(shown.at("due_soon"), 0);
  EXPECT_EQ(shown.at("paused"), 1);
  EXPECT_EQ(shown.at("exponea_calls:anonymize"), 2);
  EXPECT_EQ(shown.at("exponea_errors:anonymize"), 1);
  EXPECT_DOUBLE_EQ(shown.at("exponea_mean_seconds:anonymize"), 0.03);
  EXPECT_THAT(page, HasSubstr("Exponea rejected api_key"));
  EXPECT_THAT(page, HasSubstr("overdue by 10 d"));
  EXPECT_THAT(page, HasSubstr("<span class=\"big\">1</span>requests accepted"));
}

TEST_F(StatusPageTest, RetryButtonRequeuesAFailedJobOnlyWithTheSessionsFormToken) {
  const auto cookie = sign_in();
  const auto page = send("GET", "/", "", {{"Cookie", cookie}}).body;
  const auto csrf = csrf_of(page);
  const auto action = "/status/retry/" + crypto::to_hex("req-late");
  ASSERT_THAT(page, HasSubstr(action));

  // Another site's form (no token, or a wrong one) and a request without the cookie do nothing.
  EXPECT_EQ(send("POST", action, "", {{"Cookie", cookie}}).status, 403u);
  EXPECT_EQ(send("POST", action, "csrf=" + std::string(64, '0'), {{"Cookie", cookie}}).status,
            403u);
  EXPECT_EQ(send("POST", action, "csrf=" + csrf).status, 401u);
  EXPECT_EQ(state_of("req-late"), job_state::failed);
  EXPECT_EQ(changes_, 0);

  auto r = send("POST", action, "csrf=" + csrf, {{"Cookie", cookie}});
  ASSERT_EQ(r.status, 303u);
  EXPECT_EQ(state_of("req-late"), job_state::queued);
  EXPECT_EQ(changes_, 1);  // the dispatcher is woken
  const auto location = header(r, "Location").value_or("");
  EXPECT_THAT(send("GET", location, "", {{"Cookie", cookie}}).body,
              HasSubstr("Retry of req-late: queued again."));

  // Again: the job is no longer failed.
  r = send("POST", action, "csrf=" + csrf, {{"Cookie", cookie}});
  EXPECT_THAT(send("GET", header(r, "Location").value_or(""), "", {{"Cookie", cookie}}).body,
              HasSubstr("req-late was not retried"));
}

TEST_F(StatusPageTest, SessionsEndWithSignOutRotationOrTwelveHours) {
  auto cookie = sign_in();
  EXPECT_EQ(send("GET", "/", "", {{"Cookie", cookie}}).status, 200u);
  const auto out = send("POST", "/logout", "", {{"Cookie", cookie}});
  EXPECT_EQ(out.status, 303u);
  EXPECT_THAT(header(out, "Set-Cookie").value_or(""), HasSubstr("Max-Age=0"));
  EXPECT_EQ(send("GET", "/", "", {{"Cookie", cookie}}).status, 401u);

  cookie = sign_in();
  time_->advance(12h - 1s);
  EXPECT_EQ(send("GET", "/", "", {{"Cookie", cookie}}).status, 200u);
  time_->advance(1s);
  EXPECT_EQ(send("GET", "/", "", {{"Cookie", cookie}}).status, 401u);

  cookie = sign_in();
  credentials_.set(credential::admin_token, "rotated-secret");
  EXPECT_EQ(send("GET", "/", "", {{"Cookie", cookie}}).status, 401u);
}

}  // namespace
}  // namespace dsr::ops
