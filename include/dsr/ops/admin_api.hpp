#pragma once
// The operator endpoints (docs/contract.md §4): /healthz, /readyz, /metrics, the job API under
// /v1/requests guarded by `Authorization: Bearer <admin_token>` (compared in constant time), and
// the status page at / (the Bearer header, or a session cookie from signing in at /login).

#include "dsr/common/clock.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/http/auth_throttle.hpp"
#include "dsr/http/router.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/ops/metrics.hpp"
#include "dsr/ops/status_page.hpp"

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace dsr::ops {

struct admin_options {
  std::uint32_t deadline_days = 30;
  std::filesystem::path export_dir;  // where copy exports are kept (GET .../data)
  std::function<void()> on_change;   // after a retry or cancel: wake dispatcher and reporter
  std::shared_ptr<clock> time = make_system_clock();
  // Why dispatch is paused (named in /readyz), or nullopt.
  std::function<std::optional<std::string>()> paused;
  // Why reporting to MineOS is paused (named in /readyz), or nullopt.
  std::function<std::optional<std::string>()> reporting_paused;
  // store_keys::export_keys(): what kept exports may be sealed with; none: in the clear.
  std::vector<std::string> export_keys;
  // Exports are kept in the store (PostgreSQL), not in export_dir (kept_exports.hpp).
  bool exports_in_store = false;
  // Refused tokens go through it (counted, slowed per address); null: answered at once.
  http::auth_throttle* throttle = nullptr;
  // Served at GET /metrics (no auth, like /healthz); null: 501.
  metrics* counters = nullptr;
  std::uint32_t deadline_warning_days = 7;
  // Several daemons (docs/contract.md §8): the live ones (dsr_workers; empty: 1), and why this one
  // must not run jobs (a newer schema in the store: named in /readyz), or nullopt.
  std::function<std::size_t()> workers;
  std::function<std::optional<std::string>()> cluster_problem;
  std::int64_t schema = 0;  // the store schema this build expects (dsr_build_info)
};

class admin_api {
 public:
  // References must outlive the API. Thread-safe.
  admin_api(async_store& store, const credential_store& credentials, admin_options options);

  void add_routes(http::router& r);

 private:
  bool authorized(const http::request& req) const;
  // The session's CSRF token when the request carries a live session cookie.
  std::optional<std::string> session_of(const http::request& req);
  void status(const http::request& req, http::responder done);
  void login(const http::request& req, http::responder done);
  void logout(const http::request& req, http::responder done);
  void retry_from_page(const http::request& req, const std::string& hex_id, http::responder done);
  void get_job(const std::string& request_id, http::responder done);
  void list_jobs(const http::request& req, http::responder done);
  void ready(http::responder done);
  void serve_metrics(http::responder done);
  void act(const std::string& request_id, bool cancelling, http::responder done);
  void data(const std::string& request_id, http::responder done);

  // The store's part of each answer, on a coroutine of its own (spawn): nothing is rendered on
  // the store thread.
  void spawn(boost::asio::awaitable<void> work);
  boost::asio::awaitable<result<operator_result>> apply(std::string_view request_id,
                                                        bool cancelling);
  boost::asio::awaitable<void> act_on(std::string request_id, bool cancelling,
                                      http::responder done);
  boost::asio::awaitable<void> retry_on_page(std::string request_id, std::string hex_id,
                                             http::responder done);
  boost::asio::awaitable<void> show_status(status_view v, http::responder done);
  boost::asio::awaitable<void> send_data(std::string request_id, http::responder done);
  boost::asio::awaitable<void> send_metrics(metrics::gauges g, http::responder done);
  boost::asio::awaitable<void> send_job(std::string request_id, http::responder done);
  boost::asio::awaitable<void> send_jobs(std::optional<job_state> state, std::size_t limit,
                                         http::responder done);

  async_store& store_;
  const credential_store& credentials_;
  admin_options options_;
  sessions sessions_;
};

}  // namespace dsr::ops
