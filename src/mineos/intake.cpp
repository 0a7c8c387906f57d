#include "dsr/mineos/intake.hpp"

#include "dsr/common/log.hpp"
#include "dsr/mineos/signature.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <nlohmann/json.hpp>

namespace dsr::mineos {
namespace {

namespace asio = boost::asio;

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("intake");
  return logger;
}

}  // namespace

intake::intake(async_store& store, const credential_store& credentials,
               std::shared_ptr<clock> clock, intake_options options)
    : store_(store),
      credentials_(credentials),
      clock_(std::move(clock)),
      options_(std::move(options)) {}

void intake::add_routes(http::router& r) {
  const auto route = [this](endpoint_kind k) {
    return [this, k](http::request& req, const http::route_params&, http::responder done) {
      handle(k, req, std::move(done));
    };
  };
  for (const auto k : all_endpoint_kinds) {
    r.add("POST", fmt::format("/v1/mineos/{}", to_string(k)), http::route_scope::webhook, route(k));
  }
}

void intake::handle(endpoint_kind kind, const http::request& req, http::responder done) {
  if (metrics_ != nullptr) {
    done = [m = metrics_, kind, done = std::move(done)](http::response res) {
      m->webhook(to_string(kind), res.status);
      done(std::move(res));
    };
  }
  const auto signature = req.header(signature_header);
  const auto secrets = credentials_.find(credential::mineos_webhook_secret);
  const auto keys = secrets ? split_lines(*secrets) : std::vector<secret>{};
  if (!signature || !verify(req.body, *signature, keys)) {
    http::refuse(throttle_, req.remote,
                 fmt::format("rejected a {} webhook: {} X-Mine-Signature", to_string(kind),
                             signature ? "invalid" : "missing"),
                 http::problem(401, signature ? "X-Mine-Signature does not match the body"
                                              : "X-Mine-Signature header is missing"),
                 std::move(done));
    return;
  }
  auto parsed = parse_webhook(req.body, kind);
  if (!parsed) {
    log()->info("rejected a {} webhook from {}: {}", to_string(kind), req.remote,
                parsed.error().detail);
    done(http::problem(400, parsed.error().detail));
    return;
  }
  auto& w = *parsed;
  const std::string integration =
      w.integration_id.empty() ? options_.integration_id : w.integration_id;
  if (w.is_test) {
    // "Test your integration": checks only, no job, no write.
    log()->info("isTest call (trace {}) from {}", w.trace_id, req.remote);
    if (on_test_) {
      test_call t{w.request_id, integration,
                  kind == endpoint_kind::copy ? mineos_action::copy : mineos_action::delete_};
      on_test_(t, std::move(done));
    } else {
      done(http::problem(501, "isTest calls are not available in this build"));
    }
    return;
  }
  const auto subject = choose_identifier(w, options_.custom_field_ids);
  if (kind == endpoint_kind::preview) {
    log()->info("preview (trace {}) from {}", w.trace_id, req.remote);
    if (!subject) {
      done(http::problem(400,
                         "userInfo.email is missing (and no custom field of [exponea] "
                         "custom_field_ids was sent)"));
      return;
    }
    log()->trace("preview subject {} <{}>", subject->name, subject->value);
    if (on_preview_) {
      on_preview_(*subject, std::move(done));
    } else {
      done(http::problem(501, "preview is not available in this build"));
    }
    return;
  }
  if (integration.empty() && options_.reporting) {
    log()->info("rejected a {} webhook from {}: no integrationId", to_string(kind), req.remote);
    done(http::problem(400,
                       "integrationId is missing: the outcome could not be reported to "
                       "MineOS; MineOS sends it with every custom-integration request "
                       "(for deliveries without one, set [mineos] integration_id)"));
    return;
  }

  new_job j;
  j.request_id = w.request_id;
  j.trace_id = w.trace_id;
  j.integration_id = integration;
  j.source = w.source;
  j.right = job_right{w.request_right.id, w.request_right.name, w.request_right.type};
  j.request_type = right_label(w.request_right);
  j.created_at = w.created_at;
  j.received_at = clock_->now();
  if (kind == endpoint_kind::copy) {
    j.op = operation::copy;
  } else {
    switch (classify(w.request_right, options_.requests)) {
      case route::erase:
        j.op = operation::delete_;
        break;
      case route::opt_out:
        j.op = operation::opt_out;
        break;
      case route::unhandled:
        j.op = operation::delete_;
        j.ended = intake_outcome{job_state::failed, job_outcome::failed,
                                 unhandled_message(w.request_right)};
        break;
    }
  }
  if (subject) {
    j.subject_id_name = subject->name;
    j.subject = subject->value;
  } else if (!j.ended) {
    j.ended = intake_outcome{job_state::missing_identifiers, job_outcome::missing_identifiers,
                             missing_identifiers_message(options_.custom_field_ids)};
  }
  log()->trace("[R {}] webhook subject {} <{}>", j.request_id, w.name, j.subject);

  asio::co_spawn(store_.executor(), commit(std::move(j), std::move(done)),
                 log_if_thrown("intake", "a request's commit"));
}

// Answers 202 only once the job is committed (with the inserts that arrived meanwhile).
asio::awaitable<void> intake::commit(new_job j, http::responder done) {
  const std::string request_id = j.request_id;
  const std::string trace_id = j.trace_id;
  const operation op = j.op;
  const auto ended = j.ended;
  const auto max = options_.max_queued_jobs;
  auto r = co_await store_.insert(std::move(j));
  if (!r) {
    log()->error("[R {}] not accepted, the job store cannot commit: {}", request_id,
                 r.error().detail);
    done(http::problem(503, "the job store cannot commit right now; retry later",
                       {{"Retry-After", "5"}}));
    co_return;
  }
  using kind = insert_outcome::kind;
  switch (r->result) {
    case kind::inserted:
      if (ended) {
        log()->info("[R {}] accepted {} request (trace {}); it ends at once: {}: {}", request_id,
                    to_string(op), trace_id, to_string(ended->outcome), ended->message);
      } else {
        log()->info("[R {}] accepted {} request (trace {})", request_id, to_string(op), trace_id);
      }
      if (metrics_ != nullptr) {
        metrics_->request_accepted(to_string(op));
        if (ended) {
          metrics_->job_finished(to_string(op), to_string(ended->outcome), std::chrono::seconds(0));
        }
      }
      done(http::json_response(202, {{"requestId", r->request_id}, {"status", "accepted"}}));
      if (on_accepted_) {
        on_accepted_();
      }
      co_return;
    case kind::duplicate:
      log()->info("[R {}] repeat of an accepted request (trace {}); no new job", r->request_id,
                  trace_id);
      done(http::json_response(202, {{"requestId", r->request_id}, {"status", "accepted"}}));
      co_return;
    case kind::conflict:
      log()->warn("[R {}] {} refused: a job for the other operation holds this request id",
                  request_id, to_string(op));
      done(http::problem(409, fmt::format("request {} is already queued for the other operation; "
                                          "send a new request id",
                                          request_id)));
      co_return;
    case kind::queue_full:
      log()->warn("[R {}] refused: the queue holds max_queued_jobs ({}) jobs", request_id, max);
      done(http::problem(503,
                         fmt::format("the queue is full (max_queued_jobs = {}); retry later", max),
                         {{"Retry-After", "60"}}));
      co_return;
  }
}

}  // namespace dsr::mineos
