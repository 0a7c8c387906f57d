#include "dsr/ops/admin_api.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/log.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/kept_exports.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <fstream>
#include <sstream>

namespace dsr::ops {
namespace {

namespace asio = boost::asio;

using http::route_scope;

http::response not_yet(std::string_view what) {
  return http::problem(
      501, fmt::format("{} is not available yet in this version of dsr-connector", what));
}

http::response unauthorized() {
  return http::problem(401, "this endpoint needs Authorization: Bearer <admin_token>",
                       {{"WWW-Authenticate", "Bearer"}});
}

http::response store_down(const failure& f) {
  spdlog::error("admin: job store error: {}", f.detail);
  return http::problem(503, "the job store cannot be read right now; retry later",
                       {{"Retry-After", "5"}});
}

constexpr std::string_view session_cookie = "dsr_session";
constexpr std::size_t page_rows = 20;

// Every HTML answer: never cached, never framed, no script, forms post only here.
http::response html(unsigned status, std::string body, std::vector<http::header_field> extra = {}) {
  http::response r{status, "text/html; charset=utf-8", std::move(body), {}};
  r.headers = {
      {"Cache-Control", "no-store"},
      {"Content-Security-Policy",
       "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors "
       "'none'; base-uri 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
  };
  r.headers.insert(r.headers.end(), extra.begin(), extra.end());
  return r;
}

http::response see_other(std::string location, std::vector<http::header_field> extra = {}) {
  auto r = html(303, "", std::move(extra));
  r.headers.push_back({"Location", std::move(location)});
  return r;
}

http::response sign_in(std::string_view message = {}) {
  return html(401, render_login_page(message), {{"WWW-Authenticate", "Bearer"}});
}

std::string_view result_word(operator_result r) {
  switch (r) {
    case operator_result::requeued:
      return "requeued";
    case operator_result::report_resent:
      return "report_resent";
    case operator_result::cancelled:
      return "cancelled";
    case operator_result::not_found:
      return "not_found";
    case operator_result::conflict:
      return "conflict";
  }
  return "";
}

// The line shown after a retry from the page (the redirect carries the id in hex and the result).
std::string retry_notice(const http::request& req) {
  const auto hex = req.query_param("retried");
  const auto id = hex ? crypto::from_hex(*hex) : std::nullopt;
  if (!id) {
    return "";
  }
  const auto result = req.query_param("result").value_or("");
  if (result == "requeued") {
    return fmt::format("Retry of {}: queued again.", *id);
  }
  if (result == "report_resent") {
    return fmt::format("Retry of {}: its report to MineOS is due again.", *id);
  }
  if (result == "not_found") {
    return fmt::format("No job has request id {}.", *id);
  }
  return fmt::format(
      "{} was not retried: only a failed job, or a finished job whose report was not "
      "acknowledged, can be retried.",
      *id);
}

// One field of a form body, or nullopt (absent, or the body is not a form).
std::optional<std::string> form_field(std::string_view body, const std::string& name) {
  const auto form = parse_form(body);
  if (!form) {
    return std::nullopt;
  }
  const auto it = form->find(name);
  if (it == form->end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace

admin_api::admin_api(async_store& store, const credential_store& credentials, admin_options options)
    : store_(store), credentials_(credentials), options_(options), sessions_(options_.time) {}

bool admin_api::authorized(const http::request& req) const {
  const auto header = req.header("Authorization");
  const auto token = credentials_.find(credential::admin_token);
  if (!header || !token || token->empty()) {
    return false;
  }
  constexpr std::string_view scheme = "Bearer ";
  std::string_view h = *header;
  if (h.size() <= scheme.size() ||
      !std::equal(scheme.begin(), scheme.end(), h.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
      })) {
    return false;
  }
  return crypto::constant_time_equal(h.substr(scheme.size()), token->reveal());
}

void admin_api::add_routes(http::router& r) {
  r.add("GET", "/healthz", route_scope::both,
        [](http::request&, const http::route_params&, http::responder done) {
          done(http::json_response(200, {{"status", "ok"}}));
        });
  r.add("GET", "/readyz", route_scope::operator_api,
        [this](http::request&, const http::route_params&, http::responder done) {
          ready(std::move(done));
        });
  r.add("GET", "/metrics", route_scope::operator_api,
        [this](http::request&, const http::route_params&, http::responder done) {
          serve_metrics(std::move(done));
        });
  const auto guarded = [this](auto fn) {
    return [this, fn](http::request& req, const http::route_params& p, http::responder done) {
      if (!authorized(req)) {
        http::refuse(
            options_.throttle, req.remote,
            fmt::format("admin: refused {} {} without a valid admin token", req.method, req.path()),
            unauthorized(), std::move(done));
        return;
      }
      fn(req, p, std::move(done));
    };
  };
  r.add("GET", "/", route_scope::operator_api,
        [this](http::request& req, const http::route_params&, http::responder done) {
          status(req, std::move(done));
        });
  r.add("POST", "/login", route_scope::operator_api,
        [this](http::request& req, const http::route_params&, http::responder done) {
          login(req, std::move(done));
        });
  r.add("POST", "/logout", route_scope::operator_api,
        [this](http::request& req, const http::route_params&, http::responder done) {
          logout(req, std::move(done));
        });
  r.add("POST", "/status/retry/{id}", route_scope::operator_api,
        [this](http::request& req, const http::route_params& p, http::responder done) {
          retry_from_page(req, p.at("id"), std::move(done));
        });
  r.add("GET", "/v1/requests", route_scope::operator_api,
        guarded([this](http::request& req, const http::route_params&, http::responder done) {
          list_jobs(req, std::move(done));
        }));
  r.add("GET", "/v1/requests/{id}", route_scope::operator_api,
        guarded([this](http::request&, const http::route_params& p, http::responder done) {
          get_job(p.at("id"), std::move(done));
        }));
  r.add("GET", "/v1/requests/{id}/data", route_scope::operator_api,
        guarded([this](http::request&, const http::route_params& p, http::responder done) {
          data(p.at("id"), std::move(done));
        }));
  r.add("POST", "/v1/requests/{id}/retry", route_scope::operator_api,
        guarded([this](http::request&, const http::route_params& p, http::responder done) {
          act(p.at("id"), false, std::move(done));
        }));
  r.add("POST", "/v1/requests/{id}/cancel", route_scope::operator_api,
        guarded([this](http::request&, const http::route_params& p, http::responder done) {
          act(p.at("id"), true, std::move(done));
        }));
}

void admin_api::ready(http::responder done) {
  std::string reason;
  if (!store_.writable()) {
    const auto why = store_.last_error();
    reason = why.empty() ? "the job store cannot commit" : "the job store cannot commit: " + why;
  }
  for (const auto c : {credential::exponea_api_key, credential::exponea_api_secret,
                       credential::exponea_project_token, credential::exponea_api_token,
                       credential::mineos_webhook_secret}) {
    if (reason.empty() && !credentials_.find(c)) {
      reason = fmt::format("credential {} is not loaded", name(c));
    }
  }
  if (reason.empty() && options_.cluster_problem) {
    if (const auto why = options_.cluster_problem()) {
      reason = *why;
    }
  }
  if (reason.empty() && options_.paused) {
    if (const auto why = options_.paused()) {
      reason = fmt::format("dispatch paused: {}; fix the value and reload (SIGHUP)", *why);
    }
  }
  if (reason.empty() && options_.reporting_paused) {
    if (const auto why = options_.reporting_paused()) {
      reason = fmt::format(
          "reporting to MineOS paused: {}; fix mineos_api_key and reload "
          "(SIGHUP); jobs go on",
          *why);
    }
  }
  if (reason.empty()) {
    done(http::json_response(200, {{"status", "ready"}}));
  } else {
    done(http::json_response(503, {{"status", "not ready"}, {"reason", reason}}));
  }
}

// The caller keeps request_id alive until this returns.
asio::awaitable<result<operator_result>> admin_api::apply(std::string_view request_id,
                                                          bool cancelling) {
  const auto now = options_.time->now();
  // g++ 12 miscompiles co_await in a conditional expression: plain if/else.
  result<operator_result> r = make_failure(errc::store_unavailable, "not run");
  if (cancelling) {
    r = co_await store_.cancel(request_id, now);
  } else {
    r = co_await store_.retry(request_id, now);
  }
  if (r && (*r == operator_result::requeued || *r == operator_result::report_resent ||
            *r == operator_result::cancelled)) {
    spdlog::info("admin: [R {}] {}", request_id, result_word(*r));
    if (options_.on_change) {
      options_.on_change();
    }
  }
  co_return r;
}

void admin_api::act(const std::string& request_id, bool cancelling, http::responder done) {
  spawn(act_on(request_id, cancelling, std::move(done)));
}

asio::awaitable<void> admin_api::act_on(std::string request_id, bool cancelling,
                                        http::responder done) {
  const auto r = co_await apply(request_id, cancelling);
  if (!r) {
    done(store_down(r.error()));
    co_return;
  }
  const auto answer = [&](std::string_view status) {
    done(http::json_response(202, {{"requestId", request_id}, {"status", status}}));
  };
  switch (*r) {
    case operator_result::requeued:
      answer("requeued");
      co_return;
    case operator_result::report_resent:
      answer("report resent");
      co_return;
    case operator_result::cancelled:
      answer("cancelled");
      co_return;
    case operator_result::not_found:
      done(http::problem(404, "no job has this request id"));
      co_return;
    case operator_result::conflict:
      done(http::problem(409, cancelling ? "only a queued or retrying job can be cancelled"
                                         : "only a failed job, or a finished job whose report "
                                           "was not acknowledged, can be retried"));
      co_return;
  }
}

std::optional<std::string> admin_api::session_of(const http::request& req) {
  const auto header = req.header("Cookie");
  const auto token = credentials_.find(credential::admin_token);
  if (!header || !token || token->empty()) {
    return std::nullopt;
  }
  const auto id = cookie_value(*header, session_cookie);
  if (!id || id->empty()) {
    return std::nullopt;
  }
  return sessions_.check(*id, token->reveal());
}

void admin_api::status(const http::request& req, http::responder done) {
  status_view v;
  if (!authorized(req)) {
    auto csrf = session_of(req);
    if (!csrf) {
      done(sign_in());
      return;
    }
    v.csrf = std::move(*csrf);
  }
  v.now = options_.time->now();
  if (options_.paused) {
    v.paused = options_.paused();
  }
  if (options_.counters != nullptr) {
    v.figures = options_.counters->summarize();
  }
  v.deadlines = {options_.deadline_days, options_.deadline_warning_days};
  v.notice = retry_notice(req);
  spawn(show_status(std::move(v), std::move(done)));
}

asio::awaitable<void> admin_api::show_status(status_view v, http::responder done) {
  const std::chrono::milliseconds deadline = std::chrono::days(v.deadlines.days);
  const std::chrono::milliseconds warning = std::chrono::days(v.deadlines.warning_days);
  auto stats = co_await store_.stats(v.now, deadline, warning);
  if (!stats) {
    done(store_down(stats.error()));
    co_return;
  }
  auto at_risk = co_await store_.at_risk(v.now, deadline, warning, page_rows);
  if (!at_risk) {
    done(store_down(at_risk.error()));
    co_return;
  }
  const auto failed_state = job_state::failed;
  auto failed = co_await store_.list(failed_state, page_rows);
  if (!failed) {
    done(store_down(failed.error()));
    co_return;
  }
  v.jobs = *stats;
  v.at_risk = std::move(*at_risk);
  v.failed = std::move(*failed);
  done(html(200, render_status_page(v)));
}

void admin_api::login(const http::request& req, http::responder done) {
  const auto presented = form_field(req.body, "token");
  const auto token = credentials_.find(credential::admin_token);
  if (presented && token && !token->empty() &&
      crypto::constant_time_equal(*presented, token->reveal())) {
    const auto s = sessions_.open(token->reveal());
    spdlog::info("admin: status page sign-in from {}", http::address_of(req.remote));
    // Over TLS the cookie is Secure: a browser never sends it over plain HTTP.
    done(see_other("/",
                   {{"Set-Cookie", fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict; "
                                               "Max-Age=43200{}",
                                               session_cookie, s.id, req.tls ? "; Secure" : "")}}));
    return;
  }
  http::refuse(options_.throttle, req.remote,
               "admin: refused a status page sign-in without the admin token",
               sign_in("That is not the admin token."), std::move(done));
}

void admin_api::logout(const http::request& req, http::responder done) {
  if (const auto header = req.header("Cookie")) {
    if (const auto id = cookie_value(*header, session_cookie)) {
      sessions_.close(*id);
    }
  }
  done(see_other("/", {{"Set-Cookie", fmt::format("{}=; Path=/; HttpOnly; SameSite=Strict; "
                                                  "Max-Age=0{}",
                                                  session_cookie, req.tls ? "; Secure" : "")}}));
}

void admin_api::retry_from_page(const http::request& req, const std::string& hex_id,
                                http::responder done) {
  if (!authorized(req)) {
    const auto csrf = session_of(req);
    if (!csrf) {
      done(sign_in("Your session has ended; sign in again."));
      return;
    }
    const auto sent = form_field(req.body, "csrf");
    if (!sent || !crypto::constant_time_equal(*sent, *csrf)) {
      spdlog::warn("admin: refused a retry from the status page without its form token ({})",
                   http::address_of(req.remote));
      done(html(403, render_login_page("That form is stale or was not sent by the status page; "
                                       "reload the status page and try again.")));
      return;
    }
  }
  const auto id = crypto::from_hex(hex_id);
  if (!id || id->empty()) {
    done(http::problem(404, "no job has this request id"));
    return;
  }
  spawn(retry_on_page(*id, hex_id, std::move(done)));
}

asio::awaitable<void> admin_api::retry_on_page(std::string request_id, std::string hex_id,
                                               http::responder done) {
  const auto r = co_await apply(request_id, false);
  if (!r) {
    done(store_down(r.error()));
    co_return;
  }
  done(see_other(fmt::format("/?retried={}&result={}", hex_id, result_word(*r))));
}

void admin_api::data(const std::string& request_id, http::responder done) {
  spawn(send_data(request_id, std::move(done)));
}

asio::awaitable<void> admin_api::send_data(std::string request_id, http::responder done) {
  auto found = co_await store_.find(request_id);
  if (!found) {
    done(store_down(found.error()));
    co_return;
  }
  result<std::shared_ptr<http::body_source>> source =
      make_failure(errc::not_found, "not a copy job");
  if (*found && (*found)->op == operation::copy) {
    const auto id = (*found)->id;
    auto file = co_await locate_export(store_, options_.export_dir, id, options_.exports_in_store);
    if (!file) {
      done(store_down(file.error()));
      co_return;
    }
    source = http::sealed_file_source(file->path, options_.export_keys, (*found)->request_id);
    drop_scratch(*file);
  }
  if (!source) {
    done(http::problem(404,
                       "no export is kept for this request (only completed copy jobs "
                       "whose export was not delivered to MineOS have one)"));
    co_return;
  }
  http::response res{200, "application/json", "", {}, std::move(*source)};
  done(std::move(res));
}

void admin_api::serve_metrics(http::responder done) {
  if (options_.counters == nullptr) {
    done(not_yet("/metrics"));
    return;
  }
  metrics::gauges g;
  g.now = options_.time->now();
  g.dispatch_paused = options_.paused && options_.paused().has_value();
  g.workers = options_.workers ? options_.workers() : 1;
  g.schema = options_.schema;
  spawn(send_metrics(g, std::move(done)));
}

asio::awaitable<void> admin_api::send_metrics(metrics::gauges g, http::responder done) {
  const std::chrono::milliseconds deadline = std::chrono::days(options_.deadline_days);
  const std::chrono::milliseconds warning = std::chrono::days(options_.deadline_warning_days);
  auto stats = co_await store_.stats(g.now, deadline, warning);
  if (!stats) {
    done(store_down(stats.error()));
    co_return;
  }
  g.jobs = *stats;
  done(http::response{
      200, "text/plain; version=0.0.4; charset=utf-8", options_.counters->render(g), {}});
}

void admin_api::get_job(const std::string& request_id, http::responder done) {
  spawn(send_job(request_id, std::move(done)));
}

asio::awaitable<void> admin_api::send_job(std::string request_id, http::responder done) {
  const deadline_policy d{options_.deadline_days, options_.deadline_warning_days};
  const auto now = options_.time->now();
  auto found = co_await store_.find(request_id);
  if (!found) {
    done(store_down(found.error()));
  } else if (!*found) {
    done(http::problem(404, "no job has this request id"));
  } else {
    done(http::json_response(200, job_view(**found, d, now)));
  }
}

void admin_api::list_jobs(const http::request& req, http::responder done) {
  std::optional<job_state> state;
  if (auto s = req.query_param("state"); s && !s->empty()) {
    state = parse_job_state(*s);
    if (!state) {
      done(http::problem(400,
                         "state must be one of queued, running, retrying, completed, "
                         "user_not_found, failed, cancelled"));
      return;
    }
  }
  std::size_t limit = 100;
  if (auto l = req.query_param("limit"); l && !l->empty()) {
    const auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), limit);
    if (ec != std::errc{} || p != l->data() + l->size() || limit < 1 || limit > 1000) {
      done(http::problem(400, "limit must be a whole number from 1 to 1000"));
      return;
    }
  }
  spawn(send_jobs(state, limit, std::move(done)));
}

asio::awaitable<void> admin_api::send_jobs(std::optional<job_state> state, std::size_t limit,
                                           http::responder done) {
  const deadline_policy d{options_.deadline_days, options_.deadline_warning_days};
  const auto now = options_.time->now();
  auto jobs = co_await store_.list(state, limit);
  if (!jobs) {
    done(store_down(jobs.error()));
    co_return;
  }
  nlohmann::json list = nlohmann::json::array();
  for (const auto& j : *jobs) {
    list.push_back(job_view(j, d, now));
  }
  done(http::json_response(200, {{"requests", std::move(list)}}));
}

void admin_api::spawn(asio::awaitable<void> work) {
  asio::co_spawn(store_.executor(), std::move(work), log_if_thrown("admin", "an operator request"));
}

}  // namespace dsr::ops
