#pragma once
// Intake of MineOS webhooks: POST /v1/mineos/delete, /copy and /preview (docs/contract.md §4).
//
// Order of work for each request: verify X-Mine-Signature over the raw body (401, nothing stored);
// parse (400 naming the field); route it: the copy URL exports, a Delete-URL right is erased,
// opted out or not handled ([requests]); choose the subject's one ID (e-mail, else a configured
// custom field); insert durably through the async store; answer 202 only after the commit. A
// request without any ID, or with a right this integration does not handle, is still a job: it is
// stored finished (MissingIdentifiers / Failed) with its report due, and Exponea is never called.
// A repeat (same trace id, or same request id and operation) is answered 202 with the original
// requestId; the other operation on a known request id is 409; a full queue or a store that
// cannot commit is 503 with Retry-After.

#include "dsr/common/clock.hpp"
#include "dsr/common/metrics_sink.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/http/auth_throttle.hpp"
#include "dsr/http/router.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/mineos/identifiers.hpp"
#include "dsr/mineos/webhook.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>

namespace dsr::mineos {

struct intake_options {
  std::uint64_t max_queued_jobs = 1000000;
  std::vector<custom_field_id> custom_field_ids;  // [exponea]
  requests_config requests;                       // [requests]
  std::string integration_id;                     // [mineos] integration_id, the fallback
  bool reporting = false;                         // [mineos] api_base_url is set
};

class intake {
 public:
  // All references must outlive the intake. Thread-safe.
  intake(async_store& store, const credential_store& credentials, std::shared_ptr<clock> clock,
         intake_options options);

  void handle(endpoint_kind kind, const http::request& req, http::responder done);

  // Registers the three webhook routes on `listen`.
  void add_routes(http::router& r);

  // Called after each newly committed job (the dispatcher's wake-up). Set before serving.
  void on_accepted(std::function<void()> fn) { on_accepted_ = std::move(fn); }

  // Answer isTest calls and previews (without them: 501). `preview` gets the subject's ID.
  using test_hook = std::function<void(const test_call&, http::responder)>;
  using preview_hook = std::function<void(const subject_id&, http::responder)>;
  void on_test(test_hook fn) { on_test_ = std::move(fn); }
  void on_preview(preview_hook fn) { on_preview_ = std::move(fn); }
  // Refused signatures go through it (counted, slowed per address). Set before serving.
  void set_auth_throttle(http::auth_throttle* t) { throttle_ = t; }
  // Every answer is counted there (dsr_webhooks_total). Set before serving.
  void set_metrics(metrics_sink* m) { metrics_ = m; }

 private:
  boost::asio::awaitable<void> commit(new_job j, http::responder done);

  async_store& store_;
  const credential_store& credentials_;
  std::shared_ptr<clock> clock_;
  intake_options options_;
  std::function<void()> on_accepted_;
  test_hook on_test_;
  preview_hook on_preview_;
  http::auth_throttle* throttle_ = nullptr;
  metrics_sink* metrics_ = nullptr;
};

}  // namespace dsr::mineos
