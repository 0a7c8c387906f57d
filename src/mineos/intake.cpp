#include "dsr/mineos/intake.hpp"
#include "dsr/ops/metrics.hpp"

#include "dsr/common/log.hpp"
#include "dsr/mineos/signature.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace dsr::mineos {
namespace {

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("intake");
  return logger;
}

std::string_view path_name(endpoint_kind k) {
  switch (k) {
    case endpoint_kind::delete_:
      return "delete";
    case endpoint_kind::copy:
      return "copy";
    case endpoint_kind::preview:
      return "preview";
  }
  return "";
}

}  // namespace

intake::intake(job_queue& queue, const credential_store& credentials, std::shared_ptr<clock> clock,
               std::uint64_t max_queued_jobs)
    : queue_(queue),
      credentials_(credentials),
      clock_(std::move(clock)),
      max_queued_jobs_(max_queued_jobs) {}

void intake::add_routes(http::router& r) {
  const auto route = [this](endpoint_kind k) {
    return [this, k](http::request& req, const http::route_params&, http::responder done) {
      handle(k, req, std::move(done));
    };
  };
  r.add("POST", "/v1/mineos/delete", http::route_scope::webhook, route(endpoint_kind::delete_));
  r.add("POST", "/v1/mineos/copy", http::route_scope::webhook, route(endpoint_kind::copy));
  r.add("POST", "/v1/mineos/preview", http::route_scope::webhook, route(endpoint_kind::preview));
}

void intake::handle(endpoint_kind kind, const http::request& req, http::responder done) {
  if (metrics_ != nullptr) {
    done = [m = metrics_, kind, done = std::move(done)](http::response res) {
      m->webhook(path_name(kind), res.status);
      done(std::move(res));
    };
  }
  const auto signature = req.header(signature_header);
  const auto secrets = credentials_.find(credential::mineos_webhook_secret);
  const auto keys = secrets ? split_lines(*secrets) : std::vector<secret>{};
  if (!signature || !verify(req.body, *signature, keys)) {
    http::refuse(throttle_, req.remote,
                 fmt::format("rejected a {} webhook: {} X-Mine-Signature", path_name(kind),
                             signature ? "invalid" : "missing"),
                 http::problem(401, signature ? "X-Mine-Signature does not match the body"
                                              : "X-Mine-Signature header is missing"),
                 std::move(done));
    return;
  }
  auto parsed = parse_webhook(req.body, kind);
  if (!parsed) {
    log()->info("rejected a {} webhook from {}: {}", path_name(kind), req.remote,
                parsed.error().detail);
    done(http::problem(400, parsed.error().detail));
    return;
  }
  auto& w = *parsed;
  if (w.is_test) {
    // "Test your integration": checks only, no job, no write.
    log()->info("isTest call (trace {}) from {}", w.trace_id, req.remote);
    if (on_test_) {
      on_test_(std::move(done));
    } else {
      done(http::problem(501, "isTest calls are not available in this build"));
    }
    return;
  }
  if (kind == endpoint_kind::preview) {
    log()->info("preview (trace {}) from {}", w.trace_id, req.remote);
    log()->trace("preview subject <{}>", w.email);
    if (on_preview_) {
      on_preview_(w.email, std::move(done));
    } else {
      done(http::problem(501, "preview is not available in this build"));
    }
    return;
  }

  new_job j;
  j.op = kind == endpoint_kind::copy ? operation::copy : operation::delete_;
  j.request_id = w.request_id;
  j.trace_id = w.trace_id;
  j.integration_id = w.integration_id;
  j.source = w.source;
  j.request_type = w.request_type;
  j.created_at = w.created_at;
  j.received_at = clock_->now();
  j.subject_email = std::move(w.email);
  log()->trace("[R {}] webhook subject {} <{}>", j.request_id, w.name, j.subject_email);

  const std::string request_id = j.request_id;
  const std::string trace_id = j.trace_id;
  const operation op = j.op;
  const auto max = max_queued_jobs_;
  queue_.insert(std::move(j), [request_id, trace_id, op, max, notify = on_accepted_,
                               done = std::move(done)](result<insert_outcome> r) {
    if (!r) {
      log()->error("[R {}] not accepted, the job store cannot commit: {}", request_id,
                   r.error().detail);
      done(http::problem(503, "the job store cannot commit right now; retry later",
                         {{"Retry-After", "5"}}));
      return;
    }
    using kind = insert_outcome::kind;
    switch (r->result) {
      case kind::inserted:
        log()->info("[R {}] accepted {} request (trace {})", request_id, to_string(op), trace_id);
        done(http::json_response(202, {{"requestId", r->request_id}, {"status", "accepted"}}));
        if (notify) {
          notify();
        }
        return;
      case kind::duplicate:
        log()->info("[R {}] repeat of an accepted request (trace {}); no new job", r->request_id,
                    trace_id);
        done(http::json_response(202, {{"requestId", r->request_id}, {"status", "accepted"}}));
        return;
      case kind::conflict:
        log()->warn("[R {}] {} refused: a job for the other operation holds this request id",
                    request_id, to_string(op));
        done(http::problem(409, fmt::format("request {} is already queued for the other operation; "
                                            "send a new request id",
                                            request_id)));
        return;
      case kind::queue_full:
        log()->warn("[R {}] refused: the queue holds max_queued_jobs ({}) jobs", request_id, max);
        done(http::problem(
            503, fmt::format("the queue is full (max_queued_jobs = {}); retry later", max),
            {{"Retry-After", "60"}}));
        return;
    }
  });
}

}  // namespace dsr::mineos
