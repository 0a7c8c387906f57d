#include "dsr/app/daemon.hpp"

#include "dsr/app/cluster.hpp"

#include "dsr/app/open_store.hpp"
#include "dsr/app/periodic.hpp"
#include "dsr/app/reload.hpp"
#include "dsr/app/runtime.hpp"
#include "dsr/app/startup.hpp"
#include "dsr/common/crypto.hpp"
#include "dsr/common/log.hpp"
#include "dsr/common/store_keys.hpp"
#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/exponea/client.hpp"
#include "dsr/exponea/limiter.hpp"
#include "dsr/http/auth_throttle.hpp"
#include "dsr/http/client.hpp"
#include "dsr/http/router.hpp"
#include "dsr/http/server.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/dispatcher.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/store_worker.hpp"
#include "dsr/mineos/file_downloads.hpp"
#include "dsr/mineos/file_links.hpp"
#include "dsr/mineos/intake.hpp"
#include "dsr/mineos/reporter.hpp"
#include "dsr/ops/admin_api.hpp"
#include "dsr/ops/logging.hpp"
#include "dsr/ops/metrics.hpp"
#include "dsr/ops/probe.hpp"
#include "dsr/ops/systemd.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace dsr::app {
namespace {

namespace asio = boost::asio;

// Prints why the daemon cannot start, as its one line on stderr; returns the exit code.
int explain(const std::string& problem, int code) {
  fmt::print(stderr, "dsr-connector: {}\n", problem);
  return code;
}

// What the parts are built from, besides each other.
struct basis {
  const config& cfg;
  const credential_store& credentials;
  std::shared_ptr<clock> time;
  std::filesystem::path export_dir;
  store_keys keys;
  ops::metrics& counters;
  std::string owner;  // this process's lease owner id (owner_id)
  // Several daemons on one store (PostgreSQL): this one's part in them; null with SQLite.
  cluster_member* cluster = nullptr;
};

// PostgreSQL keeps a copy's export in the database, so that any daemon can deliver it (§8);
// SQLite's daemon keeps them in its export folder.
bool exports_in_store(const config& cfg) {
  return cfg.store.engine == store_engine_kind::postgresql;
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

// The export folder made ready: downloads a killed predecessor left unfinished are removed.
result<void> prepare_exports(const std::filesystem::path& dir) {
  if (auto r = prepare_export_dir(dir); !r) {
    return r;
  }
  if (const auto n = remove_partial_exports(dir); n > 0) {
    spdlog::get("main")->info("removed {} export download(s) left unfinished by the previous run",
                              n);
  }
  return {};
}

// This daemon among the others on a PostgreSQL store: alive while seen within a lease, beating
// three times a lease and at least every 5 s.
cluster_options cluster_settings(const config& cfg, const std::string& owner) {
  cluster_options o;
  o.owner = owner;
  o.name = worker_of(owner + "/");
  o.live_for = cfg.jobs.lease;
  o.beat_interval = std::clamp<std::chrono::milliseconds>(
      cfg.jobs.lease / 3, std::chrono::milliseconds(500), std::chrono::seconds(5));
  o.schema = postgres_schema_version();
  return o;
}

// Answers to committed inserts are built on the I/O threads, not on the store thread every insert
// waits for.
store_worker_options worker_options(const config& cfg, asio::any_io_executor io) {
  store_worker_options o{cfg.server.max_queued_jobs};
  o.complete_on = [io](std::function<void()> fn) { asio::post(io, std::move(fn)); };
  return o;
}

// The Exponea side: one limiter for every call of the process; the jobs' API, and the
// interactive one (preview, isTest) whose calls take their turn before the jobs'.
struct exponea_side {
  std::shared_ptr<exponea::limiter> spacing;
  std::unique_ptr<exponea::api> jobs;
  std::unique_ptr<exponea::api> interactive;
};

result<exponea_side> connect_exponea(asio::any_io_executor ex, const basis& b) {
  const auto& e = b.cfg.exponea;
  auto jobs_http = http::make_client(
      ex, {e.base_url, e.timeout, e.ca_file, answer_in_memory_limit, b.cfg.jobs.concurrency * 2});
  if (!jobs_http) {
    return make_failure(errc::invalid_input,
                        fmt::format("{}: [exponea] base_url / ca_file: {}", b.cfg.source.string(),
                                    jobs_http.error().detail));
  }
  exponea_side out;
  out.spacing = std::make_shared<exponea::limiter>(ex, e.max_requests_per_second);
  if (b.cluster != nullptr) {
    out.spacing->share(b.cluster->limit(call_limit::exponea));
  }
  // The jobs' calls come from the dispatcher's workers: those waiting for the same step share a
  // turn (a batch of audit events, one anonymize_bulk) when there is a backlog.
  exponea::api_options jobs_options{b.export_dir,       e.max_export_bytes,
                                    out.spacing,        exponea::priority::background,
                                    b.keys.export_seal, &b.counters};
  jobs_options.bulk = e.bulk_calls;
  out.jobs =
      exponea::make_api(std::move(*jobs_http), b.credentials, b.time, std::move(jobs_options));
  auto interactive_http =
      http::make_client(ex, {e.base_url, e.timeout, e.ca_file, answer_in_memory_limit});
  out.interactive =
      exponea::make_api(std::move(*interactive_http), b.credentials, b.time,
                        {b.export_dir, e.max_export_bytes, out.spacing,
                         exponea::priority::interactive, b.keys.export_seal, &b.counters});
  return out;
}

// Reporting to MineOS, when [mineos] api_base_url is set: the reporter, and the client of
// isTest's test status call (both on MineOS's API host). Both null when reporting is off.
struct mineos_side {
  std::unique_ptr<mineos::reporter> reporter;
  std::unique_ptr<http::client> test_http;
};

result<mineos_side> connect_mineos(asio::any_io_executor ex, const basis& b, async_store& store,
                                   std::shared_ptr<const mineos::file_links> links,
                                   std::function<std::shared_ptr<void>()> hold) {
  const auto& cfg = b.cfg;
  auto log = spdlog::get("main");
  if (!cfg.mineos.reporting()) {
    log->info(
        "[mineos] api_base_url is empty: outcomes are not reported; copy exports are kept "
        "for {} day(s)",
        cfg.store.export_retention_days);
    return mineos_side{};
  }
  auto client = http::make_client(ex, {cfg.mineos.api_base_url, cfg.exponea.timeout, ""});
  auto test_client = http::make_client(ex, {cfg.mineos.api_base_url, cfg.exponea.timeout, ""});
  if (!client || !test_client) {
    return make_failure(errc::invalid_input,
                        fmt::format("{}: [mineos] api_base_url: {}", cfg.source.string(),
                                    (!client ? client : test_client).error().detail));
  }
  mineos::reporter_options reporting{cfg.retry, b.export_dir};
  reporting.hold = std::move(hold);
  reporting.export_keys = b.keys.export_keys();
  reporting.exports_in_store = exports_in_store(cfg);
  reporting.metrics = &b.counters;
  reporting.inline_data_max_bytes = cfg.mineos.inline_data_max_bytes;
  reporting.links = std::move(links);
  reporting.file_link_ttl = cfg.mineos.file_link_ttl;
  reporting.max_requests_per_minute = cfg.mineos.max_requests_per_minute;
  if (b.cluster != nullptr) {
    reporting.shared = b.cluster->limit(call_limit::mineos);  // the minute is all daemons'
  }
  // A report call ends within [exponea] timeout_seconds (the MineOS client's too); with several
  // daemons a dead one's claims lapse with its leases.
  reporting.report_claim = cfg.store.engine == store_engine_kind::postgresql
                               ? cfg.jobs.lease
                               : cfg.exponea.timeout + std::chrono::seconds(5);
  reporting.integration_id = cfg.mineos.integration_id;
  mineos_side out;
  out.reporter = mineos::make_reporter(ex, store, std::move(*client), b.credentials, b.time,
                                       std::move(reporting));
  out.test_http = std::move(*test_client);
  if (cfg.mineos.public_url.empty()) {
    log->info(
        "[mineos] public_url is empty: copy exports are always sent inline, whatever their size");
  }
  return out;
}

// The workers that run the jobs; a finished job wakes the reporter, if there is one.
std::unique_ptr<dispatcher> make_jobs(asio::any_io_executor ex, const basis& b, async_store& store,
                                      exponea::api& api, mineos::reporter* reporter,
                                      std::function<std::shared_ptr<void>()> hold) {
  const auto& cfg = b.cfg;
  dispatcher_options dispatch;
  dispatch.owner = b.owner;
  dispatch.concurrency = cfg.jobs.concurrency;
  if (cfg.store.engine == store_engine_kind::postgresql) {
    // Another daemon takes a job over once its lease runs out (docs/contract.md §8): renewed
    // three times a lease while the run goes on, swept often.
    dispatch.lease = cfg.jobs.lease;
    dispatch.renew_interval = cfg.jobs.lease / 3;
    dispatch.sweep_interval =
        std::min<std::chrono::milliseconds>(cfg.jobs.lease / 4, std::chrono::seconds(5));
    dispatch.call_margin = cfg.exponea.timeout;
  } else {
    // One daemon per SQLite store: a lease outlives the longest flow (verification plus a few
    // calls); a killed daemon's leases are expired at the next start (app/open_store.hpp).
    dispatch.lease =
        cfg.exponea.verify_timeout + 10 * cfg.exponea.timeout + std::chrono::minutes(1);
  }
  dispatch.retry = cfg.retry;
  dispatch.flows = settings_for(cfg);
  dispatch.requests = cfg.requests;
  dispatch.export_dir = b.export_dir;
  dispatch.exports_in_store = exports_in_store(b.cfg);
  dispatch.hold = std::move(hold);
  dispatch.metrics = &b.counters;
  if (b.cluster != nullptr) {
    dispatch.cluster_hold = [c = b.cluster] { return c->hold(); };
    dispatch.share_breaker = b.cluster->breaker_sharer();
  }
  if (reporter != nullptr) {
    dispatch.on_finished = [reporter] { reporter->notify(); };
  } else {
    dispatch.forget_finished_subjects = true;  // nothing will acknowledge a report
  }
  return make_dispatcher(std::move(ex), store, api, b.time, std::move(dispatch));
}

// Large copies reach MineOS as signed links to GET /v1/files/... on `listen` (docs/contract.md §6):
// none without [mineos] public_url.
std::shared_ptr<const mineos::file_links> file_links_for(const config& cfg,
                                                         const std::string& store_key) {
  if (cfg.mineos.public_url.empty()) {
    return nullptr;
  }
  return std::make_shared<const mineos::file_links>(store_key, cfg.mineos.public_url);
}

void stop_if_any(mineos::reporter* reporter) {
  if (reporter != nullptr) {
    reporter->stop();
  }
}

// Wakes the workers and the reporter: a job was queued (or ended at intake and is due to be
// reported), retried or cancelled.
std::function<void()> waker(dispatcher& jobs, mineos::reporter* reporter) {
  return [&jobs, reporter] {
    jobs.notify();
    if (reporter != nullptr) {
      reporter->notify();
    }
  };
}

// Refused signatures and admin tokens are answered later and later per address, on timers.
http::auth_throttle::scheduler timers_on(asio::any_io_executor ex) {
  return [ex](std::chrono::milliseconds delay, std::function<void()> fn) {
    auto timer = std::make_shared<asio::steady_timer>(ex, delay);
    timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code&) { fn(); });
  };
}

mineos::intake_options intake_options_for(const config& cfg) {
  mineos::intake_options o;
  o.max_queued_jobs = cfg.server.max_queued_jobs;
  o.custom_field_ids = cfg.exponea.custom_field_ids;
  o.requests = cfg.requests;
  o.integration_id = cfg.mineos.integration_id;
  o.reporting = cfg.mineos.reporting();
  return o;
}

// Exponea asked every daemon to wait (a 429's Retry-After, docs/contract.md §8): preview and isTest
// say so rather than call.
http::response throttled(std::chrono::milliseconds d) {
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(d).count();
  return http::problem(
      503, fmt::format("Bloomreach asked to wait (429 Retry-After); try again in {} s", seconds),
      {{"Retry-After", std::to_string(seconds)}});
}

// isTest: the read-only checks against Exponea and MineOS's test status call.
mineos::intake::test_hook test_answerer(asio::any_io_executor ex, const basis& b, exponea::api& api,
                                        http::client* mineos, const exponea::limiter& spacing) {
  return [ex, &b, &api, mineos, &spacing](const mineos::test_call& t, http::responder done) {
    if (const auto d = spacing.blocked_for(); d.count() > 0) {
      done(throttled(d));
      return;
    }
    exponea::check_context ctx{mineos, &b.credentials, t};
    exponea::answer_is_test(ex, api, std::move(ctx), b.cfg, std::chrono::seconds(10),
                            std::move(done));
  };
}

// A preview: what Exponea holds on the subject, unless dispatch is paused.
mineos::intake::preview_hook previewer(asio::any_io_executor ex, const config& cfg,
                                       exponea::api& api, const dispatcher& jobs,
                                       const exponea::limiter& spacing) {
  return [ex, &cfg, &api, &jobs, &spacing](const mineos::subject_id& who, http::responder done) {
    if (const auto why = jobs.paused()) {
      done(http::problem(
          503, fmt::format("dispatch is paused: {}; fix the value and reload (SIGHUP)", *why),
          {{"Retry-After", std::to_string(cfg.retry.pause_probe.count())}}));
      return;
    }
    if (const auto d = spacing.blocked_for(); d.count() > 0) {
      done(throttled(d));
      return;
    }
    job subject;
    subject.subject_id_name = who.name;
    subject.subject = who.value;
    exponea::answer_preview(ex, api, customer_ids(subject, settings_for(cfg)),
                            std::chrono::seconds(50), std::move(done));
  };
}

ops::admin_options admin_options_for(const basis& b, http::auth_throttle& throttle,
                                     const dispatcher& jobs, const mineos::reporter* reporter,
                                     std::function<void()> wake) {
  ops::admin_options o;
  o.deadline_days = b.cfg.jobs.deadline_days;
  o.deadline_warning_days = b.cfg.jobs.deadline_warning_days;
  o.export_dir = b.export_dir;
  o.export_keys = b.keys.export_keys();
  o.exports_in_store = exports_in_store(b.cfg);
  o.throttle = &throttle;
  o.counters = &b.counters;
  o.paused = [&jobs] { return jobs.paused(); };
  o.reporting_paused = [reporter]() -> std::optional<std::string> {
    return reporter != nullptr ? reporter->paused() : std::nullopt;
  };
  o.on_change = std::move(wake);
  o.schema = b.cfg.store.engine == store_engine_kind::postgresql ? postgres_schema_version()
                                                                 : sqlite_schema_version();
  if (b.cluster != nullptr) {
    o.workers = [c = b.cluster] { return c->live_workers(); };
    o.cluster_problem = [c = b.cluster] { return c->schema_ahead(); };
  }
  return o;
}

// GET /v1/files/{id} on `listen`, when there are file links.
std::unique_ptr<mineos::file_downloads> add_downloads(
    http::router& router, const basis& b, async_store& store,
    std::shared_ptr<const mineos::file_links> links) {
  if (!links) {
    return nullptr;
  }
  auto downloads = std::make_unique<mineos::file_downloads>(
      store, std::move(links), b.export_dir, b.keys.export_keys(), make_system_clock(),
      exports_in_store(b.cfg));
  downloads->add_routes(router);
  return downloads;
}

http::server_options listener_options(const config& cfg,
                                      std::function<std::shared_ptr<void>()> hold) {
  http::server_options o;
  o.listen = cfg.server.listen;
  o.admin_listen = cfg.server.admin_listen;
  if (!cfg.server.tls_cert_file.empty()) {
    o.tls = http::tls_files{cfg.server.tls_cert_file, cfg.server.tls_key_file};
  }
  o.max_body_bytes = cfg.server.max_body_bytes;
  o.max_connections = cfg.server.max_connections;
  o.max_connections_per_client = cfg.server.max_connections_per_client;
  o.first_byte_timeout = cfg.server.first_byte_timeout;
  o.read_timeout = cfg.server.read_timeout;
  o.idle_timeout = cfg.server.idle_timeout;
  o.hold = std::move(hold);
  return o;
}

void log_listening(const config& cfg, const http::server& listener) {
  auto log = spdlog::get("main");
  const bool tls = !cfg.server.tls_cert_file.empty();
  const auto pub = listener.local_endpoint(http::listener::public_);
  log->info("listening on {}://{} for MineOS webhooks{}", tls ? "https" : "http", pub->to_string(),
            cfg.server.admin_listen ? "" : " and operator endpoints");
  if (const auto adm = listener.local_endpoint(http::listener::admin)) {
    log->info("listening on http://{} for operator endpoints", adm->to_string());
  }
  if (!tls) {
    log->warn(
        "serving plain HTTP on {}: a TLS-terminating proxy is expected in front of it for "
        "MineOS (or set [server] tls_cert_file and tls_key_file)",
        pub->to_string());
  }
}

void tell_systemd_stopping() {
  spdlog::get("main")->info("stopping: no new connections; finishing requests in flight");
  ops::notify("STOPPING=1");
}

}  // namespace

std::string version_text() {
  return fmt::format("dsr-connector {} (store schema: sqlite {}, postgresql {})", DSR_VERSION,
                     sqlite_schema_version(), postgres_schema_version());
}

// The parts are made in dependency order, each from the ones above it; the runtime stops them in
// the reverse order (app/runtime.hpp), and they are destroyed in the reverse order too.
int serve(const std::filesystem::path& config_file) {
  ops::setup_bootstrap_logging();
  const auto loaded = load_or_explain(config_file);
  if (!loaded) {
    return 2;
  }
  const config& cfg = *loaded;
  ops::setup_logging(cfg.log);
  auto log = spdlog::get("main");
  warn_about_settings(cfg);
  const auto credentials = load_credentials_or_explain(cfg);
  if (!credentials) {
    return 2;
  }
  raise_file_limit(cfg.server.max_connections, cfg.server.admin_listen ? 2 : 1);

  runtime rt({cfg.server.io_threads, cfg.jobs.shutdown_grace, true, true});
  // check_credentials made sure store_key is 64 hex digits.
  const auto store_key =
      crypto::from_hex(credentials->find(credential::store_key)->reveal()).value_or("");
  const auto store_password = credentials->find(credential::store_password);
  auto store =
      open_store(cfg, store_key, std::string(store_password ? store_password->reveal() : ""));
  if (!store) {
    // A schema from a newer build is the operator's to resolve (exit 2), like a configuration.
    return explain(store.error().detail, store.error().is(errc::store_schema_newer) ? 2 : 1);
  }
  for (const auto& w : deployment_warnings(cfg)) {
    log->warn("{}", w);
  }
  const auto export_dir = export_dir_for(cfg.store.path);
  if (auto r = prepare_exports(export_dir); !r) {
    return explain(r.error().detail, 1);
  }
  store_worker worker(std::move(*store), worker_options(cfg, rt.executor()));
  async_store jobs_db(worker, rt.executor());
  ops::metrics counters;
  const auto owner = owner_id(cfg.jobs.worker_name);
  std::unique_ptr<cluster_member> cluster;
  if (cfg.store.engine == store_engine_kind::postgresql) {
    cluster =
        std::make_unique<cluster_member>(rt.executor(), jobs_db, cluster_settings(cfg, owner));
    rt.on_stop([c = cluster.get()] { c->stop(); });
  }
  const basis base{
      cfg,      *credentials, make_system_clock(), export_dir, derive_store_keys(store_key),
      counters, owner,        cluster.get()};

  auto exponea = connect_exponea(rt.executor(), base);
  if (!exponea) {
    return explain(exponea.error().detail, 2);
  }
  const auto links = file_links_for(cfg, store_key);
  auto mineos = connect_mineos(rt.executor(), base, jobs_db, links, rt.holder("report"));
  if (!mineos) {
    return explain(mineos.error().detail, 2);
  }
  mineos::reporter* const reporter = mineos->reporter.get();
  rt.on_stop([reporter] { stop_if_any(reporter); });
  const auto jobs =
      make_jobs(rt.executor(), base, jobs_db, *exponea->jobs, reporter, rt.holder("job"));
  rt.on_stop([d = jobs.get()] { d->stop(); });
  const auto wake = waker(*jobs, reporter);

  http::auth_throttle throttle(make_system_clock(), timers_on(rt.executor()));
  mineos::intake intake(jobs_db, *credentials, make_system_clock(), intake_options_for(cfg));
  intake.set_auth_throttle(&throttle);
  intake.set_metrics(&counters);
  intake.on_accepted(wake);
  intake.on_test(test_answerer(rt.executor(), base, *exponea->interactive, mineos->test_http.get(),
                               *exponea->spacing));
  intake.on_preview(previewer(rt.executor(), cfg, *exponea->interactive, *jobs, *exponea->spacing));
  ops::admin_api admin(jobs_db, *credentials,
                       admin_options_for(base, throttle, *jobs, reporter, wake));
  http::router router;
  intake.add_routes(router);
  admin.add_routes(router);
  const auto downloads = add_downloads(router, base, jobs_db, links);
  auto listener =
      http::make_server(rt.executor(), listener_options(cfg, rt.holder("connection")), router);
  if (!listener) {
    // A certificate or key that cannot be used is a configuration error (exit 2); an address in
    // use is an environment error (exit 1).
    const bool bad_config = listener.error().is(errc::invalid_input);
    return explain((bad_config ? cfg.source.string() + ": " : "") + listener.error().detail,
                   bad_config ? 2 : 1);
  }
  rt.on_stop([l = listener->get()] { l->stop(); });
  rt.on_reload([to = reload_targets{cfg, *credentials, *exponea->spacing, *jobs, reporter, jobs_db,
                                    **listener}] { reload(to); });

  if (cluster) {
    cluster->start(exponea->spacing.get());
  }
  jobs->start();
  start_periodic_tasks(rt.executor(), {jobs_db, owner, cluster != nullptr, &counters}, cfg,
                       export_dir);
  if (reporter != nullptr) {
    reporter->start();
  }
  log_listening(cfg, **listener);
  rt.on_stop(tell_systemd_stopping);
  ops::notify("READY=1");
  rt.run();
  // Everything the listeners handed to the store is committed before the process ends.
  worker.stop();
  rt.close();
  log->info("stopped");
  return 0;
}

}  // namespace dsr::app
