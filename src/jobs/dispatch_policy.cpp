#include "dsr/jobs/dispatcher.hpp"

// The dispatcher's pure policy: the retry table, `decide` and the dispatch gate. No I/O, no
// coroutine, no clock but the times given; the workers that apply it are in dispatcher.cpp.

#include "dsr/jobs/backoff.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace dsr {
namespace {

using kind = flow_outcome::kind;

job_outcome status_for(job_state s) {
  switch (s) {
    case job_state::completed:
      return job_outcome::completed;
    case job_state::user_not_found:
      return job_outcome::user_not_found;
    default:
      return job_outcome::failed;
  }
}

constexpr std::array<policy_row, 7> policy_table{{
    {kind::completed, handling::finish, true, false},
    {kind::user_not_found, handling::finish, true, false},
    {kind::failed, handling::finish, true, false},
    {kind::retry, handling::retry, true, true},
    {kind::rejected, handling::pause, false, false},
    {kind::stopped, handling::requeue, false, false},
    {kind::interrupted, handling::drop, false, false},
}};

}  // namespace

std::span<const policy_row> retry_policy() {
  return policy_table;
}

const policy_row& policy_for(flow_outcome::kind k) {
  for (const auto& row : policy_table) {
    if (row.outcome == k) {
      return row;
    }
  }
  return policy_table[2];  // unreachable: every kind has a row
}

job_release decide(const job& j, const flow_outcome& o, const retry_config& retry, time_point now,
                   double random01) {
  const auto& row = policy_for(o.result);
  job_release next;
  next.attempts = row.counts_attempt ? j.attempts + 1 : j.attempts;
  next.next_attempt_at = now;
  const auto terminal = [&](job_state s, std::string message) {
    next.state = s;
    next.outcome = status_for(s);
    next.outcome_message = std::move(message);
    return next;
  };
  switch (row.what) {
    case handling::finish:
      return terminal(o.result == kind::completed        ? job_state::completed
                      : o.result == kind::user_not_found ? job_state::user_not_found
                                                         : job_state::failed,
                      o.message);
    case handling::pause:
    case handling::requeue:
    case handling::drop:
      next.state = job_state::queued;
      next.outcome_message = o.message;
      return next;
    case handling::retry:
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

dispatch_gate::dispatch_gate(std::chrono::milliseconds pause_probe, breaker_config breaker)
    : pause_probe_(pause_probe), breaker_(breaker), open_for_(breaker.first_open) {}

dispatch_gate::verdict dispatch_gate::ask(time_point now) {
  if (state_ == state::open) {
    return {true, false, now};
  }
  if (probing_ || now < next_probe_) {
    return {false, false, probing_ ? now + std::chrono::seconds(1) : next_probe_};
  }
  probing_ = true;
  return {true, true, now};
}

void dispatch_gate::probe_unused() {
  probing_ = false;
}

bool dispatch_gate::record(const policy_row& row, bool was_probe, time_point now,
                           const std::string& value, const std::string& message) {
  if (was_probe) {
    probing_ = false;
  }
  if (row.what == handling::pause) {
    state_ = state::paused;
    reason_ = message.empty() ? fmt::format("{} rejected", value) : message;
    next_probe_ = now + pause_probe_;
    return false;
  }
  if (row.what == handling::requeue || row.what == handling::drop) {
    return false;  // says nothing about Exponea
  }
  if (row.breaker_failure) {
    ++transient_in_a_row_;
    if (state_ == state::paused && was_probe) {
      next_probe_ = now + pause_probe_;  // inconclusive: test again later, not at once
    } else if (state_ == state::breaker_open && was_probe) {
      open_for_ = std::min(open_for_ * 2, breaker_.max_open);
      next_probe_ = now + open_for_;
    } else if (state_ == state::open && transient_in_a_row_ >= breaker_.threshold) {
      state_ = state::breaker_open;
      reason_ =
          fmt::format("{} transient failures in a row; the last: {}", transient_in_a_row_, message);
      open_for_ = breaker_.first_open;
      next_probe_ = now + open_for_;
    }
    return false;
  }
  // Exponea answered as it should: a probe's success opens the gate; outside a probe, it only
  // resets the run of failures.
  transient_in_a_row_ = 0;
  if (state_ != state::open && was_probe) {
    state_ = state::open;
    reason_.clear();
    open_for_ = breaker_.first_open;
    return true;
  }
  return false;
}

void dispatch_gate::throttled(bool was_probe, time_point now) {
  if (!was_probe) {
    return;
  }
  probing_ = false;
  if (state_ == state::paused) {
    next_probe_ = now + pause_probe_;
  } else if (state_ == state::breaker_open) {
    next_probe_ = now + open_for_;
  }
}

void dispatch_gate::resume() {
  state_ = state::open;
  reason_.clear();
  probing_ = false;
  transient_in_a_row_ = 0;
  open_for_ = breaker_.first_open;
}

std::optional<std::chrono::milliseconds> dispatch_gate::breaker_open_for() const {
  if (state_ != state::breaker_open) {
    return std::nullopt;
  }
  return open_for_;
}

std::optional<std::string> dispatch_gate::paused() const {
  if (state_ != state::paused) {
    return std::nullopt;
  }
  return reason_;
}

std::optional<std::string> dispatch_gate::holding() const {
  if (state_ == state::open) {
    return std::nullopt;
  }
  return reason_;
}

}  // namespace dsr
