#include "dsr/app/daemon.hpp"
#include "dsr/ops/metrics.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/log.hpp"
#include "dsr/common/scratch_dir.hpp"
#include "dsr/common/store_keys.hpp"
#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/http/client.hpp"
#include "dsr/http/router.hpp"
#include "dsr/http/server.hpp"
#include "dsr/jobs/dispatcher.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/store.hpp"
#include "dsr/jobs/store_worker.hpp"
#include "dsr/mineos/file_downloads.hpp"
#include "dsr/mineos/file_links.hpp"
#include "dsr/mineos/intake.hpp"
#include "dsr/mineos/reporter.hpp"
#include "dsr/ops/admin_api.hpp"
#include "dsr/ops/logging.hpp"
#include "dsr/ops/probe.hpp"
#include "dsr/ops/systemd.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <cstring>

#include <random>

namespace dsr::app {
namespace {

// Answers other than exports (errors, acknowledgements) are small; an export goes to a file.
constexpr std::size_t answer_in_memory_limit = 1024 * 1024;

// One daemon per SQLite store: an exclusive lock on "<store>.lock", held for the process's life.
// It is what makes expiring every lease at start-up safe (their owner is dead).
bool lock_store(const std::filesystem::path& store, std::string& problem) {
  std::error_code ec;
  std::filesystem::create_directories(store.parent_path(), ec);
  const auto path = store.string() + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    problem = fmt::format("cannot open {}: {}", path, std::strerror(errno));
    return false;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    problem = fmt::format(
        "another dsr-connector is using the job store {} (lock {} is held); "
        "run one daemon per store",
        store.string(), path);
    ::close(fd);
    return false;
  }
  return true;  // the descriptor stays open until exit
}

flow_settings settings_for(const config& cfg) {
  flow_settings s;
  s.customer_id_type = cfg.exponea.customer_id_type;
  s.lowercase_ids = cfg.exponea.lowercase_ids;
  s.event_type = cfg.exponea.event_type;
  s.source = cfg.exponea.source;
  s.verify_timeout = cfg.exponea.verify_timeout;
  s.consent_categories = cfg.consent.categories;
  return s;
}

// WATCHDOG=1 at half of WatchdogSec=, from the event loop itself: when the loop stalls, the
// pings stop and systemd restarts the daemon.
boost::asio::awaitable<void> ping_watchdog(std::chrono::microseconds interval) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  for (;;) {
    ops::notify("WATCHDOG=1");
    timer.expires_after(interval / 2);
    auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) {
      co_return;
    }
  }
}

// Once a day (and at start-up), a warning when jobs are near or past their legal due date.
boost::asio::awaitable<void> warn_deadlines_daily(job_queue& queue, deadline_policy d) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  for (;;) {
    const auto now = std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
    queue.run([now, d](job_store& s) {
      const auto st = s.stats(now, std::chrono::days(d.days), std::chrono::days(d.warning_days));
      if (!st) {
        spdlog::get("main")->error("cannot check deadlines: {}", st.error().detail);
      } else if (st->overdue > 0 || st->due_soon > 0) {
        spdlog::get("main")->warn(
            "deadlines: {} unfinished job(s) past their due date and {} due within {} day(s); "
            "their job views say \"deadline\": \"overdue\" or \"due_soon\" "
            "(GET /v1/requests?state=failed lists the failed ones)",
            st->overdue, st->due_soon, d.warning_days);
      }
    });
    timer.expires_after(std::chrono::hours(24));
    auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) {
      co_return;
    }
  }
}

// Hourly (and at start-up): exports whose file link expired go; other exports older than
// export_retention_days go (kept ones when api_base_url is empty, or ones MineOS never
// acknowledged), but those behind a live file link; finished jobs' metadata goes after
// retention_days (docs/contract.md §3).
boost::asio::awaitable<void> purge_hourly(std::filesystem::path dir, std::chrono::days retention,
                                          job_queue& queue, std::chrono::days job_retention) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  for (;;) {
    const auto now = std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
    const auto before = now - std::chrono::duration_cast<millis>(job_retention);
    queue.run([dir, retention, now, before, days = job_retention.count()](job_store& s) {
      auto log = spdlog::get("main");
      if (auto n = remove_expired_link_exports(s, dir, now); !n) {
        log->error("cannot delete expired file-link exports: {}", n.error().detail);
      } else if (*n > 0) {
        log->info("deleted {} export(s) whose file link expired", *n);
      }
      const auto live = s.file_links(now, false);
      if (!live) {
        log->error("cannot list live file links: {}", live.error().detail);
      } else {
        const auto cutoff = std::filesystem::file_time_type::clock::now() - retention;
        if (const auto n = purge_exports(dir, cutoff, *live); n > 0) {
          log->info("deleted {} export(s) older than {} day(s)", n, retention.count());
        }
      }
      if (auto n = s.purge_finished(before); !n) {
        log->error("cannot purge old jobs: {}", n.error().detail);
      } else if (*n > 0) {
        log->info("purged {} finished job(s) older than {} day(s)", *n, days);
      }
    });
    timer.expires_after(std::chrono::hours(1));
    auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) {
      co_return;
    }
  }
}

// max_connections sockets need as many descriptors, plus the store, exports, logs and the peers'
// pools: raise the soft limit toward the hard one (systemd's default soft limit is 1024).
// Each listener holds max_connections of its own.
void raise_file_limit(std::uint64_t max_connections, unsigned listeners) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return;
  }
  const rlim_t wanted = static_cast<rlim_t>(max_connections * listeners + 256);
  if (lim.rlim_cur >= wanted) {
    return;
  }
  const rlim_t target = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, lim.rlim_max);
  if (target > lim.rlim_cur) {
    lim.rlim_cur = target;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (target < wanted) {
    spdlog::get("main")->warn(
        "open files are limited to {} (hard limit); [server] max_connections = {} per listener "
        "needs about {}: "
        "raise LimitNOFILE= or lower max_connections",
        target, max_connections, wanted);
  }
}

// What a careful operator would want to hear about at start-up: a store folder others can read,
// secrets written into a configuration file others can read, and operator endpoints in plain HTTP
// on a network address. None stops the daemon.
std::vector<std::string> deployment_warnings(const config& cfg) {
  std::vector<std::string> out;
  struct stat st {};
  const auto store_dir = cfg.store.path.parent_path().empty() ? std::filesystem::path(".")
                                                              : cfg.store.path.parent_path();
  if (::stat(store_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    out.push_back(fmt::format(
        "the store folder {} is open to group or others (mode {:04o}): it holds personal data; "
        "chmod 700 it (the systemd unit sets StateDirectoryMode=0700)",
        store_dir.string(), st.st_mode & 07777));
  }
  if (!cfg.credentials.inline_values.empty() && ::stat(cfg.source.c_str(), &st) == 0 &&
      (st.st_mode & 077) != 0) {
    std::vector<std::string> names;
    for (const auto& [n, v] : cfg.credentials.inline_values) {
      names.push_back(n);
    }
    out.push_back(fmt::format(
        "{} holds secrets inline ({}) and is readable by group or others (mode {:04o}): chmod "
        "600 it, or better move them to LoadCredential= or NAME_file files",
        cfg.source.string(), fmt::join(names, ", "), st.st_mode & 07777));
  }
  if (cfg.server.admin_listen && !is_loopback_host(cfg.server.admin_listen->host)) {
    out.push_back(fmt::format(
        "[server] admin_listen {} is not a loopback address and serves plain HTTP: the admin "
        "token and the job views cross the network in clear; keep it on loopback, or put a "
        "TLS-terminating proxy in front and firewall the port",
        cfg.server.admin_listen->to_string()));
  }
  return out;
}

std::string owner_id() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  return fmt::format("{}:{}:{:08x}", host, ::getpid(), rd());
}

// The configuration, or nullopt after printing why it cannot be used (exit code 2).
std::optional<config> load_or_explain(const std::filesystem::path& file) {
  try {
    return load_config(file);
  } catch (const config_error& e) {
    fmt::print(stderr, "dsr-connector: {}\n", e.what());
    return std::nullopt;
  }
}

// SIGHUP: re-reads the config file and the credentials. What a running process can take (the
// credentials, [log] level, [exponea] max_requests_per_second, [retry]) is applied at once and a
// pause ends; other changes wait for a restart, and say so. A reload that fails changes nothing.
// Returns what was applied, or nullopt (logged) when nothing was.
std::optional<std::string> reload_from(const std::filesystem::path& file, const config& running,
                                       swappable_credentials& credentials,
                                       exponea::limiter& spacing, dispatcher& jobs,
                                       mineos::reporter* reporter, store_worker& store) {
  auto log = spdlog::get("main");
  config next;
  try {
    next = load_config(file);
  } catch (const config_error& e) {
    log->error("reload failed, keeping the running configuration: {}", e.what());
    return std::nullopt;
  }
  credential_load_report report;
  auto fresh = load_credentials(next.credentials, process_environment(), report);
  auto problems = check_credentials(next, *fresh);
  problems.insert(problems.begin(), report.errors.begin(), report.errors.end());
  if (!problems.empty()) {
    for (const auto& p : problems) {
      log->error("reload failed, keeping the running configuration and credentials: {}", p);
    }
    return std::nullopt;
  }
  for (const auto& w : report.warnings) {
    log->warn("{}", w);
  }
  credentials.replace(std::move(fresh));
  const auto level = spdlog::level::from_str(next.log.level);
  spdlog::apply_all([level](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level); });
  spacing.set_rate(next.exponea.max_requests_per_second);
  jobs.set_retry(next.retry);
  jobs.resume();
  if (reporter != nullptr) {
    reporter->resume();
  }
  store.run([bytes = next.store.max_size_mb << 20](job_store& s) {
    if (auto r = s.set_max_size(bytes); !r) {
      spdlog::get("main")->warn("[store] max_size_mb: {}", r.error().detail);
    }
  });
  std::vector<std::string> later;
  if (next.server != running.server) {
    later.emplace_back("[server]");
  }
  auto other_store = next.store;
  other_store.max_size_mb = running.store.max_size_mb;
  if (other_store != running.store) {
    later.emplace_back("[store] (except max_size_mb)");
  }
  if (next.mineos != running.mineos) {
    later.emplace_back("[mineos]");
  }
  if (next.requests != running.requests) {
    later.emplace_back("[requests]");
  }
  if (next.consent != running.consent) {
    later.emplace_back("[consent]");
  }
  if (next.jobs != running.jobs) {
    later.emplace_back("[jobs]");
  }
  auto other_exponea = next.exponea;
  other_exponea.max_requests_per_second = running.exponea.max_requests_per_second;
  if (other_exponea != running.exponea) {
    later.emplace_back("[exponea] (except max_requests_per_second)");
  }
  if (next.log.format != running.log.format) {
    later.emplace_back("[log] format");
  }
  if (!later.empty()) {
    log->warn("changes to {} take effect after a restart (systemctl restart is graceful)",
              fmt::format("{}", fmt::join(later, ", ")));
  }
  return std::string(
      "credentials, [log] level, [exponea] max_requests_per_second, [retry], "
      "[store] max_size_mb");
}

}  // namespace

int serve(const std::filesystem::path& config_file) {
  ops::setup_bootstrap_logging();
  const auto loaded = load_or_explain(config_file);
  if (!loaded) {
    return 2;
  }
  const config& cfg = *loaded;
  ops::setup_logging(cfg.log);
  auto log = spdlog::get("main");
  if (cfg.log.level == "trace") {
    log->warn(
        "log level is trace: e-mail addresses, names and request bodies will be written to "
        "the log; use it only to debug, never in production");
  }

  if (cfg.consent.categories.empty() && !cfg.requests.opt_out_types.empty()) {
    log->warn(
        "[consent] categories is empty: opt-out requests ({}) will fail with \"no consent "
        "categories configured\"; list the Bloomreach consent categories an opt-out revokes, or "
        "empty [requests] opt_out_types",
        fmt::join(cfg.requests.opt_out_types, ", "));
  }
  credential_load_report report;
  auto loaded_credentials = load_credentials(cfg.credentials, process_environment(), report);
  for (const auto& w : report.warnings) {
    log->warn("{}", w);
  }
  auto problems = check_credentials(cfg, *loaded_credentials);
  problems.insert(problems.begin(), report.errors.begin(), report.errors.end());
  if (!problems.empty()) {
    for (const auto& p : problems) {
      fmt::print(stderr, "dsr-connector: {}\n", p);
    }
    return 2;
  }

  // A reload (SIGHUP) swaps the values for every reader at once.
  auto credentials = std::make_unique<swappable_credentials>(std::move(loaded_credentials));

  raise_file_limit(cfg.server.max_connections, cfg.server.admin_listen ? 2 : 1);

  std::string lock_problem;
  if (!lock_store(cfg.store.path, lock_problem)) {
    fmt::print(stderr, "dsr-connector: {}\n", lock_problem);
    return 1;
  }
  for (const auto& w : deployment_warnings(cfg)) {
    log->warn("{}", w);
  }
  sqlite_store_options store_options;
  store_options.path = cfg.store.path;
  // check_credentials made sure store_key is 64 hex digits.
  store_options.subject_key =
      crypto::from_hex(credentials->find(credential::store_key)->reveal()).value_or("");
  // One key per purpose, derived from store_key (common/store_keys.hpp).
  const auto keys = derive_store_keys(store_options.subject_key);
  auto store = open_sqlite_store(store_options);
  if (!store) {
    fmt::print(stderr, "dsr-connector: {}\n", store.error().detail);
    return 1;
  }
  if (auto active = (*store)->count_active()) {
    log->info("job store {} open: {} job(s) queued or running", cfg.store.path.string(), *active);
  }
  // The lock proves the previous owner of any lease is gone: its jobs go back to the queue.
  if (auto expired = (*store)->expire_leases(time_point::max()); expired && *expired > 0) {
    log->info("{} job(s) interrupted by the previous run resume from their journal", *expired);
  }
  const auto export_dir = export_dir_for(cfg.store.path);
  if (auto r = prepare_export_dir(export_dir); !r) {
    fmt::print(stderr, "dsr-connector: {}\n", r.error().detail);
    return 1;
  }
  if (const auto n = remove_partial_exports(export_dir); n > 0) {
    log->info("removed {} export download(s) left unfinished by the previous run", n);
  }
  if (cfg.store.max_size_mb != 0) {
    if (auto r = (*store)->set_max_size(cfg.store.max_size_mb << 20); !r) {
      log->warn("[store] max_size_mb: {}", r.error().detail);
    }
  }
  // Answers to committed inserts are built on the I/O threads (once the server exists), not on
  // the store thread every insert waits for.
  std::optional<boost::asio::any_io_executor> io;
  store_worker_options worker_options{cfg.server.max_queued_jobs};
  worker_options.complete_on = [&io](std::function<void()> fn) {
    if (io) {
      boost::asio::post(*io, std::move(fn));
    } else {
      fn();
    }
  };
  store_worker worker(std::move(*store), worker_options);

  http::router router;
  // Refused signatures and admin tokens are answered later and later per address; the delay runs
  // on the server's threads (which exist once the server does, before the first request).
  std::optional<boost::asio::any_io_executor> timers;
  http::auth_throttle throttle(
      make_system_clock(), [&timers](std::chrono::milliseconds delay, std::function<void()> fn) {
        auto timer = std::make_shared<boost::asio::steady_timer>(*timers, delay);
        timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code&) { fn(); });
      });
  ops::metrics counters;
  mineos::intake_options intake_options;
  intake_options.max_queued_jobs = cfg.server.max_queued_jobs;
  intake_options.custom_field_ids = cfg.exponea.custom_field_ids;
  intake_options.requests = cfg.requests;
  intake_options.integration_id = cfg.mineos.integration_id;
  intake_options.reporting = cfg.mineos.reporting();
  mineos::intake intake(worker, *credentials, make_system_clock(), intake_options);
  intake.set_auth_throttle(&throttle);
  intake.set_metrics(&counters);
  intake.add_routes(router);
  ops::admin_options admin_options;
  admin_options.deadline_days = cfg.jobs.deadline_days;
  admin_options.export_dir = export_dir;
  admin_options.export_keys = keys.export_keys();
  admin_options.throttle = &throttle;
  admin_options.counters = &counters;
  admin_options.deadline_warning_days = cfg.jobs.deadline_warning_days;
  std::function<void()> wake_workers;  // set once the dispatcher and reporter exist
  dsr::dispatcher* running_dispatcher = nullptr;
  admin_options.paused = [&running_dispatcher]() -> std::optional<std::string> {
    if (running_dispatcher == nullptr) {
      return std::nullopt;
    }
    return running_dispatcher->paused();
  };
  mineos::reporter* running_reporter = nullptr;
  admin_options.reporting_paused = [&running_reporter]() -> std::optional<std::string> {
    if (running_reporter == nullptr) {
      return std::nullopt;
    }
    return running_reporter->paused();
  };
  admin_options.on_change = [&wake_workers] {
    if (wake_workers) {
      wake_workers();
    }
  };
  ops::admin_api admin(worker, *credentials, admin_options);
  admin.add_routes(router);
  // Large copies reach MineOS as signed links, GET /v1/files/... on `listen` (docs/contract.md §6).
  std::shared_ptr<const mineos::file_links> links;
  std::unique_ptr<mineos::file_downloads> downloads;
  if (!cfg.mineos.public_url.empty()) {
    links = std::make_shared<const mineos::file_links>(store_options.subject_key,
                                                       cfg.mineos.public_url);
    downloads = std::make_unique<mineos::file_downloads>(worker, links, export_dir,
                                                         keys.export_keys(), make_system_clock());
    downloads->add_routes(router);
  }

  http::server_options options;
  options.listen = cfg.server.listen;
  options.admin_listen = cfg.server.admin_listen;
  if (!cfg.server.tls_cert_file.empty()) {
    options.tls = http::tls_files{cfg.server.tls_cert_file, cfg.server.tls_key_file};
  }
  options.max_body_bytes = cfg.server.max_body_bytes;
  options.max_connections = cfg.server.max_connections;
  options.max_connections_per_client = cfg.server.max_connections_per_client;
  options.first_byte_timeout = cfg.server.first_byte_timeout;
  options.read_timeout = cfg.server.read_timeout;
  options.idle_timeout = cfg.server.idle_timeout;
  options.shutdown_grace = cfg.jobs.shutdown_grace;
  options.io_threads = cfg.server.io_threads;
  std::function<void()> reload;  // set once everything it touches exists
  options.on_reload = [&reload] {
    if (reload) {
      reload();
    }
  };
  options.on_stopping = [log, &running_dispatcher, &running_reporter] {
    log->info("stopping: no new connections; finishing requests in flight");
    ops::notify("STOPPING=1");
    if (running_dispatcher != nullptr) {
      running_dispatcher->stop();
    }
    if (running_reporter != nullptr) {
      running_reporter->stop();
    }
  };
  auto server = http::make_server(options, router);
  if (!server) {
    // A certificate or key that cannot be used is a configuration error (exit 2); an address in
    // use is an environment error (exit 1).
    const bool config_error = server.error().is(errc::invalid_input);
    fmt::print(stderr, "dsr-connector: {}{}\n",
               config_error ? cfg.source.string() + ": " : std::string(), server.error().detail);
    return config_error ? 2 : 1;
  }
  timers = (*server)->executor();
  io = (*server)->executor();
  auto exponea_http = http::make_client(
      (*server)->executor(), {cfg.exponea.base_url, cfg.exponea.timeout, cfg.exponea.ca_file,
                              answer_in_memory_limit, cfg.jobs.concurrency * 2});
  if (!exponea_http) {
    fmt::print(stderr, "dsr-connector: {}: [exponea] base_url / ca_file: {}\n", cfg.source.string(),
               exponea_http.error().detail);
    return 2;
  }
  const auto clock = make_system_clock();
  // One limiter for every call to Exponea; preview and isTest take their turn before jobs.
  auto spacing = std::make_shared<exponea::limiter>((*server)->executor(),
                                                    cfg.exponea.max_requests_per_second);
  auto exponea_api =
      exponea::make_api(std::move(*exponea_http), *credentials, clock,
                        {export_dir, cfg.exponea.max_export_bytes, spacing,
                         exponea::priority::background, keys.export_seal, &counters});
  auto interactive_http = http::make_client(
      (*server)->executor(),
      {cfg.exponea.base_url, cfg.exponea.timeout, cfg.exponea.ca_file, answer_in_memory_limit});
  auto interactive_api =
      exponea::make_api(std::move(*interactive_http), *credentials, clock,
                        {export_dir, cfg.exponea.max_export_bytes, spacing,
                         exponea::priority::interactive, keys.export_seal, &counters});
  dispatcher_options dispatch;
  dispatch.owner = owner_id();
  dispatch.concurrency = cfg.jobs.concurrency;
  // A lease outlives the longest flow: verification plus a few calls.
  dispatch.lease = cfg.exponea.verify_timeout + 10 * cfg.exponea.timeout + std::chrono::minutes(1);
  dispatch.retry = cfg.retry;
  dispatch.flows = settings_for(cfg);
  dispatch.requests = cfg.requests;
  dispatch.export_dir = export_dir;
  dispatch.hold = [srv = server->get()] { return srv->hold(); };
  dispatch.metrics = &counters;
  std::unique_ptr<mineos::reporter> reporter;
  // Status calls and isTest's test call go to MineOS's API host.
  std::unique_ptr<http::client> mineos_http;
  if (cfg.mineos.reporting()) {
    auto client = http::make_client((*server)->executor(),
                                    {cfg.mineos.api_base_url, cfg.exponea.timeout, ""});
    auto test_client = http::make_client((*server)->executor(),
                                         {cfg.mineos.api_base_url, cfg.exponea.timeout, ""});
    if (!client || !test_client) {
      fmt::print(stderr, "dsr-connector: {}: [mineos] api_base_url: {}\n", cfg.source.string(),
                 (!client ? client : test_client).error().detail);
      return 2;
    }
    mineos_http = std::move(*test_client);
    mineos::reporter_options reporting{cfg.retry, dispatch.export_dir};
    reporting.hold = dispatch.hold;
    reporting.export_keys = keys.export_keys();
    reporting.metrics = &counters;
    reporting.inline_data_max_bytes = cfg.mineos.inline_data_max_bytes;
    reporting.links = links;
    reporting.file_link_ttl = cfg.mineos.file_link_ttl;
    reporting.max_requests_per_minute = cfg.mineos.max_requests_per_minute;
    reporting.integration_id = cfg.mineos.integration_id;
    reporter = mineos::make_reporter((*server)->executor(), worker, std::move(*client),
                                     *credentials, clock, std::move(reporting));
    dispatch.on_finished = [r = reporter.get()] { r->notify(); };
    if (cfg.mineos.public_url.empty()) {
      log->info(
          "[mineos] public_url is empty: copy exports are always sent inline, whatever their "
          "size");
    }
  } else {
    dispatch.forget_finished_subjects = true;  // nothing will acknowledge a report
    log->info(
        "[mineos] api_base_url is empty: outcomes are not reported; copy exports are kept "
        "for {} day(s)",
        cfg.store.export_retention_days);
  }
  const auto dispatch_export_dir = dispatch.export_dir;
  auto dispatcher =
      make_dispatcher((*server)->executor(), worker, *exponea_api, clock, std::move(dispatch));
  // A job ended at intake (no identifier, a right not handled) is due to be reported at once.
  intake.on_accepted([d = dispatcher.get(), r = reporter.get()] {
    d->notify();
    if (r != nullptr) {
      r->notify();
    }
  });
  wake_workers = [d = dispatcher.get(), r = reporter.get()] {
    d->notify();
    if (r != nullptr) {
      r->notify();
    }
  };
  const auto executor = (*server)->executor();
  intake.on_test([&, executor](const mineos::test_call& t, http::responder done) {
    exponea::check_context ctx{mineos_http.get(), credentials.get(), t};
    exponea::answer_is_test(executor, *interactive_api, std::move(ctx), cfg,
                            std::chrono::seconds(10), std::move(done));
  });
  intake.on_preview([&, executor](const mineos::subject_id& who, http::responder done) {
    if (const auto why = dispatcher->paused()) {
      done(http::problem(
          503, fmt::format("dispatch is paused: {}; fix the value and reload (SIGHUP)", *why),
          {{"Retry-After", std::to_string(cfg.retry.pause_probe.count())}}));
      return;
    }
    job subject;
    subject.subject_id_name = who.name;
    subject.subject = who.value;
    exponea::answer_preview(executor, *interactive_api, customer_ids(subject, settings_for(cfg)),
                            std::chrono::seconds(50), std::move(done));
  });
  reload = [&, file = cfg.source] {
    ops::notify("RELOADING=1");
    if (const auto applied =
            reload_from(file, cfg, *credentials, *spacing, *dispatcher, reporter.get(), worker)) {
      log->info("reload done: {}", *applied);
    }
    if (options.tls) {
      if (auto r = (*server)->reload_tls(); !r) {
        log->error("{}; the previous certificate stays in use", r.error().detail);
      } else {
        log->info("TLS certificate and key reloaded from {}", options.tls->cert_file);
      }
    }
    ops::notify("READY=1");
  };
  running_dispatcher = dispatcher.get();
  dispatcher->start();
  boost::asio::co_spawn(
      executor,
      purge_hourly(dispatch_export_dir, std::chrono::days(cfg.store.export_retention_days), worker,
                   std::chrono::days(cfg.store.retention_days)),
      log_if_thrown("main", "the hourly purge"));
  boost::asio::co_spawn(
      executor,
      warn_deadlines_daily(worker, {cfg.jobs.deadline_days, cfg.jobs.deadline_warning_days}),
      log_if_thrown("main", "the daily deadline check"));
  if (const auto interval = ops::watchdog_interval()) {
    boost::asio::co_spawn(executor, ping_watchdog(*interval),
                          log_if_thrown("main", "the watchdog ping"));
    log->info("systemd watchdog: WATCHDOG=1 every {} ms",
              std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 2).count());
  }
  if (reporter) {
    running_reporter = reporter.get();
    reporter->start();
  }

  const auto pub = (*server)->local_endpoint(http::listener::public_);
  log->info("listening on {}://{} for MineOS webhooks{}", options.tls ? "https" : "http",
            pub->to_string(), cfg.server.admin_listen ? "" : " and operator endpoints");
  if (const auto adm = (*server)->local_endpoint(http::listener::admin)) {
    log->info("listening on http://{} for operator endpoints", adm->to_string());
  }
  if (!options.tls) {
    log->warn(
        "serving plain HTTP on {}: a TLS-terminating proxy is expected in front of it for "
        "MineOS (or set [server] tls_cert_file and tls_key_file)",
        pub->to_string());
  }
  ops::notify("READY=1");
  (*server)->run();
  // Everything the listeners handed to the store is committed before the process ends.
  worker.stop();
  log->info("stopped");
  return 0;
}

int check(const std::filesystem::path& config_file, bool json) {
  ops::setup_bootstrap_logging();
  spdlog::set_level(spdlog::level::warn);
  const auto loaded = load_or_explain(config_file);
  if (!loaded) {
    return 2;
  }
  const config& cfg = *loaded;
  credential_load_report report;
  auto credentials = load_credentials(cfg.credentials, process_environment(), report);
  for (const auto& w : report.warnings) {
    fmt::print(stderr, "warning: {}\n", w);
  }
  for (const auto& e : report.errors) {
    fmt::print(stderr, "dsr-connector: {}\n", e);
  }
  boost::asio::io_context ioc;
  auto exponea_http = http::make_client(
      ioc.get_executor(),
      {cfg.exponea.base_url, cfg.exponea.timeout, cfg.exponea.ca_file, answer_in_memory_limit});
  if (!exponea_http) {
    fmt::print(stderr, "dsr-connector: {}: [exponea] base_url / ca_file: {}\n", cfg.source.string(),
               exponea_http.error().detail);
    return 2;
  }
  // The check exports an ID that cannot exist: nothing is kept, but the answer needs a scratch
  // directory of its own, created private and removed at exit (never a shared one changed).
  auto scratch = scratch_dir::create("dsr-connector-check");
  if (!scratch) {
    fmt::print(stderr, "dsr-connector: {}\n", scratch.error().detail);
    return 1;
  }
  auto api = exponea::make_api(std::move(*exponea_http), *credentials, make_system_clock(),
                               {scratch->path(), 1024 * 1024});
  std::unique_ptr<http::client> mineos;
  if (cfg.mineos.reporting()) {
    auto m =
        http::make_client(ioc.get_executor(), {cfg.mineos.api_base_url, cfg.exponea.timeout, ""});
    if (!m) {
      fmt::print(stderr, "dsr-connector: {}: [mineos] api_base_url: {}\n", cfg.source.string(),
                 m.error().detail);
      return 2;
    }
    mineos = std::move(*m);
  }
  exponea::check_context ctx{mineos.get(), credentials.get(), std::nullopt};
  auto checks = boost::asio::co_spawn(ioc, exponea::run_checks(*api, cfg, std::move(ctx)),
                                      boost::asio::use_future);
  ioc.run();
  const auto results = checks.get();
  if (json) {
    fmt::print("{}\n", exponea::checks_json(results).dump(2));
  } else {
    fmt::print("{}", exponea::checks_text(results));
  }
  return exponea::all_passed(results) ? 0 : 1;
}

}  // namespace dsr::app
