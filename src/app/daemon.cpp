#include "dsr/app/daemon.hpp"

#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/http/router.hpp"
#include "dsr/http/server.hpp"
#include "dsr/jobs/store.hpp"
#include "dsr/jobs/store_worker.hpp"
#include "dsr/mineos/intake.hpp"
#include "dsr/ops/admin_api.hpp"
#include "dsr/ops/logging.hpp"
#include "dsr/ops/systemd.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace dsr::app {

int serve(const std::filesystem::path& config_file) {
  ops::setup_bootstrap_logging();
  config cfg;
  try {
    cfg = load_config(config_file);
  } catch (const config_error& e) {
    fmt::print(stderr, "dsr-connector: {}\n", e.what());
    return 2;
  }
  ops::setup_logging(cfg.log);
  auto log = spdlog::get("main");
  if (cfg.log.level == "trace") {
    log->warn(
        "log level is trace: e-mail addresses, names and request bodies will be written to "
        "the log; use it only to debug, never in production");
  }
  if (!cfg.server.tls_cert_file.empty()) {
    fmt::print(stderr,
               "dsr-connector: {}: [server] tls_cert_file: serving HTTPS is not available yet in "
               "this version; remove tls_cert_file/tls_key_file and terminate TLS in a proxy\n",
               cfg.source.string());
    return 2;
  }

  credential_load_report report;
  auto credentials = load_credentials(cfg.credentials, process_environment(), report);
  for (const auto& w : report.warnings) {
    log->warn("{}", w);
  }
  auto problems = check_credentials(cfg, *credentials);
  problems.insert(problems.begin(), report.errors.begin(), report.errors.end());
  if (!problems.empty()) {
    for (const auto& p : problems) {
      fmt::print(stderr, "dsr-connector: {}\n", p);
    }
    return 2;
  }

  auto store = open_sqlite_store({cfg.store.path});
  if (!store) {
    fmt::print(stderr, "dsr-connector: {}\n", store.error().detail);
    return 1;
  }
  if (auto active = (*store)->count_active()) {
    log->info("job store {} open: {} job(s) queued or running", cfg.store.path.string(), *active);
  }
  store_worker worker(std::move(*store), {cfg.server.max_queued_jobs});

  http::router router;
  mineos::intake intake(worker, *credentials, make_system_clock(), cfg.server.max_queued_jobs);
  intake.add_routes(router);
  ops::admin_api admin(worker, *credentials, {cfg.jobs.deadline_days});
  admin.add_routes(router);

  http::server_options options;
  options.listen = cfg.server.listen;
  options.admin_listen = cfg.server.admin_listen;
  options.max_body_bytes = cfg.server.max_body_bytes;
  options.max_connections = cfg.server.max_connections;
  options.read_timeout = cfg.server.read_timeout;
  options.idle_timeout = cfg.server.idle_timeout;
  options.shutdown_grace = cfg.jobs.shutdown_grace;
  options.io_threads = cfg.server.io_threads;
  options.on_stopping = [log] {
    log->info("stopping: no new connections; finishing requests in flight");
    ops::notify("STOPPING=1");
  };
  auto server = http::make_server(options, router);
  if (!server) {
    fmt::print(stderr, "dsr-connector: {}\n", server.error().detail);
    return 1;
  }
  const auto pub = (*server)->local_endpoint(http::listener::public_);
  log->info("listening on http://{} for MineOS webhooks{}", pub->to_string(),
            cfg.server.admin_listen ? "" : " and operator endpoints");
  if (const auto adm = (*server)->local_endpoint(http::listener::admin)) {
    log->info("listening on http://{} for operator endpoints", adm->to_string());
  }
  log->info("plain HTTP: put a TLS-terminating proxy in front of {} for MineOS", pub->to_string());
  ops::notify("READY=1");
  (*server)->run();
  // Everything the listeners handed to the store is committed before the process ends.
  worker.stop();
  log->info("stopped");
  return 0;
}

}  // namespace dsr::app
