// store migrate on the PostgreSQL engine (postgres_engine.hpp): every job read out a page at a
// time, and an import into an empty, locked jobs table in one transaction.

#include "postgres_engine.hpp"

#include <fmt/format.h>

#include <string>
#include <vector>

namespace dsr::detail {

result<void> postgres_engine::each_job(const std::function<result<void>(const stored_job&)>& each) {
  const auto sql =
      fmt::format("SELECT {} FROM jobs WHERE id > $1 ORDER BY id LIMIT 100", job_columns);
  for (std::int64_t after = 0;;) {
    auto r = read(sql.c_str(), "reading every job", pg::params().integer(after));
    if (!r) {
      return r.error();
    }
    auto rows = read_jobs(*r);
    if (rows.empty()) {
      return {};
    }
    if (auto h = load_history(rows); !h) {
      return h;
    }
    for (const auto& row : rows) {
      if (auto e = each(row); !e) {
        return e;
      }
    }
    after = rows.back().j.id;
  }
}

// The table locked against every writer (a daemon started meanwhile waits) until the commit.
result<void> postgres_engine::begin_import() {
  if (auto r = begin(); !r) {
    return r;
  }
  if (auto r = run("LOCK TABLE jobs IN EXCLUSIVE MODE", "locking the jobs table"); !r) {
    return rollback(r.error());
  }
  auto n = query("SELECT COUNT(*) FROM jobs", "counting jobs");
  if (!n) {
    return rollback(n.error());
  }
  if (n->integer(0, 0) != 0) {
    return rollback(
        make_failure(errc::conflict, fmt::format("job store {} already holds {} job(s); jobs are "
                                                 "moved into an empty store only",
                                                 where_, n->integer(0, 0))));
  }
  return {};
}

result<void> postgres_engine::import_job(const stored_job& s) {
  const job& j = s.j;
  const bool running = j.state == job_state::running;
  const auto optional = [](const std::optional<time_point>& t) {
    return t ? std::optional<std::int64_t>(ms(*t)) : std::nullopt;
  };
  pg::params p;
  p.integer(j.id)
      .text(j.request_id)
      .text(j.trace_id)
      .text(j.op == operation::copy ? "copy" : "delete")
      .text(j.integration_id)
      .text(j.source)
      .text(j.request_type)
      .optional_integer(optional(j.created_at))
      .integer(ms(j.received_at))
      .integer(ms(j.updated_at))
      .bytes(s.subject.bytes)
      .integer(static_cast<std::int64_t>(s.subject.form))
      .text(running ? (j.attempts > 0 ? "retrying" : "queued") : to_string(j.state))
      .integer(j.attempts)
      .integer(ms(j.next_attempt_at))
      .text(to_string(j.outcome))
      .text(j.outcome_message)
      .boolean(j.reported);
  if (j.report_error) {
    p.text(*j.report_error);
  } else {
    p.null();
  }
  p.integer(j.report_attempts)
      .optional_integer(optional(s.report_next_at))
      .boolean(s.report_gave_up)
      .boolean(j.op == operation::opt_out)
      .text(j.right.id)
      .text(j.right.name)
      .text(j.right.type)
      .text(j.subject_id_name)
      .optional_integer(optional(j.file_link_expires_at));
  std::vector<std::int64_t> at;
  std::vector<std::string> steps;
  std::vector<std::string> results;
  for (const auto& step : j.history) {
    at.push_back(ms(step.at));
    steps.push_back(to_string(step.step));
    results.push_back(step.result);
  }
  p.integer_array(at).text_array(steps).text_array(results);
  auto r = query(
      "WITH job AS (INSERT INTO jobs (id, request_id, trace_id, operation, integration_id, "
      "source, request_type, created_at_ms, received_at_ms, updated_at_ms, subject, "
      "subject_form, state, attempts, next_attempt_at_ms, outcome, outcome_message, reported, "
      "report_error, report_attempts, report_next_at_ms, report_gave_up, opt_out, right_id, "
      "right_name, right_type, subject_id_name, file_link_expires_at_ms) VALUES ($1, $2, $3, "
      "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, "
      "$23, $24, $25, $26, $27, $28) RETURNING id) INSERT INTO job_steps (job_id, seq, at_ms, "
      "step, result) SELECT job.id, s.seq, s.at_ms, s.step, s.result FROM job, "
      "unnest($29::bigint[], $30::text[], $31::text[]) WITH ORDINALITY AS s(at_ms, step, "
      "result, seq)",
      "importing a job", p);
  return r ? result<void>{} : result<void>{r.error()};
}

result<void> postgres_engine::finish_import() {
  if (auto r = run("SELECT setval(pg_get_serial_sequence('jobs', 'id'), GREATEST((SELECT "
                   "MAX(id) FROM jobs), 1))",
                   "moving the job id sequence");
      !r) {
    return rollback(r.error());
  }
  return commit();
}

}  // namespace dsr::detail
