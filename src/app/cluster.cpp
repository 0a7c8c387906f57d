#include "dsr/app/cluster.hpp"

#include "dsr/common/log.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace dsr::app {
namespace {

namespace asio = boost::asio;
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
using steady = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("cluster");
  return logger;
}

}  // namespace

struct cluster_member::state {
  state(asio::any_io_executor e, async_store& s, cluster_options o)
      : ex(std::move(e)), store(s), options(std::move(o)) {}

  asio::any_io_executor ex;
  async_store& store;
  cluster_options options;
  std::atomic<bool> stopping{false};

  mutable std::mutex mutex;
  std::optional<std::string> schema_ahead;
  steady::time_point breaker_until{};
  std::string breaker_reason;
  bool beats_failing = false;
};

cluster_member::cluster_member(asio::any_io_executor ex, async_store& store,
                               cluster_options options)
    : state_(std::make_shared<state>(std::move(ex), store, std::move(options))) {}

void cluster_member::start(exponea::limiter* spacing) {
  auto s = state_;
  auto* live = &live_;
  asio::co_spawn(
      s->ex,
      [s, live, spacing]() -> asio::awaitable<void> {
        asio::steady_timer timer(s->ex);
        const worker_beat beat{s->options.owner, s->options.name, DSR_VERSION, s->options.live_for};
        while (!s->stopping.load()) {
          const auto sent = steady::now();
          auto seen = co_await s->store.heartbeat(beat);
          if (!seen) {
            const std::lock_guard lock(s->mutex);
            if (!s->beats_failing) {
              log()->error(
                  "cannot reach the job store for the heartbeat: {}; this daemon counts {} live "
                  "daemon(s) as last seen",
                  seen.error().detail, live->load());
            }
            s->beats_failing = true;
          } else {
            std::optional<std::string> ahead;
            if (seen->schema > s->options.schema) {
              ahead = fmt::format(
                  "the job store has schema version {}, newer than this daemon's ({}): a newer "
                  "dsr-connector migrated it; this one claims no more jobs; upgrade it",
                  seen->schema, s->options.schema);
            } else {
              live->store(std::max<std::size_t>(1, seen->live_workers));
            }
            if (seen->calls_blocked_for.count() > 0 && spacing != nullptr) {
              spacing->hold(seen->calls_blocked_for);
            }
            const std::lock_guard lock(s->mutex);
            if (s->beats_failing) {
              log()->info("the job store answers the heartbeat again");
            }
            s->beats_failing = false;
            if (ahead && ahead != s->schema_ahead) {
              log()->error("{}", *ahead);
            }
            s->schema_ahead = ahead;
            s->breaker_until = sent + seen->breaker_open_for;
            s->breaker_reason = seen->breaker_reason;
          }
          timer.expires_after(s->options.beat_interval);
          co_await timer.async_wait(use_nothrow);
        }
      },
      log_if_thrown("cluster", "the heartbeat"));
}

void cluster_member::stop() {
  state_->stopping = true;
}

std::optional<std::string> cluster_member::schema_ahead() const {
  const std::lock_guard lock(state_->mutex);
  return state_->schema_ahead;
}

std::optional<std::string> cluster_member::hold() const {
  const std::lock_guard lock(state_->mutex);
  if (state_->schema_ahead) {
    return state_->schema_ahead;
  }
  if (steady::now() < state_->breaker_until) {
    return fmt::format("the circuit breaker is open on the cluster ({})", state_->breaker_reason);
  }
  return std::nullopt;
}

exponea::shared_limit cluster_member::limit(call_limit which) {
  auto s = state_;
  exponea::shared_limit out;
  out.take = [s, which](std::chrono::microseconds interval)
      -> asio::awaitable<std::optional<exponea::shared_turn>> {
    auto t = co_await s->store.take_turn(which, interval);
    if (!t) {
      co_return std::nullopt;
    }
    co_return exponea::shared_turn{t->wait, t->blocked};
  };
  out.block = [s, which](std::chrono::milliseconds d) {
    asio::co_spawn(
        s->ex,
        [s, d, which]() -> asio::awaitable<void> {
          if (auto r = co_await s->store.block_calls(which, d); !r) {
            log()->warn("cannot share {}'s Retry-After of {} ms with the other daemons: {}",
                        which == call_limit::mineos ? "MineOS" : "Exponea", d.count(),
                        r.error().detail);
          }
        },
        log_if_thrown("cluster", "sharing a Retry-After"));
  };
  out.daemons = [this] { return live_workers(); };
  return out;
}

std::function<void(std::chrono::milliseconds, std::string)> cluster_member::breaker_sharer() {
  auto s = state_;
  return [s](std::chrono::milliseconds d, std::string reason) {
    asio::co_spawn(
        s->ex,
        [s, d, reason = std::move(reason)]() -> asio::awaitable<void> {
          if (auto r = co_await s->store.set_breaker(d, reason); !r) {
            log()->warn("cannot share the circuit breaker with the other daemons: {}",
                        r.error().detail);
          }
        },
        log_if_thrown("cluster", "sharing the circuit breaker"));
  };
}

}  // namespace dsr::app
