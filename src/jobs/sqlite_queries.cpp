// The SQLite engine's reads and bookkeeping (sqlite_engine.hpp): finding and listing jobs, the
// MineOS outbox, forgetting subjects, file links, the size cap, purging, stats and reading a row.

#include "sqlite_engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string>

namespace dsr::detail {
namespace {

using sqlite::exec;
using sqlite::query_text;

}  // namespace

result<std::optional<stored_job>> sqlite_engine::find(std::string_view request_id) {
  return find_one(stmts_->find_by_request, request_id);
}

result<std::vector<stored_job>> sqlite_engine::list(std::optional<job_state> state,
                                                    std::size_t limit) {
  std::vector<stored_job> out;
  {
    const statement& s = state ? stmts_->list_state : stmts_->list_all;
    use q(s);
    int i = 1;
    if (state) {
      q.bind(i++, to_string(*state));
    }
    q.bind(i, static_cast<std::int64_t>(limit));
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
      out.push_back(read_job(q));
    }
    if (rc != SQLITE_DONE) {
      return error("listing jobs");
    }
  }
  for (auto& j : out) {
    if (auto r = load_history(j.j); !r) {
      return r.error();
    }
  }
  return out;
}

result<std::vector<stored_job>> sqlite_engine::due_reports(time_point now, std::size_t limit) {
  std::vector<stored_job> out;
  {
    use q(stmts_->due_reports);
    q.bind(1, ms(now)).bind(2, static_cast<std::int64_t>(limit));
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
      out.push_back(read_job(q));
    }
    if (rc != SQLITE_DONE) {
      return error("reading the outbox");
    }
  }
  return out;
}

// One daemon reports from an SQLite store; the claim keeps the engines to one contract.
result<std::vector<stored_job>> sqlite_engine::claim_reports(time_point now, std::size_t limit,
                                                             std::chrono::milliseconds claim_for) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  auto due = due_reports(now, limit);
  if (!due) {
    rollback();
    return due.error();
  }
  const statement claim(db_, "UPDATE jobs SET report_next_at_ms = ?2 WHERE id = ?1");
  for (const auto& s : *due) {
    use q(claim);
    q.bind(1, s.j.id).bind(2, ms(now + claim_for));
    if (q.step() != SQLITE_DONE) {
      auto e = error("claiming due reports");
      rollback();
      return e;
    }
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  return due;
}

result<void> sqlite_engine::record_report(std::int64_t job_id, const report_update& u,
                                          time_point now) {
  use q(stmts_->record_report);
  q.bind(1, job_id)
      .bind(2, std::int64_t{u.acknowledged ? 1 : 0})
      .bind(4, static_cast<std::int64_t>(u.attempts))
      .bind(5, ms(u.next_at))
      .bind(6, std::int64_t{u.gave_up ? 1 : 0})
      .bind(7, ms(now));
  if (u.error) {
    q.bind(3, *u.error);
  } else {
    q.bind_null(3);
  }
  if (q.step() != SQLITE_DONE) {
    return error("recording a report");
  }
  return {};
}

result<std::optional<dsr::forgettable_subject>> sqlite_engine::subject_to_forget(
    std::int64_t job_id) {
  use q(stmts_->subject_of);
  q.bind(1, job_id);
  const int rc = q.step();
  if (rc == SQLITE_DONE) {
    return std::optional<dsr::forgettable_subject>{};
  }
  if (rc != SQLITE_ROW) {
    return error("reading a finished job's subject");
  }
  return std::optional<dsr::forgettable_subject>{dsr::forgettable_subject{
      q.text(2), q.text(3), stored_subject{q.blob(0), subject_form{q.integer(1)}}}};
}

result<void> sqlite_engine::replace_subject(std::int64_t job_id, const stored_subject& s) {
  use q(stmts_->forget);
  q.bind(1, job_id).bind_blob(2, s.bytes).bind(3, static_cast<std::int64_t>(s.form));
  if (q.step() != SQLITE_DONE) {
    return error("replacing a finished job's subject by its hash");
  }
  return {};
}

result<time_point> sqlite_engine::file_link_expiry(std::int64_t job_id, time_point proposed,
                                                   time_point now) {
  use q(stmts_->link_expiry);
  q.bind(1, job_id).bind(2, ms(proposed)).bind(3, ms(now));
  if (q.step() != SQLITE_ROW) {
    return error("recording a file link's expiry");
  }
  return from_ms(q.integer(0));
}

result<std::vector<std::int64_t>> sqlite_engine::file_links(time_point now, bool expired) {
  std::vector<std::int64_t> out;
  use q(expired ? stmts_->expired_links : stmts_->live_links);
  q.bind(1, ms(now));
  int rc = 0;
  while ((rc = q.step()) == SQLITE_ROW) {
    out.push_back(q.integer(0));
  }
  if (rc != SQLITE_DONE) {
    return error("listing file links");
  }
  return out;
}

result<void> sqlite_engine::set_max_size(std::uint64_t bytes) {
  const auto page = query_text(db_, "PRAGMA page_size");
  const auto page_size = page ? std::max<std::uint64_t>(std::stoull(*page), 512) : 4096;
  // SQLite has no "unlimited": its own maximum stands for it.
  const std::uint64_t pages =
      bytes == 0 ? 4294967294ULL : std::max<std::uint64_t>(bytes / page_size, 1);
  const auto sql = fmt::format("PRAGMA max_page_count = {}", pages);
  if (!exec(db_, sql.c_str())) {
    return error("setting the size cap");
  }
  return {};
}

result<std::size_t> sqlite_engine::purge_finished(time_point before) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  {
    use q(stmts_->purge_steps);
    q.bind(1, ms(before));
    if (q.step() != SQLITE_DONE) {
      auto e = error("purging old jobs' history");
      rollback();
      return e;
    }
  }
  std::size_t purged = 0;
  {
    use q(stmts_->purge_jobs);
    q.bind(1, ms(before));
    if (q.step() != SQLITE_DONE) {
      auto e = error("purging old jobs");
      rollback();
      return e;
    }
    purged = static_cast<std::size_t>(sqlite3_changes(db_));
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  return purged;
}

result<job_stats> sqlite_engine::stats(time_point now, std::chrono::milliseconds deadline,
                                       std::chrono::milliseconds warning) {
  job_stats out;
  {
    use q(stmts_->count_by_state);
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
      if (const auto st = parse_job_state(q.text(0))) {
        out.by_state[static_cast<std::size_t>(*st)] = static_cast<std::uint64_t>(q.integer(1));
      }
    }
    if (rc != SQLITE_DONE) {
      return error("counting jobs by state");
    }
  }
  {
    use q(stmts_->oldest_waiting);
    if (q.step() != SQLITE_ROW) {
      return error("finding the oldest waiting job");
    }
    if (!q.is_null(0)) {
      out.oldest_waiting = time_point{std::chrono::milliseconds(q.integer(0))};
    }
  }
  {
    use q(stmts_->deadlines);
    q.bind(1, ms(now)).bind(2, deadline.count()).bind(3, warning.count());
    if (q.step() != SQLITE_ROW) {
      return error("counting jobs near their due date");
    }
    out.overdue = static_cast<std::uint64_t>(q.integer(0));
    out.due_soon = static_cast<std::uint64_t>(q.integer(1));
  }
  return out;
}

result<std::vector<stored_job>> sqlite_engine::at_risk(time_point now,
                                                       std::chrono::milliseconds deadline,
                                                       std::chrono::milliseconds warning,
                                                       std::size_t limit) {
  std::vector<stored_job> out;
  use q(stmts_->at_risk);
  q.bind(1, ms(now))
      .bind(2, deadline.count())
      .bind(3, warning.count())
      .bind(4, static_cast<std::int64_t>(limit));
  int rc = 0;
  while ((rc = q.step()) == SQLITE_ROW) {
    out.push_back(read_job(q));
  }
  if (rc != SQLITE_DONE) {
    return error("listing jobs near their due date");
  }
  return out;
}

stored_job sqlite_engine::read_job(const use& q) const {
  stored_job row;
  job& j = row.j;
  j.id = q.integer(0);
  j.request_id = q.text(1);
  j.trace_id = q.text(2);
  j.op = q.text(3) == "copy"  ? operation::copy
         : q.integer(22) != 0 ? operation::opt_out
                              : operation::delete_;
  j.integration_id = q.text(4);
  j.source = q.text(5);
  j.request_type = q.text(6);
  if (!q.is_null(7)) {
    j.created_at = from_ms(q.integer(7));
  }
  j.received_at = from_ms(q.integer(8));
  j.updated_at = from_ms(q.integer(9));
  row.subject = stored_subject{q.blob(10), subject_form{q.integer(21)}};
  j.state = parse_job_state(q.text(11)).value_or(job_state::failed);
  j.attempts = static_cast<std::uint32_t>(q.integer(12));
  j.next_attempt_at = from_ms(q.integer(13));
  j.lease_owner = q.text(14);
  if (!q.is_null(15)) {
    j.lease_expires_at = from_ms(q.integer(15));
  }
  j.outcome = parse_job_outcome(q.text(16)).value_or(job_outcome::failed);
  j.outcome_message = q.text(17);
  j.reported = q.integer(18) != 0;
  if (!q.is_null(19)) {
    j.report_error = q.text(19);
  }
  j.report_attempts = static_cast<std::uint32_t>(q.integer(20));
  j.right = job_right{q.text(23), q.text(24), q.text(25)};
  j.subject_id_name = q.text(26);
  if (!q.is_null(27)) {
    j.file_link_expires_at = from_ms(q.integer(27));
  }
  if (!q.is_null(28)) {
    row.report_next_at = from_ms(q.integer(28));
  }
  row.report_gave_up = q.integer(29) != 0;
  j.worker = q.text(30);
  return row;
}

result<void> sqlite_engine::load_history(job& j) {
  use q(stmts_->history);
  q.bind(1, j.id);
  int rc = 0;
  while ((rc = q.step()) == SQLITE_ROW) {
    j.history.push_back(job_step{from_ms(q.integer(0)), parse_step(q.text(1)), q.text(2)});
  }
  if (rc != SQLITE_DONE) {
    return error("reading a job's history");
  }
  return {};
}

}  // namespace dsr::detail
