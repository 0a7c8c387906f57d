#include "dsr/app/reload.hpp"

#include "dsr/common/log.hpp"
#include "dsr/credentials/credentials.hpp"
#include "dsr/exponea/limiter.hpp"
#include "dsr/http/server.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/dispatcher.hpp"
#include "dsr/mineos/reporter.hpp"
#include "dsr/ops/systemd.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>

#include <optional>
#include <string>
#include <vector>

namespace dsr::app {
namespace {

namespace asio = boost::asio;

asio::awaitable<void> set_max_size(async_store& store, std::uint64_t bytes) {
  if (auto r = co_await store.set_max_size(bytes); !r) {
    spdlog::get("main")->warn("[store] max_size_mb: {}", r.error().detail);
  }
}

// The sections whose changes wait for a restart.
std::vector<std::string> changes_for_later(const config& next, const config& running) {
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
  return later;
}

// The configuration file and credentials applied: what was, or nullopt (logged) when nothing was.
std::optional<std::string> reload_from(const reload_targets& to) {
  auto log = spdlog::get("main");
  config next;
  try {
    next = load_config(to.running.source);
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
  to.credentials.replace(std::move(fresh));
  const auto level = spdlog::level::from_str(next.log.level);
  spdlog::apply_all([level](const std::shared_ptr<spdlog::logger>& l) { l->set_level(level); });
  to.spacing.set_rate(next.exponea.max_requests_per_second);
  to.jobs.set_retry(next.retry);
  to.jobs.resume();
  if (to.reporter != nullptr) {
    to.reporter->resume();
  }
  asio::co_spawn(to.store.executor(), set_max_size(to.store, next.store.max_size_mb << 20),
                 log_if_thrown("main", "[store] max_size_mb"));
  if (const auto later = changes_for_later(next, to.running); !later.empty()) {
    log->warn("changes to {} take effect after a restart (systemctl restart is graceful)",
              fmt::format("{}", fmt::join(later, ", ")));
  }
  return std::string(
      "credentials, [log] level, [exponea] max_requests_per_second, [retry], "
      "[store] max_size_mb");
}

}  // namespace

void reload(const reload_targets& to) {
  auto log = spdlog::get("main");
  ops::notify("RELOADING=1");
  if (const auto applied = reload_from(to)) {
    log->info("reload done: {}", *applied);
  }
  if (!to.running.server.tls_cert_file.empty()) {
    if (auto r = to.listener.reload_tls(); !r) {
      log->error("{}; the previous certificate stays in use", r.error().detail);
    } else {
      log->info("TLS certificate and key reloaded from {}", to.running.server.tls_cert_file);
    }
  }
  ops::notify("READY=1");
}

}  // namespace dsr::app
