#include "dsr/app/periodic.hpp"

#include "dsr/common/log.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/ops/systemd.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace dsr::app {
namespace {

namespace asio = boost::asio;

inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> ping_watchdog(std::chrono::microseconds interval) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    ops::notify("WATCHDOG=1");
    timer.expires_after(interval / 2);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec) {
      co_return;
    }
  }
}

// The deadline warning: jobs near or past their legal due date.
asio::awaitable<void> warn_deadlines(async_store& store, deadline_policy d) {
  const std::chrono::milliseconds deadline = std::chrono::days(d.days);
  const std::chrono::milliseconds warning = std::chrono::days(d.warning_days);
  const auto now = std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
  const auto st = co_await store.stats(now, deadline, warning);
  if (!st) {
    spdlog::get("main")->error("cannot check deadlines: {}", st.error().detail);
  } else if (st->overdue > 0 || st->due_soon > 0) {
    spdlog::get("main")->warn(
        "deadlines: {} unfinished job(s) past their due date and {} due within {} day(s); "
        "their job views say \"deadline\": \"overdue\" or \"due_soon\" "
        "(GET /v1/requests?state=failed lists the failed ones)",
        st->overdue, st->due_soon, d.warning_days);
  }
}

// Exports whose link expired, and exports past export_retention_days (but never one behind a
// live link). Exports kept in the store (PostgreSQL) are deleted there; the folder is purged
// either way (a file an interrupted run left behind goes after the retention too).
asio::awaitable<void> expire_exports(async_store& store, const std::filesystem::path& dir,
                                     std::chrono::days retention, bool in_store) {
  auto log = spdlog::get("main");
  const auto now = std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
  if (const auto expired = co_await store.file_links(now, true); !expired) {
    log->error("cannot list expired file links: {}", expired.error().detail);
  } else {
    auto n = remove_exports(dir, *expired);
    if (in_store && !expired->empty()) {
      if (const auto gone = co_await store.delete_exports(*expired); !gone) {
        log->error("cannot delete expired exports: {}", gone.error().detail);
      } else {
        n += *gone;
      }
    }
    if (n > 0) {
      log->info("deleted {} export(s) whose file link expired", n);
    }
  }
  if (const auto live = co_await store.file_links(now, false); !live) {
    log->error("cannot list live file links: {}", live.error().detail);
  } else {
    const auto cutoff = std::filesystem::file_time_type::clock::now() - retention;
    auto n = purge_exports(dir, cutoff, *live);
    if (in_store) {
      const auto before = now - std::chrono::duration_cast<millis>(retention);
      if (const auto gone = co_await store.purge_exports(before, *live); !gone) {
        log->error("cannot purge old exports: {}", gone.error().detail);
      } else {
        n += *gone;
      }
    }
    if (n > 0) {
      log->info("deleted {} export(s) older than {} day(s)", n, retention.count());
    }
  }
}

// Finished jobs' metadata past retention_days.
asio::awaitable<void> purge_jobs(async_store& store, std::chrono::days job_retention) {
  const auto now = std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
  const auto before = now - std::chrono::duration_cast<millis>(job_retention);
  if (const auto n = co_await store.purge_finished(before); !n) {
    spdlog::get("main")->error("cannot purge old jobs: {}", n.error().detail);
  } else if (*n > 0) {
    spdlog::get("main")->info("purged {} finished job(s) older than {} day(s)", *n,
                              job_retention.count());
  }
}

// Runs `task` at once and then every `period`. Shared (several daemons on one store): it asks
// the store every twelfth of a period whether the task is due and no other daemon holds it, and
// runs it only then (store.hpp claim_periodic), so that one daemon at a time runs it, at most
// once a period.
asio::awaitable<void> every(periodic_runner who, std::string task, std::chrono::milliseconds period,
                            std::function<asio::awaitable<void>()> run) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  bool failing = false;
  for (;;) {
    bool mine = true;
    if (who.shared) {
      const auto claimed = co_await who.store.claim_periodic(
          task, who.owner, period,
          std::min<std::chrono::milliseconds>(period, std::chrono::minutes(10)));
      if (!claimed && !failing) {
        spdlog::get("main")->error("cannot ask the job store whether to run {}: {}", task,
                                   claimed.error().detail);
      }
      failing = !claimed;
      mine = claimed && *claimed;
    }
    if (mine) {
      co_await run();
      if (who.metrics != nullptr) {
        who.metrics->periodic_run(task);
      }
    }
    timer.expires_after(who.shared ? period / 12 : period);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec) {
      co_return;
    }
  }
}

}  // namespace

void start_periodic_tasks(boost::asio::any_io_executor executor, periodic_runner who,
                          const config& cfg, const std::filesystem::path& export_dir) {
  auto& store = who.store;
  const bool in_store = cfg.store.engine == store_engine_kind::postgresql;
  const std::chrono::days retention(cfg.store.export_retention_days);
  const std::chrono::days job_retention(cfg.store.retention_days);
  const deadline_policy d{cfg.jobs.deadline_days, cfg.jobs.deadline_warning_days};
  asio::co_spawn(executor,
                 every(who, "export_expiry", std::chrono::hours(1),
                       [&store, export_dir, retention, in_store] {
                         return expire_exports(store, export_dir, retention, in_store);
                       }),
                 log_if_thrown("main", "the hourly export expiry"));
  asio::co_spawn(executor,
                 every(who, "retention_purge", std::chrono::hours(1),
                       [&store, job_retention] { return purge_jobs(store, job_retention); }),
                 log_if_thrown("main", "the hourly retention purge"));
  asio::co_spawn(executor,
                 every(who, "deadline_warning", std::chrono::hours(24),
                       [&store, d] { return warn_deadlines(store, d); }),
                 log_if_thrown("main", "the daily deadline check"));
  if (const auto interval = ops::watchdog_interval()) {
    asio::co_spawn(executor, ping_watchdog(*interval), log_if_thrown("main", "the watchdog ping"));
    spdlog::get("main")->info(
        "systemd watchdog: WATCHDOG=1 every {} ms",
        std::chrono::duration_cast<std::chrono::milliseconds>(*interval / 2).count());
  }
}

}  // namespace dsr::app
