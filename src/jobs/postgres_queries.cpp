// The PostgreSQL engine's reads and bookkeeping (postgres_engine.hpp): finding and listing jobs,
// the MineOS outbox, forgetting subjects, the write probe, file links, purging, stats and reading
// rows with their journals.

#include "postgres_engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace dsr::detail {

result<std::optional<stored_job>> postgres_engine::find(std::string_view request_id) {
  return find_one(fmt::format("SELECT {} FROM jobs WHERE request_id = $1", job_columns),
                  pg::params().text(request_id));
}

result<std::vector<stored_job>> postgres_engine::list(std::optional<job_state> state,
                                                      std::size_t limit) {
  pg::params p;
  std::string sql;
  if (state) {
    p.text(to_string(*state));
    sql =
        fmt::format("SELECT {} FROM jobs WHERE state = $1 ORDER BY id DESC LIMIT $2", job_columns);
  } else {
    sql = fmt::format("SELECT {} FROM jobs ORDER BY id DESC LIMIT $1", job_columns);
  }
  p.integer(static_cast<std::int64_t>(limit));
  auto found = read(sql.c_str(), "listing jobs", p);
  if (!found) {
    return found.error();
  }
  auto out = read_jobs(*found);
  if (auto r = load_history(out); !r) {
    return r.error();
  }
  return out;
}

result<std::size_t> postgres_engine::count_active() {
  auto r = read("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'retrying')",
                "counting active jobs");
  if (!r) {
    return r.error();
  }
  return static_cast<std::size_t>(r->integer(0, 0));
}

result<std::vector<stored_job>> postgres_engine::due_reports(time_point now, std::size_t limit) {
  const auto sql = fmt::format(
      "SELECT {} FROM jobs WHERE NOT reported AND NOT report_gave_up AND report_next_at_ms <= "
      "$1 ORDER BY report_next_at_ms LIMIT $2",
      job_columns);
  auto r = read(sql.c_str(), "reading the outbox",
                pg::params().integer(ms(now)).integer(static_cast<std::int64_t>(limit)));
  if (!r) {
    return r.error();
  }
  return read_jobs(*r);
}

// SKIP LOCKED: daemons claiming at once take different reports.
result<std::vector<stored_job>> postgres_engine::claim_reports(
    time_point now, std::size_t limit, std::chrono::milliseconds claim_for) {
  const auto sql = fmt::format(
      "WITH due AS (SELECT id AS due_id, report_next_at_ms AS was FROM jobs WHERE NOT reported AND "
      "NOT report_gave_up AND report_next_at_ms <= $1 ORDER BY report_next_at_ms LIMIT $2 FOR "
      "UPDATE SKIP LOCKED) UPDATE jobs SET report_next_at_ms = $3 FROM due WHERE jobs.id = "
      "due.due_id RETURNING {}, due.was",
      job_columns);
  auto r = query(sql.c_str(), "claiming due reports",
                 pg::params()
                     .integer(ms(now))
                     .integer(static_cast<std::int64_t>(limit))
                     .integer(ms(now + claim_for)));
  if (!r) {
    return r.error();
  }
  auto out = read_jobs(*r);
  std::vector<std::pair<std::int64_t, std::size_t>> order;
  for (std::size_t i = 0; i < out.size(); ++i) {
    order.emplace_back(r->integer(static_cast<int>(i), 31), i);
  }
  std::sort(order.begin(), order.end());
  std::vector<stored_job> sorted;
  for (const auto& [was, i] : order) {
    sorted.push_back(std::move(out[i]));
  }
  return sorted;
}

result<void> postgres_engine::record_report(std::int64_t job_id, const report_update& u,
                                            time_point now) {
  pg::params p;
  p.integer(job_id).boolean(u.acknowledged);
  if (u.error) {
    p.text(*u.error);
  } else {
    p.null();
  }
  p.integer(u.attempts).integer(ms(u.next_at)).boolean(u.gave_up).integer(ms(now));
  auto r = query(
      "UPDATE jobs SET reported = $2, report_error = $3, report_attempts = $4, "
      "report_next_at_ms = CASE WHEN $2::boolean OR $6::boolean THEN NULL ELSE $5::bigint END, "
      "report_gave_up = $6, "
      "updated_at_ms = $7 WHERE id = $1",
      "recording a report", p);
  return r ? result<void>{} : result<void>{r.error()};
}

result<std::optional<forgettable_subject>> postgres_engine::subject_to_forget(std::int64_t job_id) {
  auto r = read(
      "SELECT subject, subject_form, request_id, subject_id_name FROM jobs WHERE id = $1 AND "
      "state IN ('completed', 'user_not_found', 'cancelled', 'missing_identifiers') AND "
      "subject_form != 2",
      "reading a finished job's subject", pg::params().integer(job_id));
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    return std::optional<forgettable_subject>{};
  }
  return std::optional<forgettable_subject>{
      forgettable_subject{r->text(0, 2), r->text(0, 3),
                          stored_subject{r->bytes(0, 0), subject_form{r->integer(0, 1)}}}};
}

result<void> postgres_engine::replace_subject(std::int64_t job_id, const stored_subject& s) {
  auto r =
      query("UPDATE jobs SET subject = $2, subject_form = $3 WHERE id = $1",
            "replacing a finished job's subject by its hash",
            pg::params().integer(job_id).bytes(s.bytes).integer(static_cast<std::int64_t>(s.form)));
  return r ? result<void>{} : result<void>{r.error()};
}

result<void> postgres_engine::probe_write(time_point now) {
  auto r = query(
      "INSERT INTO store_probe (id, at_ms) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at_ms "
      "= excluded.at_ms",
      "test-writing the store", pg::params().integer(ms(now)));
  return r ? result<void>{} : result<void>{r.error()};
}

result<time_point> postgres_engine::file_link_expiry(std::int64_t job_id, time_point proposed,
                                                     time_point now) {
  auto r = query(
      "UPDATE jobs SET file_link_expires_at_ms = CASE WHEN file_link_expires_at_ms IS NULL OR "
      "(NOT reported AND file_link_expires_at_ms <= $3::bigint) THEN $2::bigint ELSE "
      "file_link_expires_at_ms "
      "END WHERE id = $1 RETURNING file_link_expires_at_ms",
      "recording a file link's expiry",
      pg::params().integer(job_id).integer(ms(proposed)).integer(ms(now)));
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    return make_failure(errc::not_found, fmt::format("job store {}: no job {}", where_, job_id));
  }
  return from_ms(r->integer(0, 0));
}

result<std::vector<std::int64_t>> postgres_engine::file_links(time_point now, bool expired) {
  auto r = read(expired ? "SELECT id FROM jobs WHERE file_link_expires_at_ms IS NOT NULL AND "
                          "file_link_expires_at_ms <= $1 AND reported"
                        : "SELECT id FROM jobs WHERE file_link_expires_at_ms IS NOT NULL AND "
                          "file_link_expires_at_ms > $1",
                "listing file links", pg::params().integer(ms(now)));
  if (!r) {
    return r.error();
  }
  std::vector<std::int64_t> out;
  for (int i = 0; i < r->count(); ++i) {
    out.push_back(r->integer(i, 0));
  }
  return out;
}

result<std::size_t> postgres_engine::purge_finished(time_point before) {
  const auto sql =
      fmt::format("DELETE FROM jobs WHERE state IN {} AND updated_at_ms < $1", finished_states);
  auto r = query(sql.c_str(), "purging old jobs", pg::params().integer(ms(before)));
  if (!r) {
    return r.error();
  }
  return static_cast<std::size_t>(r->affected());
}

result<job_stats> postgres_engine::stats(time_point now, std::chrono::milliseconds deadline,
                                         std::chrono::milliseconds warning) {
  job_stats out;
  auto by_state = read("SELECT state, COUNT(*) FROM jobs GROUP BY state", "counting jobs by state");
  if (!by_state) {
    return by_state.error();
  }
  for (int i = 0; i < by_state->count(); ++i) {
    if (const auto st = parse_job_state(by_state->text(i, 0))) {
      out.by_state[static_cast<std::size_t>(*st)] =
          static_cast<std::uint64_t>(by_state->integer(i, 1));
    }
  }
  auto oldest = read("SELECT MIN(received_at_ms) FROM jobs WHERE state IN ('queued', 'retrying')",
                     "finding the oldest waiting job");
  if (!oldest) {
    return oldest.error();
  }
  if (const auto v = oldest->optional_integer(0, 0)) {
    out.oldest_waiting = from_ms(*v);
  }
  auto due = read(
      "SELECT COUNT(*) FILTER (WHERE due <= $1::bigint), COUNT(*) FILTER (WHERE due > "
      "$1::bigint AND due <= $1::bigint + $3::bigint) FROM (SELECT COALESCE(created_at_ms, "
      "received_at_ms) + $2::bigint AS due FROM jobs WHERE "
      "state IN ('queued', 'running', 'retrying', 'failed')) d",
      "counting jobs near their due date",
      pg::params().integer(ms(now)).integer(deadline.count()).integer(warning.count()));
  if (!due) {
    return due.error();
  }
  out.overdue = static_cast<std::uint64_t>(due->integer(0, 0));
  out.due_soon = static_cast<std::uint64_t>(due->integer(0, 1));
  return out;
}

result<std::vector<stored_job>> postgres_engine::at_risk(time_point now,
                                                         std::chrono::milliseconds deadline,
                                                         std::chrono::milliseconds warning,
                                                         std::size_t limit) {
  const auto sql = fmt::format(
      "SELECT {} FROM jobs WHERE state IN ('queued', 'running', 'retrying', 'failed') AND "
      "COALESCE(created_at_ms, received_at_ms) + $2::bigint <= $1::bigint + $3::bigint ORDER BY "
      "COALESCE(created_at_ms, received_at_ms), id LIMIT $4",
      job_columns);
  auto r = read(sql.c_str(), "listing jobs near their due date",
                pg::params()
                    .integer(ms(now))
                    .integer(deadline.count())
                    .integer(warning.count())
                    .integer(static_cast<std::int64_t>(limit)));
  if (!r) {
    return r.error();
  }
  return read_jobs(*r);
}

result<std::optional<stored_job>> postgres_engine::find_one(const std::string& sql,
                                                            const pg::params& p) {
  auto r = read(sql.c_str(), "reading a job", p);
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    return std::optional<stored_job>{};
  }
  auto one = read_jobs(*r);
  if (auto h = load_history(one); !h) {
    return h.error();
  }
  return std::optional<stored_job>{std::move(one.front())};
}

std::vector<stored_job> postgres_engine::read_jobs(const pg::rows& r) {
  std::vector<stored_job> out;
  out.reserve(static_cast<std::size_t>(r.count()));
  for (int i = 0; i < r.count(); ++i) {
    stored_job row;
    job& j = row.j;
    j.id = r.integer(i, 0);
    j.request_id = r.text(i, 1);
    j.trace_id = r.text(i, 2);
    j.op = r.text(i, 3) == "copy" ? operation::copy
           : r.boolean(i, 22)     ? operation::opt_out
                                  : operation::delete_;
    j.integration_id = r.text(i, 4);
    j.source = r.text(i, 5);
    j.request_type = r.text(i, 6);
    if (const auto v = r.optional_integer(i, 7)) {
      j.created_at = from_ms(*v);
    }
    j.received_at = from_ms(r.integer(i, 8));
    j.updated_at = from_ms(r.integer(i, 9));
    row.subject = stored_subject{r.bytes(i, 10), subject_form{r.integer(i, 21)}};
    j.state = parse_job_state(r.text(i, 11)).value_or(job_state::failed);
    j.attempts = static_cast<std::uint32_t>(r.integer(i, 12));
    j.next_attempt_at = from_ms(r.integer(i, 13));
    j.lease_owner = r.text(i, 14);
    if (const auto v = r.optional_integer(i, 15)) {
      j.lease_expires_at = from_ms(*v);
    }
    j.outcome = parse_job_outcome(r.text(i, 16)).value_or(job_outcome::failed);
    j.outcome_message = r.text(i, 17);
    j.reported = r.boolean(i, 18);
    if (!r.is_null(i, 19)) {
      j.report_error = r.text(i, 19);
    }
    j.report_attempts = static_cast<std::uint32_t>(r.integer(i, 20));
    j.right = job_right{r.text(i, 23), r.text(i, 24), r.text(i, 25)};
    j.subject_id_name = r.text(i, 26);
    if (const auto v = r.optional_integer(i, 27)) {
      j.file_link_expires_at = from_ms(*v);
    }
    if (const auto v = r.optional_integer(i, 28)) {
      row.report_next_at = from_ms(*v);
    }
    row.report_gave_up = r.boolean(i, 29);
    j.worker = r.text(i, 30);
    out.push_back(std::move(row));
  }
  return out;
}

result<void> postgres_engine::load_history(std::vector<stored_job>& jobs) {
  if (jobs.empty()) {
    return {};
  }
  std::vector<std::int64_t> ids;
  std::map<std::int64_t, job*> by_id;
  for (auto& s : jobs) {
    ids.push_back(s.j.id);
    by_id[s.j.id] = &s.j;
  }
  auto r = read(
      "SELECT job_id, at_ms, step, result FROM job_steps WHERE job_id = ANY($1::bigint[]) "
      "ORDER BY job_id, seq",
      "reading jobs' history", pg::params().integer_array(ids));
  if (!r) {
    return r.error();
  }
  for (int i = 0; i < r->count(); ++i) {
    if (auto it = by_id.find(r->integer(i, 0)); it != by_id.end()) {
      it->second->history.push_back(
          job_step{from_ms(r->integer(i, 1)), parse_step(r->text(i, 2)), r->text(i, 3)});
    }
  }
  return {};
}

}  // namespace dsr::detail
