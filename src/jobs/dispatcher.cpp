#include "dsr/jobs/dispatcher.hpp"

// The workers that claim, run and release jobs, on one strand. What an outcome means for the
// job and for dispatch (the retry table, `decide`, the gate) is pure policy, in
// dispatch_policy.cpp.

#include "dsr/common/log.hpp"
#include "dsr/config/request_types.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/kept_exports.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

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
  struct lease_terms {
    std::chrono::milliseconds lease;   // what a renewal extends the lease to
    std::chrono::milliseconds margin;  // what a call needs left: [exponea] timeout_seconds
  };
  store_journal(async_store& store, std::int64_t id, std::string owner, const clock& c,
                lease_terms terms)
      : store_(store), id_(id), owner_(std::move(owner)), clock_(c), terms_(terms) {}

  asio::awaitable<result<void>> record(step_name step, std::string result_text) override {
    const job_step line{clock_.now(), std::move(step), std::move(result_text)};
    co_return co_await store_.append_step(id_, owner_, line);
  }

  // The time left is the store's (its clock), counted here from before the renewal was sent on
  // this host's monotonic clock: the answer's trip back only makes it err short.
  asio::awaitable<result<void>> before_call() override {
    const auto sent = std::chrono::steady_clock::now();
    auto left = co_await store_.renew_lease(id_, owner_, clock_.now(), terms_.lease);
    if (!left) {
      co_return left.error();
    }
    const auto ends = sent + *left;
    if (ends - std::chrono::steady_clock::now() <= terms_.margin) {
      co_return make_failure(
          errc::lease_lost,
          fmt::format("job {}: less than timeout_seconds ({} ms) of its lease is left for the next "
                      "call; it waits for another run",
                      id_, terms_.margin.count()));
    }
    co_return result<void>{};
  }

 private:
  async_store& store_;
  std::int64_t id_;
  std::string owner_;
  const clock& clock_;
  lease_terms terms_;
};

// Sleeps on the dispatcher's strand; a stop cancels every sleeper so that flows stop promptly.
class timer_clock final : public flow_clock {
 public:
  timer_clock(const clock& c, asio::strand<asio::any_io_executor> strand, const bool& stopping,
              std::set<asio::steady_timer*>& sleepers)
      : clock_(c), timer_(std::move(strand)), stopping_(stopping), sleepers_(sleepers) {}
  time_point now() const override { return clock_.now(); }
  bool stopping() const override { return stopping_; }
  asio::awaitable<void> sleep(std::chrono::milliseconds d) override {
    if (stopping_) {
      co_return;
    }
    timer_.expires_after(d);
    sleepers_.insert(&timer_);
    co_await timer_.async_wait(use_nothrow);
    sleepers_.erase(&timer_);
  }

 private:
  const clock& clock_;
  asio::steady_timer timer_;
  const bool& stopping_;
  std::set<asio::steady_timer*>& sleepers_;
};

class dispatcher_impl final : public dispatcher {
 public:
  dispatcher_impl(asio::any_io_executor ex, async_store& store, exponea::api& api,
                  std::shared_ptr<clock> clock, dispatcher_options o)
      : strand_(asio::make_strand(ex)),
        store_(store),
        api_(api),
        clock_(std::move(clock)),
        options_(std::move(o)),
        gate_(std::chrono::duration_cast<std::chrono::milliseconds>(options_.retry.pause_probe),
              options_.breaker),
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
    asio::co_spawn(strand_, sweep(), log_if_thrown("jobs", "the lease sweep"));
    if (options_.renew_interval.count() > 0) {
      asio::co_spawn(strand_, renew(), log_if_thrown("jobs", "the lease renewal"));
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
      for (auto* t : sleepers_) {
        t->cancel();
      }
    });
  }

  void resume() override {
    asio::post(strand_, [this] {
      if (gate_.holding()) {
        log()->info("credentials reloaded: dispatch resumes");
      }
      gate_.resume();
      publish();
      wake_all();
    });
  }

  void set_retry(const retry_config& retry) override {
    asio::post(strand_, [this, retry] {
      options_.retry = retry;
      gate_.set_pause_probe(
          std::chrono::duration_cast<std::chrono::milliseconds>(retry.pause_probe));
    });
  }

  std::optional<std::string> paused() const override {
    const std::lock_guard lock(published_mutex_);
    return published_pause_;
  }

 private:
  void wake_all() {
    for (auto& t : timers_) {
      t.cancel();
    }
  }

  // Copies the pause for readers on other threads (/readyz).
  void publish() {
    const std::lock_guard lock(published_mutex_);
    published_pause_ = gate_.paused();
  }

  asio::awaitable<void> wait(unsigned n, std::chrono::milliseconds d) {
    if (stopping_) {
      co_return;  // stop() cancelled the timers before this wait began
    }
    timers_[n].expires_after(std::clamp(d, std::chrono::milliseconds(1), options_.poll_interval));
    co_await timers_[n].async_wait(use_nothrow);
  }

  // A job whose release could not be recorded (the store failed) keeps its lease; once that
  // expires, the job goes back to the queue and resumes from its journal.
  asio::awaitable<void> sweep() {
    asio::steady_timer timer(strand_);
    while (!stopping_) {
      timer.expires_after(options_.sweep_interval);
      co_await timer.async_wait(use_nothrow);
      if (stopping_) {
        break;
      }
      const auto now = clock_->now();
      auto expired = co_await store_.expire_leases(now);
      if (expired && *expired > 0) {
        log()->warn("{} job(s) whose lease ran out go back to the queue", *expired);
        wake_all();
      }
    }
  }

  // The heartbeat of the runs in progress: while this process lives, its jobs stay its own.
  asio::awaitable<void> renew() {
    asio::steady_timer timer(strand_);
    while (!stopping_) {
      timer.expires_after(options_.renew_interval);
      co_await timer.async_wait(use_nothrow);
      if (stopping_ || running_.empty()) {
        continue;
      }
      std::vector<std::string> owners;
      for (const auto& [id, owner] : running_) {
        owners.push_back(owner);
      }
      const auto now = clock_->now();
      auto renewed = co_await store_.renew_leases(owners, now, options_.lease);
      if (!renewed) {
        log()->warn("cannot renew the leases of {} running job(s): {}", running_.size(),
                    renewed.error().detail);
      }
    }
  }

  asio::awaitable<void> worker(unsigned n) {
    while (!stopping_) {
      const auto now = clock_->now();
      const auto verdict = gate_.ask(now);
      if (!verdict.go) {
        co_await wait(n,
                      std::chrono::duration_cast<std::chrono::milliseconds>(verdict.wake_at - now));
        continue;
      }
      if (options_.cluster_hold) {
        const auto why = options_.cluster_hold();
        note_hold(why);
        if (why) {
          if (verdict.probe) {
            gate_.probe_unused();
          }
          co_await wait(n, options_.poll_interval);
          continue;
        }
      }
      // Held from the claim on: a stop that begins while the claim is in the store waits for it
      // to come back, and for the job to be run or given back.
      auto held = options_.hold ? options_.hold() : nullptr;
      const auto owner = fmt::format("{}/{}", options_.owner, ++claims_);
      auto claimed = co_await store_.claim(owner, now, options_.lease);
      if (claimed) {
        note_claim(nullptr);
      } else {
        const failure why = claimed.error();
        note_claim(&why);
      }
      if (!claimed || !*claimed) {
        if (verdict.probe) {
          gate_.probe_unused();
        }
        held.reset();
        co_await wait(n, options_.poll_interval);
        continue;
      }
      if (stopping_) {
        // The stop began while the claim was in the store: the job goes back untouched.
        if (verdict.probe) {
          gate_.probe_unused();
        }
        co_await give_back(**claimed);
        continue;
      }
      // The boundary of a job: a bug that escapes its run is logged and the worker goes on; the
      // job keeps its lease until the sweep returns it to the queue, to resume from its journal.
      const auto request_id = (*claimed)->request_id;
      std::exception_ptr failed;
      try {
        co_await run(std::move(**claimed), verdict.probe);
      } catch (...) {
        failed = std::current_exception();
      }
      if (failed) {
        if (verdict.probe) {
          gate_.probe_unused();
        }
        log_if_thrown("jobs", fmt::format("[R {}] the run of this job", request_id))(failed);
        held.reset();
        co_await wait(n, options_.poll_interval);
      }
    }
  }

  // A completed copy's export goes into the store before the job is released, so that any daemon
  // can deliver it; its file goes once it is there. A store that fails stops the job quietly,
  // still leased: the sweep returns it to the queue and the copy runs again.
  asio::awaitable<flow_outcome> keep_in_store(const job& j, std::filesystem::path file,
                                              flow_outcome done) {
    const auto now = clock_->now();
    if (auto kept = co_await keep_export(store_, file, j.id, j.lease_owner, now); !kept) {
      co_return flow_outcome{
          kind::interrupted,
          fmt::format("cannot keep the export in the store: {}", kept.error().detail), "",
          std::nullopt};
    }
    std::error_code ec;
    std::filesystem::remove(file, ec);
    co_return done;
  }

  // A job claimed as a stop began: queued again as it was, no attempt used, nothing journalled.
  // Should the store fail, the lease runs out and the sweep (here or on the next start) returns it.
  asio::awaitable<void> give_back(const job& j) {
    job_release next;
    next.state = job_state::queued;
    next.attempts = j.attempts;
    next.next_attempt_at = clock_->now();
    if (auto r = co_await store_.finish(j.id, j.lease_owner, next, next.next_attempt_at); !r) {
      log()->warn(
          "[R {}] claimed as the stop began and cannot be given back ({}): it returns to "
          "the queue when its lease runs out",
          j.request_id, r.error().detail);
      co_return;
    }
    log()->info("[R {}] back in the queue: claimed as the stop began", j.request_id);
  }

  // A graceful stop waits for this job to reach a step boundary (or for the grace to end): the
  // worker holds the stop from the job's claim on.
  asio::awaitable<void> run(job j, bool probe) {
    const auto started = clock_->now();
    log()->info("[R {}] {} started (attempt {}){}", j.request_id, to_string(j.op), j.attempts + 1,
                probe ? "; let through to test whether Exponea accepts the calls again" : "");
    store_journal journal(store_, j.id, j.lease_owner, *clock_,
                          {options_.lease, options_.call_margin});
    running_[j.id] = j.lease_owner;
    struct forget_run {
      std::map<std::int64_t, std::string>& running;
      std::int64_t id;
      ~forget_run() { running.erase(id); }
    } forget{running_, j.id};
    timer_clock time(*clock_, strand_, stopping_, sleepers_);
    flow_outcome outcome;
    // g++ 12 miscompiles co_await in a conditional expression: plain if/else. A bug or an
    // unexpected answer must not take the worker down: it becomes a retry of this job.
    std::optional<operation> rerouted;
    try {
      if (j.subject.empty()) {
        // Sealed with another store_key, or damaged: never run a job for nobody.
        outcome = flow_outcome{kind::failed,
                               "the subject's ID cannot be read from the store (was store_key "
                               "changed?); restore the previous store_key",
                               "", std::nullopt};
      } else if (j.op == operation::copy) {
        auto file = export_path(options_.export_dir, j.id);
        auto target = file;
        outcome = co_await run_copy(j, api_, journal, time, options_.flows, std::move(target));
        if (outcome.result == kind::completed && options_.exports_in_store) {
          outcome = co_await keep_in_store(j, std::move(file), std::move(outcome));
        }
      } else {
        // A Delete-URL job is routed as it runs: a right the configuration did not handle when
        // it arrived may be handled now (a retried job), and an erase is never run for a right
        // that is no longer in erase_types.
        const mineos::right r{j.right.id, j.right.name, j.right.type};
        const auto route = mineos::classify(r, options_.requests);
        if (route == mineos::route::unhandled) {
          outcome = flow_outcome{kind::failed, mineos::unhandled_message(r), "", std::nullopt};
        } else {
          const auto op = route == mineos::route::opt_out ? operation::opt_out : operation::delete_;
          if (op != j.op) {
            log()->info("[R {}] routed as {} (was {}): [requests] changed", j.request_id,
                        to_string(op), to_string(j.op));
            rerouted = op;
            j.op = op;
          }
          if (op == operation::opt_out) {
            outcome = co_await run_opt_out(j, api_, journal, time, options_.flows);
          } else {
            outcome = co_await run_delete(j, api_, journal, time, options_.flows);
          }
        }
      }
    } catch (const std::exception& e) {
      log()->error("[R {}] internal error: {}", j.request_id, e.what());
      outcome = flow_outcome{kind::retry, fmt::format("internal error: {}", e.what()), "",
                             std::nullopt, exponea::retry_reason::internal};
    }
    const auto& row = policy_for(outcome.result);
    const auto now = clock_->now();
    if (row.what == handling::drop) {
      log()->warn("[R {}] stopped: {}", j.request_id, outcome.message);
      gate_.record(row, probe, now, outcome.value, outcome.message);
      co_return;
    }
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    auto next = decide(j, outcome, options_.retry, now, uniform(random_));
    next.op = rerouted;
    // The history says how each attempt ended, in words an operator can act on.
    step_name step = step_name::attempt(next.attempts);
    std::string summary = fmt::format("{}: {}", to_string(next.outcome), next.outcome_message);
    if (row.what == handling::retry && is_active(next.state)) {
      summary = fmt::format("retry: {}", next.outcome_message);
    } else if (row.what == handling::pause) {
      step = step_kind::paused;
      summary = fmt::format("{} (the job waits; no attempt used)", outcome.message);
    } else if (row.what == handling::requeue) {
      step = step_kind::stopped;
      summary = outcome.message;
    }
    if (auto r = co_await journal.record(step, summary); !r) {
      log()->warn("[R {}] stopped: {}", j.request_id, r.error().detail);
      co_return;
    }
    auto released = co_await store_.finish(j.id, j.lease_owner, next, now);
    // The store may be failing for a moment (disk full): try again for a while before leaving
    // the job to the lease sweep.
    for (int again = 0;
         !released && !released.error().is(errc::lease_lost) && again < 30 && !stopping_; ++again) {
      log()->error("[R {}] cannot record the outcome, retrying: {}", j.request_id,
                   released.error().detail);
      asio::steady_timer pause(strand_, std::chrono::seconds(1));
      co_await pause.async_wait(use_nothrow);
      released = co_await store_.finish(j.id, j.lease_owner, next, now);
    }
    if (!released) {
      log()->error("[R {}] cannot record the outcome: {}", j.request_id, released.error().detail);
      co_return;
    }
    note_gate(row, probe, now, outcome);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(now - started);
    if (row.what == handling::pause || row.what == handling::requeue) {
      log()->info("[R {}] back in the queue: {}", j.request_id, outcome.message);
    } else if (is_active(next.state)) {
      if (options_.metrics != nullptr) {
        options_.metrics->retry(to_string(outcome.reason));
      }
      log()->warn(
          "[R {}] {} attempt {} failed, retrying in {} s: {}", j.request_id, to_string(j.op),
          next.attempts,
          std::chrono::duration_cast<std::chrono::seconds>(next.next_attempt_at - now).count(),
          outcome.message);
    } else {
      if (options_.forget_finished_subjects) {
        if (auto r = co_await store_.forget_subject(j.id); !r) {
          log()->error("[R {}] cannot replace the e-mail by its hash: {}", j.request_id,
                       r.error().detail);
        }
      }
      if (options_.on_finished) {
        options_.on_finished();
      }
      if (options_.metrics != nullptr) {
        options_.metrics->job_finished(to_string(j.op), to_string(next.outcome),
                                       now - j.received_at);
      }
      log()->info(
          "[R {}] finished: operation={} outcome={} state={} duration={:.3f}s attempts={}{}",
          j.request_id, to_string(j.op), to_string(next.outcome), to_string(next.state),
          took.count() / 1000.0, next.attempts,
          next.state == job_state::failed ? fmt::format(" reason=\"{}\"", next.outcome_message)
                                          : "");
    }
  }

  // One line when claims start failing (the store is away) and one when they work again, not one
  // per worker and poll.
  void note_claim(const failure* failed) {
    if (failed != nullptr && !claims_failing_) {
      log()->error("cannot claim jobs: {}; the workers try again every {} ms", failed->detail,
                   options_.poll_interval.count());
    } else if (failed == nullptr && claims_failing_) {
      log()->info("claiming jobs again");
    }
    claims_failing_ = failed != nullptr;
  }

  // One line when the cluster holds claims back, and one when it lets them go again.
  void note_hold(const std::optional<std::string>& why) {
    if (why && why != held_by_cluster_) {
      log()->warn("not claiming jobs: {}", *why);
    } else if (!why && held_by_cluster_) {
      log()->info("claiming jobs again: {} no longer holds", *held_by_cluster_);
    }
    held_by_cluster_ = why;
  }

  // Feeds the outcome to the gate and says what changed.
  void note_gate(const policy_row& row, bool probe, time_point now, const flow_outcome& outcome) {
    if (outcome.result == kind::retry && outcome.reason == exponea::retry_reason::rate_limited) {
      gate_.throttled(probe, now);
      return;
    }
    const auto before = gate_.holding();
    const auto breaker_before = gate_.breaker_open_for();
    const bool opened = gate_.record(row, probe, now, outcome.value, outcome.message);
    const auto after = gate_.holding();
    const auto breaker_after = gate_.breaker_open_for();
    publish();
    if (options_.share_breaker) {
      if (breaker_after && (!breaker_before || probe)) {
        options_.share_breaker(*breaker_after, after.value_or(""));
      } else if (breaker_before && !breaker_after) {
        options_.share_breaker(std::chrono::milliseconds(0), "");
      }
    }
    if (opened) {
      log()->info("dispatch resumes: {}", before.value_or("the gate opened"));
      wake_all();
    } else if (after && after != before) {
      if (row.what == handling::pause) {
        log()->error(
            "dispatch paused: {}. Jobs stay queued without using attempts; fix the value and "
            "reload (SIGHUP). One job is let through every {} s to test it.",
            *after,
            std::chrono::duration_cast<std::chrono::seconds>(options_.retry.pause_probe).count());
      } else {
        log()->warn("dispatch held back: {}", *after);
      }
    }
  }

  asio::strand<asio::any_io_executor> strand_;
  async_store& store_;
  bool claims_failing_ = false;                 // on the strand
  std::optional<std::string> held_by_cluster_;  // on the strand
  exponea::api& api_;
  std::shared_ptr<clock> clock_;
  dispatcher_options options_;
  dispatch_gate gate_;
  std::vector<asio::steady_timer> timers_;
  // The runs in progress (on the strand): job id -> the lease owner of that run.
  std::map<std::int64_t, std::string> running_;
  std::uint64_t claims_ = 0;
  std::set<asio::steady_timer*> sleepers_;
  bool stopping_ = false;
  std::mt19937_64 random_;
  mutable std::mutex published_mutex_;
  std::optional<std::string> published_pause_;
};

}  // namespace

std::unique_ptr<dispatcher> make_dispatcher(asio::any_io_executor executor, async_store& store,
                                            exponea::api& api, std::shared_ptr<clock> clock,
                                            dispatcher_options options) {
  return std::make_unique<dispatcher_impl>(std::move(executor), store, api, std::move(clock),
                                           std::move(options));
}

}  // namespace dsr
