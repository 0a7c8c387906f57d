// The PostgreSQL engine's claims, journal, release and leases (postgres_engine.hpp): every write a
// run makes is fenced by its lease owner, and leases are judged by the database's clock
// (options_.database_clock) so that hosts' clocks never meet.

#include "postgres_engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

namespace dsr::detail {

// SKIP LOCKED: daemons claiming at once take different jobs instead of waiting for each other.
result<std::optional<stored_job>> postgres_engine::claim_next(std::string_view owner,
                                                              time_point now,
                                                              std::chrono::milliseconds lease) {
  const auto sql = fmt::format(
      "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at_ms = "
      "COALESCE($4::bigint, {}) + $2::bigint, updated_at_ms = $3, worker = $5 WHERE id = (SELECT "
      "id FROM jobs WHERE state IN ('queued', 'retrying') AND next_attempt_at_ms <= $3 ORDER BY "
      "next_attempt_at_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {}",
      db_now, job_columns);
  pg::params p;
  p.text(owner).integer(lease.count()).integer(ms(now));
  lease_clock(p, now).text(worker_of(owner));
  auto r = query(sql.c_str(), "claiming a job", p);
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    return std::optional<stored_job>{};
  }
  std::vector<stored_job> one = read_jobs(*r);
  if (auto h = load_history(one); !h) {
    return h.error();
  }
  return std::optional<stored_job>{std::move(one.front())};
}

// The row lock taken on the job orders this line after any takeover of its lease.
result<void> postgres_engine::append_step(std::int64_t job_id, std::string_view owner,
                                          const job_step& s) {
  const auto sql = fmt::format(
      "WITH held AS (SELECT id FROM jobs WHERE id = $1 AND state = 'running' AND lease_owner = "
      "$2 FOR UPDATE) INSERT INTO job_steps (job_id, seq, at_ms, step, result) SELECT id, {}, "
      "$3, $4, $5 FROM held",
      next_seq);
  auto r = query(sql.c_str(), "journaling a step",
                 pg::params()
                     .integer(job_id)
                     .text(owner)
                     .integer(ms(s.at))
                     .text(to_string(s.step))
                     .text(s.result));
  if (!r) {
    return r.error();
  }
  if (r->affected() == 0) {
    return lease_lost(job_id, owner);
  }
  return {};
}

// The lines of several jobs in one statement (one commit, one WAL flush): each written only while
// its own job is running under its owner's lease, locked like append_step's (in id order, so two
// such statements never wait on each other crosswise); a line whose lease was taken over is that
// line's errc::lease_lost. Lines of one job twice go one by one (their numbers come from the
// journal as it was before the statement), and so do lines holding a NUL (an array's text ends
// there).
std::vector<result<void>> postgres_engine::append_steps(std::span<const step_line> lines) {
  if (lines.size() < 2) {
    return store_engine::append_steps(lines);
  }
  std::vector<std::int64_t> ids;
  std::vector<std::string> owners, steps, results;
  std::vector<std::int64_t> at;
  for (const auto& l : lines) {
    if (std::find(ids.begin(), ids.end(), l.job_id) != ids.end() ||
        l.owner.find('\0') != std::string::npos || l.step.result.find('\0') != std::string::npos) {
      return store_engine::append_steps(lines);
    }
    ids.push_back(l.job_id);
    owners.push_back(l.owner);
    at.push_back(ms(l.step.at));
    steps.push_back(to_string(l.step.step));
    results.push_back(l.step.result);
  }
  auto r = query(
      "WITH l AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], "
      "$5::text[]) AS l(job_id, owner, at_ms, step, result)), held AS (SELECT j.id, l.at_ms, "
      "l.step, l.result FROM jobs j JOIN l ON j.id = l.job_id WHERE j.state = 'running' AND "
      "j.lease_owner = l.owner ORDER BY j.id FOR UPDATE OF j) INSERT INTO job_steps (job_id, seq, "
      "at_ms, step, "
      "result) SELECT h.id, (SELECT COALESCE(MAX(s.seq), 0) + 1 FROM job_steps s WHERE s.job_id "
      "= h.id), h.at_ms, h.step, h.result FROM held h RETURNING job_id",
      "journaling steps",
      pg::params()
          .integer_array(ids)
          .text_array(owners)
          .integer_array(at)
          .text_array(steps)
          .text_array(results));
  if (!r) {
    return std::vector<result<void>>(lines.size(), r.error());
  }
  std::vector<std::int64_t> written;
  for (int i = 0; i < r->count(); ++i) {
    written.push_back(r->integer(i, 0));
  }
  std::vector<result<void>> out;
  out.reserve(lines.size());
  for (const auto& l : lines) {
    if (std::find(written.begin(), written.end(), l.job_id) != written.end()) {
      out.emplace_back();
    } else {
      out.emplace_back(lease_lost(l.job_id, l.owner));
    }
  }
  return out;
}

result<void> postgres_engine::release(std::int64_t job_id, std::string_view owner,
                                      const job_release& next, time_point now) {
  const auto sql = fmt::format(
      "UPDATE jobs SET state = $1, attempts = $2, next_attempt_at_ms = $3, outcome = CASE WHEN "
      "$4::text = '' THEN outcome ELSE $4 END, outcome_message = CASE WHEN $5::text = '' THEN "
      "outcome_message ELSE $5 END, updated_at_ms = $6, lease_owner = NULL, lease_expires_at_ms "
      "= NULL, report_next_at_ms = CASE WHEN $1::text IN {} THEN $6::bigint ELSE NULL END, opt_out "
      "= CASE WHEN $8::bigint < 0 THEN opt_out ELSE $8 = 1 END WHERE id = $7 AND state = "
      "'running' AND "
      "lease_owner = $9",
      finished_states);
  const std::int64_t opt_out =
      next.op ? std::int64_t{*next.op == operation::opt_out ? 1 : 0} : std::int64_t{-1};
  auto r = query(sql.c_str(), "releasing a job",
                 pg::params()
                     .text(to_string(next.state))
                     .integer(next.attempts)
                     .integer(ms(next.next_attempt_at))
                     .text(to_string(next.outcome))
                     .text(next.outcome_message)
                     .integer(ms(now))
                     .integer(job_id)
                     .integer(opt_out)
                     .text(owner));
  if (!r) {
    return r.error();
  }
  if (r->affected() == 0) {
    return lease_lost(job_id, owner);
  }
  return {};
}

// By time only: a lease that has not run out is never taken, however its daemon seems.
result<std::size_t> postgres_engine::expire_leases(time_point now) {
  const auto sql = fmt::format(
      "UPDATE jobs SET state = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, "
      "lease_owner = NULL, lease_expires_at_ms = NULL WHERE state = 'running' AND "
      "lease_expires_at_ms < COALESCE($1::bigint, {})",
      db_now);
  pg::params p;
  auto r = query(sql.c_str(), "expiring leases", lease_clock(p, now));
  if (!r) {
    return r.error();
  }
  return static_cast<std::size_t>(r->affected());
}

result<std::size_t> postgres_engine::renew_leases(std::span<const std::string> owners,
                                                  time_point now, std::chrono::milliseconds lease) {
  if (owners.empty()) {
    return std::size_t{0};
  }
  const auto sql = fmt::format(
      "UPDATE jobs SET lease_expires_at_ms = COALESCE($3::bigint, {}) + $2::bigint WHERE state = "
      "'running' AND lease_owner = ANY($1::text[])",
      db_now);
  pg::params p;
  p.text_array(std::vector<std::string>(owners.begin(), owners.end())).integer(lease.count());
  auto r = query(sql.c_str(), "renewing leases", lease_clock(p, now));
  if (!r) {
    return r.error();
  }
  return static_cast<std::size_t>(r->affected());
}

// The time left is read after the renewal, so it errs short.
result<std::chrono::milliseconds> postgres_engine::renew_lease(std::int64_t job_id,
                                                               std::string_view owner,
                                                               time_point now,
                                                               std::chrono::milliseconds lease) {
  const auto sql = fmt::format(
      "UPDATE jobs SET lease_expires_at_ms = COALESCE($3::bigint, {0}) + $4::bigint WHERE id = $1 "
      "AND state = 'running' AND lease_owner = $2 RETURNING lease_expires_at_ms - "
      "COALESCE($3::bigint, {0})",
      db_now);
  pg::params p;
  p.integer(job_id).text(owner);
  lease_clock(p, now).integer(lease.count());
  auto r = query(sql.c_str(), "renewing a lease", p);
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    return lease_lost(job_id, owner);
  }
  return std::chrono::milliseconds(r->integer(0, 0));
}

pg::params& postgres_engine::lease_clock(pg::params& p, time_point now) const {
  if (options_.database_clock) {
    return p.null();
  }
  return p.integer(ms(now));
}

}  // namespace dsr::detail
