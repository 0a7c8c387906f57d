// store migrate on the SQLite engine (sqlite_engine.hpp): every job read out one at a time, and an
// import into an empty store in one transaction.

#include "sqlite_engine.hpp"

#include <fmt/format.h>

#include <string>

namespace dsr::detail {

result<void> sqlite_engine::each_job(const std::function<result<void>(const stored_job&)>& each) {
  const auto sql =
      fmt::format("SELECT {} FROM jobs WHERE id > ?1 ORDER BY id LIMIT 1", job_columns);
  const statement next(db_, sql);
  for (std::int64_t after = 0;;) {
    std::optional<stored_job> row;
    {
      use q(next);
      q.bind(1, after);
      const int rc = q.step();
      if (rc == SQLITE_DONE) {
        return {};
      }
      if (rc != SQLITE_ROW) {
        return error("reading every job");
      }
      row = read_job(q);
    }
    if (auto r = load_history(row->j); !r) {
      return r;
    }
    after = row->j.id;
    if (auto r = each(*row); !r) {
      return r;
    }
  }
}

result<void> sqlite_engine::begin_import() {
  if (auto r = begin(); !r) {
    return r;
  }
  use q(stmts_->count_all);
  if (q.step() != SQLITE_ROW) {
    auto e = error("counting jobs");
    rollback();
    return e;
  }
  if (q.integer(0) != 0) {
    rollback();
    return make_failure(errc::conflict,
                        fmt::format("job store {} already holds {} job(s); jobs are moved into "
                                    "an empty store only",
                                    path_, q.integer(0)));
  }
  return {};
}

result<void> sqlite_engine::import_job(const stored_job& s) {
  const job& j = s.j;
  const bool running = j.state == job_state::running;
  {
    use q(stmts_->import_job);
    q.bind(1, j.id)
        .bind(2, j.request_id)
        .bind(3, j.trace_id)
        .bind(4, j.op == operation::copy ? "copy" : "delete")
        .bind(5, j.integration_id)
        .bind(6, j.source)
        .bind(7, j.request_type)
        .bind(9, ms(j.received_at))
        .bind(10, ms(j.updated_at))
        .bind_blob(11, s.subject.bytes)
        .bind(12, static_cast<std::int64_t>(s.subject.form))
        .bind(13, running ? (j.attempts > 0 ? "retrying" : "queued") : to_string(j.state))
        .bind(14, static_cast<std::int64_t>(j.attempts))
        .bind(15, ms(j.next_attempt_at))
        .bind(16, to_string(j.outcome))
        .bind(17, j.outcome_message)
        .bind(18, std::int64_t{j.reported ? 1 : 0})
        .bind(20, static_cast<std::int64_t>(j.report_attempts))
        .bind(22, std::int64_t{s.report_gave_up ? 1 : 0})
        .bind(23, std::int64_t{j.op == operation::opt_out ? 1 : 0})
        .bind(24, j.right.id)
        .bind(25, j.right.name)
        .bind(26, j.right.type)
        .bind(27, j.subject_id_name);
    const auto optional = [&](int i, const std::optional<time_point>& t) {
      if (t) {
        q.bind(i, ms(*t));
      } else {
        q.bind_null(i);
      }
    };
    optional(8, j.created_at);
    optional(21, s.report_next_at);
    optional(28, j.file_link_expires_at);
    if (j.report_error) {
      q.bind(19, *j.report_error);
    } else {
      q.bind_null(19);
    }
    if (q.step() != SQLITE_DONE) {
      return error("importing a job");
    }
  }
  for (const auto& step : j.history) {
    if (auto r = add_step(j.id, step); !r) {
      return r;
    }
  }
  if (is_active(j.state)) {
    ++active_;
  }
  return {};
}

result<void> sqlite_engine::finish_import() {
  if (auto r = commit(); !r) {
    return r;
  }
  return prepare();  // the active count, as committed
}

void sqlite_engine::abort_import() {
  rollback();
  active_ = 0;
}

}  // namespace dsr::detail
