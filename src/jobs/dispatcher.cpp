#include "dsr/jobs/dispatcher.hpp"

#include "dsr/common/log.hpp"
#include "dsr/jobs/backoff.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/store_call.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <sys/stat.h>
#include <fstream>

namespace dsr {
namespace {

namespace asio = boost::asio;
using kind = flow_outcome::kind;
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("jobs");
  return logger;
}

class store_journal final : public journal {
 public:
  store_journal(job_queue& q, std::int64_t id, std::string owner, const clock& c)
      : queue_(q), id_(id), owner_(std::move(owner)), clock_(c) {}

  asio::awaitable<result<void>> record(std::string step, std::string result_text) override {
    job_step s{clock_.now(), std::move(step), std::move(result_text)};
    auto fn = [id = id_, owner = owner_, s = std::move(s)](job_store& store) {
      return store.append_step(id, owner, s);
    };
    co_return co_await store_call<result<void>>(queue_, std::move(fn));
  }

 private:
  job_queue& queue_;
  std::int64_t id_;
  std::string owner_;
  const clock& clock_;
};

class timer_clock final : public flow_clock {
 public:
  explicit timer_clock(const clock& c) : clock_(c) {}
  time_point now() const override { return clock_.now(); }
  asio::awaitable<void> sleep(std::chrono::milliseconds d) override {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(use_nothrow);
  }

 private:
  const clock& clock_;
};

std::string_view status_for(job_state s) {
  switch (s) {
    case job_state::completed:
      return "Completed";
    case job_state::user_not_found:
      return "UserNotFound";
    default:
      return "Failed";
  }
}

class dispatcher_impl final : public dispatcher {
 public:
  dispatcher_impl(asio::any_io_executor ex, job_queue& queue, exponea::api& api,
                  std::shared_ptr<clock> clock, dispatcher_options o)
      : strand_(asio::make_strand(ex)),
        queue_(queue),
        api_(api),
        clock_(std::move(clock)),
        options_(std::move(o)),
        random_(std::random_device{}()) {
    for (unsigned i = 0; i < options_.concurrency; ++i) {
      timers_.emplace_back(strand_);
    }
  }

  void start() override {
    for (unsigned i = 0; i < options_.concurrency; ++i) {
      asio::co_spawn(strand_, worker(i), [](const std::exception_ptr& e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            log()->error("a job worker stopped: {}", ex.what());
          }
        }
      });
    }
    log()->info("dispatching with {} worker(s), owner {}", options_.concurrency, options_.owner);
  }

  void notify() override {
    asio::post(strand_, [this] {
      for (auto& t : timers_) {
        if (t.cancel_one() > 0) {
          return;  // one idle worker is enough for one new job
        }
      }
    });
  }

  void stop() override {
    asio::post(strand_, [this] {
      stopping_ = true;
      for (auto& t : timers_) {
        t.cancel();
      }
    });
  }

 private:
  asio::awaitable<void> worker(unsigned n) {
    while (!stopping_) {
      const auto now = clock_->now();
      auto claim = [owner = options_.owner, now, lease = options_.lease](job_store& s) {
        return s.claim_next(owner, now, lease);
      };
      auto claimed = co_await store_call<result<std::optional<job>>>(queue_, std::move(claim));
      if (!claimed) {
        log()->error("cannot claim a job: {}", claimed.error().detail);
      }
      if (!claimed || !*claimed) {
        timers_[n].expires_after(options_.poll_interval);
        co_await timers_[n].async_wait(use_nothrow);
        continue;
      }
      co_await run(std::move(**claimed));
    }
  }

  asio::awaitable<void> run(job j) {
    const auto started = clock_->now();
    log()->info("[R {}] {} started (attempt {})", j.request_id, to_string(j.op), j.attempts + 1);
    store_journal journal(queue_, j.id, options_.owner, *clock_);
    timer_clock time(*clock_);
    flow_outcome outcome;
    // g++ 12 miscompiles co_await in a conditional expression: plain if/else. A bug or an
    // unexpected answer must not take the worker down: it becomes a retry of this job.
    try {
      if (j.op == operation::delete_) {
        outcome = co_await run_delete(j, api_, journal, time, options_.flows);
      } else {
        auto file = export_path(options_.export_dir, j.id);
        outcome = co_await run_copy(j, api_, journal, time, options_.flows, std::move(file));
      }
    } catch (const std::exception& e) {
      log()->error("[R {}] internal error: {}", j.request_id, e.what());
      outcome =
          flow_outcome{kind::retry, fmt::format("internal error: {}", e.what()), "", std::nullopt};
    }
    if (outcome.result == kind::interrupted) {
      log()->warn("[R {}] stopped: {}", j.request_id, outcome.message);
      co_return;
    }
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const auto now = clock_->now();
    const auto next = decide(j, outcome, options_.retry, now, uniform(random_));
    // The history says how each attempt ended, in words an operator can act on.
    const std::string summary = is_active(next.state)
                                    ? fmt::format("retry: {}", next.outcome_message)
                                    : fmt::format("{}: {}", next.outcome, next.outcome_message);
    if (auto r = co_await journal.record("attempt " + std::to_string(next.attempts), summary); !r) {
      log()->warn("[R {}] stopped: {}", j.request_id, r.error().detail);
      co_return;
    }
    auto release = [id = j.id, owner = options_.owner, next, now](job_store& s) {
      return s.release(id, owner, next, now);
    };
    auto released = co_await store_call<result<void>>(queue_, std::move(release));
    if (!released) {
      log()->error("[R {}] cannot record the outcome: {}", j.request_id, released.error().detail);
      co_return;
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(now - started);
    if (is_active(next.state)) {
      log()->warn(
          "[R {}] {} attempt {} failed, retrying in {} s: {}", j.request_id, to_string(j.op),
          next.attempts,
          std::chrono::duration_cast<std::chrono::seconds>(next.next_attempt_at - now).count(),
          outcome.message);
    } else {
      if (options_.on_finished) {
        options_.on_finished();
      }
      log()->info(
          "[R {}] finished: operation={} outcome={} state={} duration={:.3f}s attempts={}{}",
          j.request_id, to_string(j.op), next.outcome, to_string(next.state), took.count() / 1000.0,
          next.attempts,
          next.state == job_state::failed ? fmt::format(" reason=\"{}\"", next.outcome_message)
                                          : "");
    }
  }

  asio::strand<asio::any_io_executor> strand_;
  job_queue& queue_;
  exponea::api& api_;
  std::shared_ptr<clock> clock_;
  dispatcher_options options_;
  std::vector<asio::steady_timer> timers_;
  bool stopping_ = false;
  std::mt19937_64 random_;
};

}  // namespace

job_release decide(const job& j, const flow_outcome& o, const retry_config& retry, time_point now,
                   double random01) {
  job_release next;
  next.attempts = j.attempts + 1;
  next.next_attempt_at = now;
  const auto terminal = [&](job_state s, std::string message) {
    next.state = s;
    next.outcome = std::string(status_for(s));
    next.outcome_message = std::move(message);
    return next;
  };
  switch (o.result) {
    case kind::completed:
      return terminal(job_state::completed, o.message);
    case kind::user_not_found:
      return terminal(job_state::user_not_found, o.message);
    case kind::failed:
    case kind::rejected:
      return terminal(job_state::failed, o.message);
    case kind::interrupted:
      next.attempts = j.attempts;
      next.state = job_state::queued;
      return next;
    case kind::retry:
      break;
  }
  if (next.attempts >= retry.max_attempts) {
    return terminal(job_state::failed, fmt::format("gave up after {} attempts; last error: {}",
                                                   next.attempts, o.message));
  }
  auto delay = full_jitter_backoff(retry, j.attempts, random01);
  if (o.retry_after) {
    delay = std::max(
        delay, std::min(*o.retry_after,
                        std::chrono::duration_cast<std::chrono::milliseconds>(retry.max_backoff)));
  }
  next.state = job_state::retrying;
  next.next_attempt_at = now + delay;
  next.outcome_message = o.message;
  return next;
}

std::unique_ptr<dispatcher> make_dispatcher(asio::any_io_executor executor, job_queue& queue,
                                            exponea::api& api, std::shared_ptr<clock> clock,
                                            dispatcher_options options) {
  return std::make_unique<dispatcher_impl>(std::move(executor), queue, api, std::move(clock),
                                           std::move(options));
}

}  // namespace dsr
