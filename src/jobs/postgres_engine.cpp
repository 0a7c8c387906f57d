// The PostgreSQL engine's writes (postgres_engine.hpp): intake, claims, the journal, release,
// leases and operator actions, and the connection glue every statement goes through.

#include "postgres_engine.hpp"

#include <fmt/format.h>

#include <string>
#include <vector>

namespace dsr::detail {

namespace {

// The next journal line's number, for a job whose id is $1.
constexpr const char* next_seq =
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM job_steps WHERE job_id = $1)";

}  // namespace

result<std::vector<insert_outcome>> postgres_engine::insert(std::span<const stored_new_job> jobs,
                                                            std::size_t max_active) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  auto active = query("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'retrying')",
                      "counting active jobs");
  if (!active) {
    return rollback(active.error());
  }
  auto count = static_cast<std::size_t>(active->integer(0, 0));
  std::vector<insert_outcome> outcomes;
  outcomes.reserve(jobs.size());
  for (const auto& row : jobs) {
    auto o = insert_one(row, max_active, count);
    if (!o) {
      return rollback(o.error());
    }
    outcomes.push_back(std::move(*o));
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  return outcomes;
}

// SKIP LOCKED: daemons claiming at once take different jobs instead of waiting for each other.
result<std::optional<stored_job>> postgres_engine::claim_next(std::string_view owner,
                                                              time_point now,
                                                              std::chrono::milliseconds lease) {
  const auto sql = fmt::format(
      "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at_ms = $2, "
      "updated_at_ms = $3 WHERE id = (SELECT id FROM jobs WHERE state IN ('queued', "
      "'retrying') AND next_attempt_at_ms <= $3 ORDER BY next_attempt_at_ms, id LIMIT 1 FOR "
      "UPDATE SKIP LOCKED) RETURNING {}",
      job_columns);
  auto r = query(sql.c_str(), "claiming a job",
                 pg::params().text(owner).integer(ms(now + lease)).integer(ms(now)));
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

result<std::size_t> postgres_engine::expire_leases(time_point now) {
  auto r = query(
      "UPDATE jobs SET state = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, "
      "lease_owner = NULL, lease_expires_at_ms = NULL WHERE state = 'running' AND "
      "lease_expires_at_ms < $1",
      "expiring leases", pg::params().integer(ms(now)));
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
  auto r = query(
      "UPDATE jobs SET lease_expires_at_ms = $2 WHERE state = 'running' AND lease_owner = "
      "ANY($1::text[])",
      "renewing leases",
      pg::params()
          .text_array(std::vector<std::string>(owners.begin(), owners.end()))
          .integer(ms(now + lease)));
  if (!r) {
    return r.error();
  }
  return static_cast<std::size_t>(r->affected());
}

// One statement: the guarded change and its journal line commit together or not at all.
result<bool> postgres_engine::apply(const operator_change& c, time_point now) {
  const char* change = nullptr;
  switch (c.verb) {
    case operator_verb::requeue:
      change =
          "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at_ms = $2, outcome = "
          "'', outcome_message = '', reported = false, report_error = NULL, report_attempts = "
          "0, report_next_at_ms = NULL, report_gave_up = false, updated_at_ms = $2 WHERE id = "
          "$1 AND state = $3";
      break;
    case operator_verb::resend:
      change =
          "UPDATE jobs SET report_gave_up = false, report_attempts = 0, report_next_at_ms = "
          "$2, updated_at_ms = $2 WHERE id = $1 AND state = $3 AND NOT reported";
      break;
    case operator_verb::cancel:
      change =
          "UPDATE jobs SET state = 'cancelled', outcome = $7, outcome_message = $8, "
          "report_next_at_ms = $2, updated_at_ms = $2 WHERE id = $1 AND state = $3";
      break;
  }
  const auto sql = fmt::format(
      "WITH changed AS ({} RETURNING id) INSERT INTO job_steps (job_id, seq, at_ms, step, "
      "result) SELECT id, {}, $4, $5, $6 FROM changed",
      change, next_seq);
  pg::params p;
  p.integer(c.job_id)
      .integer(ms(now))
      .text(to_string(c.expected))
      .integer(ms(c.step.at))
      .text(to_string(c.step.step))
      .text(c.step.result);
  if (c.verb == operator_verb::cancel) {
    p.text(to_string(c.outcome)).text(c.outcome_message);
  }
  auto r = query(sql.c_str(), "applying an operator action", p);
  if (!r) {
    return r.error();
  }
  return r->affected() == 1;
}

result<void> postgres_engine::connect() {
  std::vector<const char*> keys{"connect_timeout", "application_name",    "keepalives",
                                "keepalives_idle", "keepalives_interval", "keepalives_count",
                                "dbname"};
  const auto timeout = std::to_string(options_.connect_timeout.count());
  std::vector<const char*> values{timeout.c_str(),     "dsr-connector", "1", "30", "10", "3",
                                  options_.url.c_str()};
  if (!options_.password.empty()) {
    keys.push_back("password");
    values.push_back(options_.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_.reset(PQconnectdbParams(keys.data(), values.data(), 1));
  if (conn_ == nullptr || PQstatus(conn_.get()) != CONNECTION_OK) {
    std::string why = conn_ != nullptr ? PQerrorMessage(conn_.get()) : "out of memory";
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) {
      why.pop_back();
    }
    conn_.reset();
    return make_failure(errc::store_unavailable,
                        fmt::format("job store {}: cannot connect: {}", where_, why));
  }
  // The server's notices ("relation ... already exists, skipping") are not for the operator.
  PQsetNoticeProcessor(
      conn_.get(), [](void*, const char*) {}, nullptr);
  return {};
}

result<pg::rows> postgres_engine::query(const char* sql, std::string_view doing,
                                        const pg::params& p, bool may_repeat) {
  if (conn_ == nullptr || PQstatus(conn_.get()) != CONNECTION_OK) {
    if (auto r = connect(); !r) {
      return r.error();
    }
  }
  const bool idle = PQtransactionStatus(conn_.get()) == PQTRANS_IDLE;
  pg::rows r = pg::exec(conn_.get(), sql, p);
  if (!r.ok() && may_repeat && idle && PQstatus(conn_.get()) != CONNECTION_OK) {
    if (auto c = connect(); !c) {
      return c.error();
    }
    r = pg::exec(conn_.get(), sql, p);
  }
  if (r.ok()) {
    return r;
  }
  std::string why = r.message();
  if (why.empty()) {
    why = PQerrorMessage(conn_.get());
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) {
      why.pop_back();
    }
  }
  const auto state = r.sqlstate();
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    conn_.reset();
  }
  // XX001/XX002: the server found a corrupt page or index.
  const errc code =
      state == "XX001" || state == "XX002" ? errc::store_corrupt : errc::store_unavailable;
  return make_failure(code, fmt::format("job store {}: {} while {}{}", where_, why, doing,
                                        state.empty() ? "" : " (SQLSTATE " + state + ")"));
}

result<void> postgres_engine::run(const char* sql, std::string_view doing, const pg::params& p,
                                  bool may_repeat) {
  auto r = query(sql, doing, p, may_repeat);
  return r ? result<void>{} : result<void>{r.error()};
}

failure postgres_engine::rollback(failure f) {
  if (conn_ != nullptr && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
    pg::exec(conn_.get(), "ROLLBACK");
  }
  return f;
}

failure postgres_engine::lease_lost(std::int64_t job_id, std::string_view owner) const {
  return make_failure(errc::lease_lost,
                      fmt::format("job {} is not leased by {} any more", job_id, owner));
}

result<std::optional<insert_outcome>> postgres_engine::earlier(const new_job& j) {
  auto by_trace = query("SELECT request_id FROM jobs WHERE trace_id = $1", "looking up a trace id",
                        pg::params().text(j.trace_id));
  if (!by_trace) {
    return by_trace.error();
  }
  if (by_trace->count() > 0) {
    return insert_outcome{insert_outcome::kind::duplicate, by_trace->text(0, 0)};
  }
  auto by_request = query("SELECT operation FROM jobs WHERE request_id = $1",
                          "looking up a request id", pg::params().text(j.request_id));
  if (!by_request) {
    return by_request.error();
  }
  if (by_request->count() > 0) {
    // Delete and opt-out both came to the Delete URL: the same operation for MineOS.
    const bool same = (by_request->text(0, 0) == "copy") == (j.op == operation::copy);
    return insert_outcome{same ? insert_outcome::kind::duplicate : insert_outcome::kind::conflict,
                          j.request_id};
  }
  return std::optional<insert_outcome>{};
}

result<insert_outcome> postgres_engine::insert_one(const stored_new_job& row,
                                                   std::size_t max_active, std::size_t& active) {
  const new_job& j = *row.job;
  if (!j.ended && active >= max_active) {
    auto seen = earlier(j);
    if (!seen) {
      return seen.error();
    }
    if (*seen) {
      return **seen;
    }
    return insert_outcome{insert_outcome::kind::queue_full, j.request_id};
  }
  std::vector<std::int64_t> at;
  std::vector<std::string> steps;
  std::vector<std::string> results;
  for (const auto& s : row.steps) {
    at.push_back(ms(s.at));
    steps.push_back(to_string(s.step));
    results.push_back(s.result);
  }
  pg::params p;
  p.text(j.request_id)
      .text(j.trace_id)
      .text(j.op == operation::copy ? "copy" : "delete")
      .text(j.integration_id)
      .text(j.source)
      .text(j.request_type)
      .optional_integer(j.created_at ? std::optional<std::int64_t>(ms(*j.created_at))
                                     : std::nullopt)
      .integer(ms(j.received_at))
      .bytes(row.subject.bytes)
      .integer(static_cast<std::int64_t>(row.subject.form))
      .text(j.ended ? to_string(j.ended->state) : "queued")
      .boolean(j.op == operation::opt_out)
      .text(j.right.id)
      .text(j.right.name)
      .text(j.right.type)
      .text(j.subject_id_name)
      .text(j.ended ? std::string(to_string(j.ended->outcome)) : std::string())
      .text(j.ended ? j.ended->message : std::string())
      .integer_array(at)
      .text_array(steps)
      .text_array(results);
  auto r = query(
      "WITH job AS (INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, "
      "request_type, created_at_ms, received_at_ms, updated_at_ms, subject, subject_form, state, "
      "next_attempt_at_ms, opt_out, right_id, right_name, right_type, subject_id_name, outcome, "
      "outcome_message, report_next_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $8, $9, "
      "$10, $11::text, $8, $12, $13, $14, $15, $16, $17, $18, CASE WHEN $11 = 'queued' THEN "
      "NULL ELSE $8 END) ON CONFLICT DO NOTHING RETURNING id), steps AS (INSERT INTO job_steps "
      "(job_id, seq, "
      "at_ms, step, result) SELECT job.id, s.seq, s.at_ms, s.step, s.result FROM job, "
      "unnest($19::bigint[], $20::text[], $21::text[]) WITH ORDINALITY AS s(at_ms, step, "
      "result, seq)) SELECT id FROM job",
      "inserting a job", p);
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    auto seen = earlier(j);
    if (!seen) {
      return seen.error();
    }
    if (!*seen) {
      return make_failure(errc::store_unavailable,
                          fmt::format("job store {}: a job was refused as a repeat but no "
                                      "earlier one was found",
                                      where_));
    }
    return **seen;
  }
  if (!j.ended) {
    ++active;
  }
  return insert_outcome{insert_outcome::kind::inserted, j.request_id};
}

}  // namespace dsr::detail
