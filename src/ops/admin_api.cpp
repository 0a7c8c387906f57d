#include "dsr/ops/admin_api.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/jobs/exports.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <fstream>
#include <sstream>

namespace dsr::ops {
namespace {

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

}  // namespace

admin_api::admin_api(job_queue& queue, const credential_store& credentials, admin_options options)
    : queue_(queue), credentials_(credentials), options_(options) {}

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
  if (!queue_.writable()) {
    reason = "the job store cannot commit";
  }
  for (const auto c : {credential::exponea_api_key, credential::exponea_api_secret,
                       credential::exponea_project_token, credential::exponea_api_token,
                       credential::mineos_webhook_secret}) {
    if (reason.empty() && !credentials_.find(c)) {
      reason = fmt::format("credential {} is not loaded", name(c));
    }
  }
  if (reason.empty() && options_.paused) {
    if (const auto why = options_.paused()) {
      reason = fmt::format("dispatch paused: {}; fix the value and reload (SIGHUP)", *why);
    }
  }
  if (reason.empty()) {
    done(http::json_response(200, {{"status", "ready"}}));
  } else {
    done(http::json_response(503, {{"status", "not ready"}, {"reason", reason}}));
  }
}

void admin_api::act(const std::string& request_id, bool cancelling, http::responder done) {
  queue_.run([this, request_id, cancelling, done = std::move(done)](job_store& store) {
    const auto now = options_.time->now();
    auto r = cancelling ? store.cancel(request_id, now) : store.retry(request_id, now);
    if (!r) {
      done(store_down(r.error()));
      return;
    }
    const auto answer = [&](std::string_view status) {
      spdlog::info("admin: [R {}] {}", request_id, status);
      if (options_.on_change) {
        options_.on_change();
      }
      done(http::json_response(202, {{"requestId", request_id}, {"status", status}}));
    };
    switch (*r) {
      case operator_result::requeued:
        answer("requeued");
        return;
      case operator_result::report_resent:
        answer("report resent");
        return;
      case operator_result::cancelled:
        answer("cancelled");
        return;
      case operator_result::not_found:
        done(http::problem(404, "no job has this request id"));
        return;
      case operator_result::conflict:
        done(http::problem(409, cancelling ? "only a queued or retrying job can be cancelled"
                                           : "only a failed job, or a finished job whose report "
                                             "was not acknowledged, can be retried"));
        return;
    }
  });
}

void admin_api::data(const std::string& request_id, http::responder done) {
  queue_.run([this, request_id, done = std::move(done)](job_store& store) {
    auto found = store.find(request_id);
    if (!found) {
      done(store_down(found.error()));
      return;
    }
    result<std::shared_ptr<http::body_source>> source =
        make_failure(errc::not_found, "not a copy job");
    if (*found && (*found)->op == operation::copy) {
      const auto file = export_path(options_.export_dir, (*found)->id);
      source = options_.export_key.empty()
                   ? http::file_source(file)
                   : http::sealed_file_source(file, options_.export_key, (*found)->request_id);
    }
    if (!source) {
      done(http::problem(404,
                         "no export is kept for this request (only completed copy jobs "
                         "whose export was not delivered to MineOS have one)"));
      return;
    }
    http::response res{200, "application/json", "", {}, std::move(*source)};
    done(std::move(res));
  });
}

void admin_api::serve_metrics(http::responder done) {
  if (options_.counters == nullptr) {
    done(not_yet("/metrics"));
    return;
  }
  metrics::gauges g;
  g.now = options_.time->now();
  g.dispatch_paused = options_.paused && options_.paused().has_value();
  const std::chrono::milliseconds deadline = std::chrono::days(options_.deadline_days);
  const std::chrono::milliseconds warning = std::chrono::days(options_.deadline_warning_days);
  queue_.run([m = options_.counters, g, deadline, warning,
              done = std::move(done)](job_store& store) mutable {
    auto stats = store.stats(g.now, deadline, warning);
    if (!stats) {
      done(store_down(stats.error()));
      return;
    }
    g.jobs = *stats;
    done(http::response{200, "text/plain; version=0.0.4; charset=utf-8", m->render(g), {}});
  });
}

void admin_api::get_job(const std::string& request_id, http::responder done) {
  const deadline_policy d{options_.deadline_days, options_.deadline_warning_days};
  const auto now = options_.time->now();
  queue_.run([request_id, d, now, done = std::move(done)](job_store& store) {
    auto found = store.find(request_id);
    if (!found) {
      done(store_down(found.error()));
    } else if (!*found) {
      done(http::problem(404, "no job has this request id"));
    } else {
      done(http::json_response(200, job_view(**found, d, now)));
    }
  });
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
  const deadline_policy d{options_.deadline_days, options_.deadline_warning_days};
  const auto now = options_.time->now();
  queue_.run([state, limit, d, now, done = std::move(done)](job_store& store) {
    auto jobs = store.list(state, limit);
    if (!jobs) {
      done(store_down(jobs.error()));
      return;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& j : *jobs) {
      list.push_back(job_view(j, d, now));
    }
    done(http::json_response(200, {{"requests", std::move(list)}}));
  });
}

}  // namespace dsr::ops
