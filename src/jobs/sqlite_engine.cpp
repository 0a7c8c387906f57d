// The SQLite engine (store_engine.hpp): WAL mode with synchronous=FULL so that a commit survives
// kill -9 and power loss, statements prepared once, schema versioned through PRAGMA user_version.
// SQL and glue only; the rules are the job store's.

#include "dsr/jobs/store_engine.hpp"

#include "dsr/jobs/sqlite_glue.hpp"

#include <fmt/format.h>

#include <array>
#include <string>

namespace dsr {
namespace {

using sqlite::exec;
using sqlite::query_text;
using sqlite::statement;
using sqlite::use;

// Each entry moves the schema from version i to i + 1. Never edit an entry that has shipped;
// append a new one.
constexpr std::array<const char*, 4> migrations{
    R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE,
  trace_id TEXT NOT NULL UNIQUE,
  operation TEXT NOT NULL CHECK (operation IN ('delete', 'copy')),
  integration_id TEXT NOT NULL,
  source TEXT NOT NULL,
  request_type TEXT NOT NULL,
  created_at_ms INTEGER,
  received_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  subject BLOB NOT NULL,
  subject_form INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms INTEGER NOT NULL,
  lease_owner TEXT,
  lease_expires_at_ms INTEGER,
  outcome TEXT NOT NULL DEFAULT '',
  outcome_message TEXT NOT NULL DEFAULT '',
  reported INTEGER NOT NULL DEFAULT 0,
  report_error TEXT
);
CREATE INDEX jobs_due ON jobs (state, next_attempt_at_ms);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE TABLE job_steps (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  step TEXT NOT NULL,
  result TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
)sql",
    // 2: the MineOS outbox: when the outcome is due to be reported, how often it was tried.
    R"sql(
ALTER TABLE jobs ADD COLUMN report_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN report_next_at_ms INTEGER;
ALTER TABLE jobs ADD COLUMN report_gave_up INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_outbox ON jobs (report_next_at_ms) WHERE reported = 0 AND report_gave_up = 0;
)sql",
    // v3: one row rewritten to test that commits work again after a fault.
    R"sql(
CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL);
)sql",
    // v4: MineOS's rights and identifiers. `operation` stays the URL the request came to ('delete'
    // or 'copy': dedupe and the report's action); opt_out marks a delete-URL job that revokes
    // consent. The right as received (request_type held requestType.id, else request.type: an
    // old queued job is routed by it), the ID name of the subject (''= the e-mail), and the
    // expiry of a copy's file link.
    R"sql(
ALTER TABLE jobs ADD COLUMN opt_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN right_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN right_name TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN right_type TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN subject_id_name TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN file_link_expires_at_ms INTEGER;
UPDATE jobs SET right_id = request_type;
CREATE INDEX jobs_file_links ON jobs (file_link_expires_at_ms)
  WHERE file_link_expires_at_ms IS NOT NULL;
)sql",
};

// The states in which a job is finished (its outcome reported, or to be).
constexpr const char* finished_states =
    "('completed', 'user_not_found', 'failed', 'cancelled', 'missing_identifiers')";

constexpr const char* job_columns =
    "id, request_id, trace_id, operation, integration_id, source, request_type, created_at_ms, "
    "received_at_ms, updated_at_ms, subject, state, attempts, next_attempt_at_ms, lease_owner, "
    "lease_expires_at_ms, outcome, outcome_message, reported, report_error, report_attempts, "
    "subject_form, opt_out, right_id, right_name, right_type, subject_id_name, "
    "file_link_expires_at_ms, report_next_at_ms, report_gave_up";

std::int64_t ms(time_point t) {
  return t.time_since_epoch().count();
}
time_point from_ms(std::int64_t v) {
  return time_point{millis{v}};
}


class sqlite_engine final : public store_engine {
 public:
  sqlite_engine(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite_engine(const sqlite_engine&) = delete;
  sqlite_engine& operator=(const sqlite_engine&) = delete;
  ~sqlite_engine() override {
    stmts_.reset();
    sqlite3_close_v2(db_);
  }

  result<void> prepare() {
    try {
      stmts_ = std::make_unique<statements>(db_);
    } catch (const std::exception& e) {
      return make_failure(errc::store_corrupt, e.what());
    }
    use q(stmts_->count_active);
    if (q.step() != SQLITE_ROW) {
      return error("counting active jobs");
    }
    active_ = static_cast<std::size_t>(q.integer(0));
    return {};
  }

  std::string_view name() const override { return "sqlite"; }

  result<std::vector<insert_outcome>> insert(std::span<const stored_new_job> jobs,
                                             std::size_t max_active) override {
    std::vector<insert_outcome> outcomes;
    outcomes.reserve(jobs.size());
    if (auto r = begin(); !r) {
      return r.error();
    }
    std::size_t active = active_;
    for (const auto& j : jobs) {
      auto o = insert_one(j, max_active, active);
      if (!o) {
        rollback();
        return o.error();
      }
      outcomes.push_back(std::move(*o));
    }
    if (auto r = commit(); !r) {
      return r.error();
    }
    active_ = active;
    return outcomes;
  }

  result<std::optional<stored_job>> find(std::string_view request_id) override {
    return find_one(stmts_->find_by_request, request_id);
  }

  result<std::vector<stored_job>> list(std::optional<job_state> state,
                                       std::size_t limit) override {
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

  result<std::size_t> count_active() override { return active_; }

  result<std::optional<stored_job>> claim_next(std::string_view owner, time_point now,
                                               std::chrono::milliseconds lease) override {
    if (auto r = begin(); !r) {
      return r.error();
    }
    std::optional<std::int64_t> id;
    {
      use q(stmts_->claim);
      q.bind(1, owner).bind(2, ms(now + lease)).bind(3, ms(now));
      const int rc = q.step();
      if (rc == SQLITE_ROW) {
        id = q.integer(0);
      } else if (rc != SQLITE_DONE) {
        auto e = error("claiming a job");
        rollback();
        return e;
      }
    }
    if (auto r = commit(); !r) {
      return r.error();
    }
    if (!id) {
      return std::optional<stored_job>{};
    }
    return find_one(stmts_->find_by_id, *id);
  }

  result<void> append_step(std::int64_t job_id, std::string_view owner,
                           const job_step& s) override {
    if (auto r = begin(); !r) {
      return r;
    }
    if (auto r = check_lease(job_id, owner); !r) {
      rollback();
      return r;
    }
    if (auto r = add_step(job_id, s); !r) {
      rollback();
      return r;
    }
    return commit();
  }

  result<void> release(std::int64_t job_id, std::string_view owner, const job_release& next,
                       time_point now) override {
    if (auto r = begin(); !r) {
      return r;
    }
    if (auto r = check_lease(job_id, owner); !r) {
      rollback();
      return r;
    }
    {
      use q(stmts_->release);
      q.bind(1, to_string(next.state))
          .bind(2, static_cast<std::int64_t>(next.attempts))
          .bind(3, ms(next.next_attempt_at))
          .bind(4, to_string(next.outcome))
          .bind(5, next.outcome_message)
          .bind(6, ms(now))
          .bind(7, job_id)
          .bind(8,
                next.op ? std::int64_t{*next.op == operation::opt_out ? 1 : 0} : std::int64_t{-1});
      if (q.step() != SQLITE_DONE) {
        auto e = error("releasing a job");
        rollback();
        return e;
      }
    }
    if (auto r = commit(); !r) {
      return r;
    }
    if (!is_active(next.state) && active_ > 0) {
      --active_;
    }
    return {};
  }

  result<std::vector<stored_job>> due_reports(time_point now, std::size_t limit) override {
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

  result<void> record_report(std::int64_t job_id, const report_update& u, time_point now) override {
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

  result<std::optional<dsr::forgettable_subject>> subject_to_forget(std::int64_t job_id) override {
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

  result<void> replace_subject(std::int64_t job_id, const stored_subject& s) override {
    use q(stmts_->forget);
    q.bind(1, job_id).bind_blob(2, s.bytes).bind(3, static_cast<std::int64_t>(s.form));
    if (q.step() != SQLITE_DONE) {
      return error("replacing a finished job's subject by its hash");
    }
    return {};
  }

  result<time_point> file_link_expiry(std::int64_t job_id, time_point proposed,
                                      time_point now) override {
    use q(stmts_->link_expiry);
    q.bind(1, job_id).bind(2, ms(proposed)).bind(3, ms(now));
    if (q.step() != SQLITE_ROW) {
      return error("recording a file link's expiry");
    }
    return from_ms(q.integer(0));
  }

  result<std::vector<std::int64_t>> file_links(time_point now, bool expired) override {
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

  result<bool> apply(const operator_change& c, time_point now) override {
    if (auto r = begin(); !r) {
      return r.error();
    }
    const statement& s = c.verb == operator_verb::requeue  ? stmts_->requeue
                         : c.verb == operator_verb::cancel ? stmts_->cancel
                                                           : stmts_->resend;
    {
      use q(s);
      q.bind(1, c.job_id).bind(2, ms(now)).bind(3, to_string(c.expected));
      if (c.verb == operator_verb::cancel) {
        q.bind(4, to_string(c.outcome)).bind(5, c.outcome_message);
      }
      if (q.step() != SQLITE_DONE) {
        auto e = error("applying an operator action");
        rollback();
        return e;
      }
    }
    if (sqlite3_changes(db_) == 0) {
      rollback();
      return false;
    }
    if (auto r = add_step(c.job_id, c.step); !r) {
      rollback();
      return r.error();
    }
    if (auto r = commit(); !r) {
      return r.error();
    }
    if (c.verb == operator_verb::cancel && active_ > 0) {
      --active_;
    } else if (c.verb == operator_verb::requeue) {
      ++active_;
    }
    return true;
  }

  result<std::size_t> expire_leases(time_point now) override {
    use q(stmts_->expire);
    q.bind(1, ms(now));
    if (q.step() != SQLITE_DONE) {
      return error("expiring leases");
    }
    return static_cast<std::size_t>(sqlite3_changes(db_));
  }

  result<std::size_t> renew_leases(std::span<const std::string> owners, time_point now,
                                   std::chrono::milliseconds lease) override {
    if (auto r = begin(); !r) {
      return r.error();
    }
    std::size_t renewed = 0;
    for (const auto& owner : owners) {
      use q(stmts_->renew);
      q.bind(1, owner).bind(2, ms(now + lease));
      if (q.step() != SQLITE_DONE) {
        auto e = error("renewing leases");
        rollback();
        return e;
      }
      renewed += static_cast<std::size_t>(sqlite3_changes(db_));
    }
    if (auto r = commit(); !r) {
      return r.error();
    }
    return renewed;
  }

  result<void> each_job(
      const std::function<result<void>(const stored_job&)>& each) override {
    const auto sql = fmt::format("SELECT {} FROM jobs WHERE id > ?1 ORDER BY id LIMIT 1",
                                 job_columns);
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

  result<void> begin_import() override {
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

  result<void> import_job(const stored_job& s) override {
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

  result<void> finish_import() override {
    if (auto r = commit(); !r) {
      return r;
    }
    return prepare();  // the active count, as committed
  }

  void abort_import() override {
    rollback();
    active_ = 0;
  }

  result<void> set_max_size(std::uint64_t bytes) override {
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

  result<std::size_t> purge_finished(time_point before) override {
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

  result<job_stats> stats(time_point now, std::chrono::milliseconds deadline,
                          std::chrono::milliseconds warning) override {
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

  result<std::vector<stored_job>> at_risk(time_point now, std::chrono::milliseconds deadline,
                                          std::chrono::milliseconds warning,
                                          std::size_t limit) override {
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

  result<void> probe_write(time_point now) override {
    use q(stmts_->probe);
    q.bind(1, ms(now));
    if (q.step() != SQLITE_DONE) {
      return error("test-writing the store");
    }
    return {};
  }

 private:
  struct statements {
    explicit statements(sqlite3* db)
        : begin(db, "BEGIN IMMEDIATE"),
          commit(db, "COMMIT"),
          rollback(db, "ROLLBACK"),
          by_trace(db, "SELECT request_id FROM jobs WHERE trace_id = ?1"),
          by_request(db, "SELECT operation FROM jobs WHERE request_id = ?1"),
          insert_job(db,
                     "INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, "
                     "request_type, created_at_ms, received_at_ms, updated_at_ms, subject, state, "
                     "next_attempt_at_ms, subject_form, opt_out, right_id, right_name, "
                     "right_type, subject_id_name, outcome, outcome_message, report_next_at_ms) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?11, ?8, ?10, ?12, ?13, ?14, "
                     "?15, ?16, ?17, ?18, CASE WHEN ?11 = 'queued' THEN NULL ELSE ?8 END)"),
          insert_step(db,
                      "INSERT INTO job_steps (job_id, seq, at_ms, step, result) VALUES (?1, "
                      "(SELECT COALESCE(MAX(seq), 0) + 1 FROM job_steps WHERE job_id = ?1), ?2, "
                      "?3, ?4)"),
          find_by_request(db,
                          fmt::format("SELECT {} FROM jobs WHERE request_id = ?1", job_columns)),
          find_by_id(db, fmt::format("SELECT {} FROM jobs WHERE id = ?1", job_columns)),
          list_all(db, fmt::format("SELECT {} FROM jobs ORDER BY id DESC LIMIT ?1", job_columns)),
          list_state(db, fmt::format("SELECT {} FROM jobs WHERE state = ?1 ORDER BY id DESC "
                                     "LIMIT ?2",
                                     job_columns)),
          history(db, "SELECT at_ms, step, result FROM job_steps WHERE job_id = ?1 ORDER BY seq"),
          count_by_state(db, "SELECT state, COUNT(*) FROM jobs GROUP BY state"),
          oldest_waiting(db,
                         "SELECT MIN(received_at_ms) FROM jobs WHERE state IN ('queued', "
                         "'retrying')"),
          deadlines(db,
                    "SELECT COALESCE(SUM(due <= ?1), 0), COALESCE(SUM(due > ?1 AND due <= ?1 + "
                    "?3), 0) FROM (SELECT COALESCE(created_at_ms, received_at_ms) + ?2 AS due "
                    "FROM jobs WHERE state IN ('queued', 'running', 'retrying', 'failed'))"),
          at_risk(db, fmt::format("SELECT {} FROM jobs WHERE state IN ('queued', 'running', "
                                  "'retrying', 'failed') AND COALESCE(created_at_ms, "
                                  "received_at_ms) + ?2 <= ?1 + ?3 ORDER BY "
                                  "COALESCE(created_at_ms, received_at_ms), id LIMIT ?4",
                                  job_columns)),
          count_active(db,
                       "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', "
                       "'retrying')"),
          claim(db,
                "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_expires_at_ms = ?2, "
                "updated_at_ms = ?3 WHERE id = (SELECT id FROM jobs WHERE state IN ('queued', "
                "'retrying') AND next_attempt_at_ms <= ?3 ORDER BY next_attempt_at_ms, id LIMIT "
                "1) RETURNING id"),
          lease_of(db, "SELECT lease_owner FROM jobs WHERE id = ?1 AND state = 'running'"),
          release(db,
                  "UPDATE jobs SET state = ?1, attempts = ?2, next_attempt_at_ms = ?3, outcome = "
                  "CASE WHEN ?4 = '' THEN outcome ELSE ?4 END, outcome_message = CASE WHEN ?5 = "
                  "'' THEN outcome_message ELSE ?5 END, updated_at_ms = ?6, lease_owner = NULL, "
                  "lease_expires_at_ms = NULL, report_next_at_ms = CASE WHEN ?1 IN ('completed', "
                  "'user_not_found', 'failed', 'cancelled', 'missing_identifiers') THEN ?6 ELSE "
                  "NULL END, opt_out = CASE WHEN ?8 < 0 THEN opt_out ELSE ?8 END WHERE id = ?7"),
          due_reports(db, fmt::format("SELECT {} FROM jobs WHERE reported = 0 AND report_gave_up "
                                      "= 0 AND report_next_at_ms <= ?1 ORDER BY "
                                      "report_next_at_ms LIMIT ?2",
                                      job_columns)),
          requeue(db,
                  "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at_ms = ?2, "
                  "outcome = '', outcome_message = '', reported = 0, report_error = NULL, "
                  "report_attempts = 0, report_next_at_ms = NULL, report_gave_up = 0, "
                  "updated_at_ms = ?2 WHERE id = ?1 AND state = ?3"),
          resend(db,
                 "UPDATE jobs SET report_gave_up = 0, report_attempts = 0, report_next_at_ms = "
                 "?2, updated_at_ms = ?2 WHERE id = ?1 AND state = ?3 AND reported = 0"),
          cancel(db,
                 "UPDATE jobs SET state = 'cancelled', outcome = ?4, outcome_message = ?5, "
                 "report_next_at_ms = ?2, updated_at_ms = ?2 WHERE id = ?1 AND state = ?3"),
          record_report(db,
                        "UPDATE jobs SET reported = ?2, report_error = ?3, report_attempts = ?4, "
                        "report_next_at_ms = CASE WHEN ?2 = 1 OR ?6 = 1 THEN NULL ELSE ?5 END, "
                        "report_gave_up = ?6, updated_at_ms = ?7 WHERE id = ?1"),
          expire(db,
                 "UPDATE jobs SET state = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' "
                 "END, lease_owner = NULL, lease_expires_at_ms = NULL WHERE state = 'running' AND "
                 "lease_expires_at_ms < ?1"),
          probe(db, "INSERT OR REPLACE INTO store_probe (id, at_ms) VALUES (1, ?1)"),
          count_all(db, "SELECT COUNT(*) FROM jobs"),
          import_job(db,
                     "INSERT INTO jobs (id, request_id, trace_id, operation, integration_id, "
                     "source, request_type, created_at_ms, received_at_ms, updated_at_ms, subject, "
                     "subject_form, state, attempts, next_attempt_at_ms, outcome, outcome_message, "
                     "reported, report_error, report_attempts, report_next_at_ms, report_gave_up, "
                     "opt_out, right_id, right_name, right_type, subject_id_name, "
                     "file_link_expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                     "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, "
                     "?26, ?27, ?28)"),
          renew(db,
                "UPDATE jobs SET lease_expires_at_ms = ?2 WHERE state = 'running' AND lease_owner "
                "= ?1"),
          subject_of(db,
                     "SELECT subject, subject_form, request_id, subject_id_name FROM jobs WHERE id "
                     "= ?1 AND state IN ('completed', 'user_not_found', 'cancelled', "
                     "'missing_identifiers') AND subject_form != 2"),
          forget(db, "UPDATE jobs SET subject = ?2, subject_form = ?3 WHERE id = ?1"),
          purge_steps(db, fmt::format("DELETE FROM job_steps WHERE job_id IN (SELECT id FROM jobs "
                                      "WHERE state IN {} AND updated_at_ms < ?1)",
                                      finished_states)),
          purge_jobs(db, fmt::format("DELETE FROM jobs WHERE state IN {} AND updated_at_ms < ?1",
                                     finished_states)),
          link_expiry(db,
                      "UPDATE jobs SET file_link_expires_at_ms = CASE WHEN "
                      "file_link_expires_at_ms IS NULL OR (reported = 0 AND "
                      "file_link_expires_at_ms <= ?3) THEN ?2 ELSE file_link_expires_at_ms END "
                      "WHERE id = ?1 RETURNING file_link_expires_at_ms"),
          expired_links(db,
                        "SELECT id FROM jobs WHERE file_link_expires_at_ms IS NOT NULL AND "
                        "file_link_expires_at_ms <= ?1 AND reported = 1"),
          live_links(db,
                     "SELECT id FROM jobs WHERE file_link_expires_at_ms IS NOT NULL AND "
                     "file_link_expires_at_ms > ?1") {}

    statement begin, commit, rollback, by_trace, by_request, insert_job, insert_step,
        find_by_request, find_by_id, list_all, list_state, history, count_by_state, oldest_waiting,
        deadlines, at_risk, count_active, claim, lease_of, release, due_reports, requeue, resend,
        cancel, record_report, expire, probe, count_all, import_job, renew, subject_of, forget, purge_steps, purge_jobs,
        link_expiry, expired_links, live_links;
  };

  failure error(std::string_view doing) const {
    const int rc = sqlite3_extended_errcode(db_);
    const int primary = rc & 0xff;
    const errc code = (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
                          ? errc::store_corrupt
                          : errc::store_unavailable;
    return make_failure(code, fmt::format("job store {}: {} while {} ({})", path_,
                                          sqlite3_errmsg(db_), doing, sqlite3_errstr(rc)));
  }

  result<void> begin() {
    use q(stmts_->begin);
    if (q.step() != SQLITE_DONE) {
      return error("starting a transaction");
    }
    return {};
  }

  result<void> commit() {
    {
      use q(stmts_->commit);
      if (q.step() == SQLITE_DONE) {
        return {};
      }
    }
    auto e = error("committing");
    rollback();
    return e;
  }

  void rollback() {
    if (sqlite3_get_autocommit(db_) == 0) {
      use q(stmts_->rollback);
      q.step();
    }
  }

  // What an earlier job says about this request: a repeat of its trace id, or of its request id
  // (the same operation: a repeat; the other one: a conflict). Empty when it is new.
  result<std::optional<insert_outcome>> earlier(const new_job& j) {
    {
      use q(stmts_->by_trace);
      q.bind(1, j.trace_id);
      const int rc = q.step();
      if (rc == SQLITE_ROW) {
        return insert_outcome{insert_outcome::kind::duplicate, q.text(0)};
      }
      if (rc != SQLITE_DONE) {
        return error("looking up a trace id");
      }
    }
    use q(stmts_->by_request);
    q.bind(1, j.request_id);
    const int rc = q.step();
    if (rc == SQLITE_ROW) {
      // Delete and opt-out both came to the Delete URL: the same operation for MineOS.
      const bool same = (q.text(0) == "copy") == (j.op == operation::copy);
      return insert_outcome{same ? insert_outcome::kind::duplicate : insert_outcome::kind::conflict,
                            j.request_id};
    }
    if (rc != SQLITE_DONE) {
      return error("looking up a request id");
    }
    return std::optional<insert_outcome>{};
  }

  // A new request is inserted straight away: the UNIQUE indexes on request_id and trace_id refuse
  // a repeat, and only then (or when the queue is full) is the earlier job looked up. The answers
  // are those of looking up first; an accepted job costs one index probe per key instead of two.
  result<insert_outcome> insert_one(const stored_new_job& row, std::size_t max_active,
                                    std::size_t& active) {
    const new_job& j = *row.job;
    // A job that ends at intake never waits in the queue: it does not count against its capacity.
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
    {
      use q(stmts_->insert_job);
      q.bind(1, j.request_id)
          .bind(2, j.trace_id)
          .bind(3, j.op == operation::copy ? "copy" : "delete")
          .bind(4, j.integration_id)
          .bind(5, j.source)
          .bind(6, j.request_type)
          .bind(11, j.ended ? to_string(j.ended->state) : "queued")
          .bind(12, std::int64_t{j.op == operation::opt_out ? 1 : 0})
          .bind(13, j.right.id)
          .bind(14, j.right.name)
          .bind(15, j.right.type)
          .bind(16, j.subject_id_name)
          .bind(17, to_string(j.ended ? j.ended->outcome : job_outcome::none))
          .bind(18, j.ended ? j.ended->message : std::string());
      if (j.created_at) {
        q.bind(7, ms(*j.created_at));
      } else {
        q.bind_null(7);
      }
      q.bind(8, ms(j.received_at))
          .bind_blob(9, row.subject.bytes)
          .bind(10, static_cast<std::int64_t>(row.subject.form));
      if (const int rc = q.step(); rc != SQLITE_DONE) {
        auto failed = error("inserting a job");
        if (rc != SQLITE_CONSTRAINT_UNIQUE) {
          return failed;
        }
        q.reset();  // the failed statement is undone; the transaction goes on
        auto seen = earlier(j);
        if (!seen) {
          return seen.error();
        }
        if (!*seen) {
          return failed;
        }
        return **seen;
      }
    }
    const auto id = sqlite3_last_insert_rowid(db_);
    for (const auto& step : row.steps) {
      if (auto r = add_step(id, step); !r) {
        return r.error();
      }
    }
    if (!j.ended) {
      ++active;
    }
    return insert_outcome{insert_outcome::kind::inserted, j.request_id};
  }

  result<void> add_step(std::int64_t job_id, const job_step& s) {
    use q(stmts_->insert_step);
    q.bind(1, job_id).bind(2, ms(s.at)).bind(3, to_string(s.step)).bind(4, s.result);
    if (q.step() != SQLITE_DONE) {
      return error("journaling a step");
    }
    return {};
  }

  result<void> check_lease(std::int64_t job_id, std::string_view owner) {
    use q(stmts_->lease_of);
    q.bind(1, job_id);
    const int rc = q.step();
    if (rc == SQLITE_ROW && q.text(0) == owner) {
      return {};
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      return error("checking a lease");
    }
    return make_failure(errc::lease_lost,
                        fmt::format("job {} is not leased by {} any more", job_id, owner));
  }

  // The job (with its history) selected by a statement taking one key, or nullopt.
  template <class Key>
  result<std::optional<stored_job>> find_one(const statement& s, Key key) {
    std::optional<stored_job> found;
    {
      use q(s);
      q.bind(1, key);
      const int rc = q.step();
      if (rc == SQLITE_ROW) {
        found = read_job(q);
      } else if (rc != SQLITE_DONE) {
        return error("reading a job");
      }
    }
    if (found) {
      if (auto r = load_history(found->j); !r) {
        return r.error();
      }
    }
    return found;
  }

  stored_job read_job(const use& q) const {
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
    return row;
  }

  result<void> load_history(job& j) {
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

  sqlite3* db_;
  std::string path_;
  std::unique_ptr<statements> stmts_;
  std::size_t active_ = 0;
};

// A store read as it is, for store migrate: nothing written, no schema migrated (an older schema
// is refused: the daemon of this version upgrades it when it opens it once).
result<std::unique_ptr<store_engine>> open_read_only(const sqlite_store_options& options) {
  const std::string path = options.path.string();
  if (!std::filesystem::is_regular_file(options.path)) {
    return make_failure(errc::not_found, fmt::format("job store {}: no such file", path));
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = fmt::format("job store {}: cannot open: {}", path,
                                  db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return make_failure(errc::store_unavailable, std::move(msg));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  const auto version = query_text(db, "PRAGMA user_version");
  if (!version || std::stoi(*version) != static_cast<int>(migrations.size())) {
    sqlite3_close_v2(db);
    return make_failure(
        errc::store_corrupt,
        fmt::format("job store {}: has schema version {}, this build reads {}: open it once with "
                    "this version's daemon (engine = \"sqlite\"), stop it, then move it",
                    path, version.value_or("(unreadable)"), migrations.size()));
  }
  auto engine = std::make_unique<sqlite_engine>(db, path);
  if (auto r = engine->prepare(); !r) {
    return r.error();
  }
  return std::unique_ptr<store_engine>(std::move(engine));
}

}  // namespace

result<std::unique_ptr<store_engine>> open_sqlite_engine(const sqlite_store_options& options) {
  const std::string path = options.path.string();
  const bool memory = path == ":memory:";
  if (options.read_only) {
    return open_read_only(options);
  }
  if (!memory && options.path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(options.path.parent_path(), ec);
    if (ec) {
      return make_failure(errc::store_unavailable,
                          fmt::format("job store {}: cannot create its directory {}: {}", path,
                                      options.path.parent_path().string(), ec.message()));
    }
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  const auto fail = [&](errc code, std::string what) -> failure {
    std::string msg = fmt::format("job store {}: {}: {}", path, what,
                                  db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return make_failure(code, std::move(msg));
  };
  if (rc != SQLITE_OK) {
    return fail(errc::store_unavailable, "cannot open");
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, 5000);
  const auto mode = query_text(db, "PRAGMA journal_mode = WAL");
  if (!mode) {
    return fail(errc::store_corrupt, "cannot be read as an SQLite database");
  }
  if (!memory && *mode != "wal") {
    return fail(errc::store_unavailable,
                fmt::format("cannot switch to WAL mode (journal_mode is {}); the file system "
                            "must support shared memory and locking",
                            *mode));
  }
  if (!exec(db, "PRAGMA synchronous = FULL") || !exec(db, "PRAGMA foreign_keys = ON")) {
    return fail(errc::store_unavailable, "cannot set pragmas");
  }
  if (options.max_page_count != 0) {
    const auto sql = fmt::format("PRAGMA max_page_count = {}", options.max_page_count);
    exec(db, sql.c_str());
  }
  if (options.integrity_check && !memory) {
    const auto check = query_text(db, "PRAGMA quick_check");
    if (!check || *check != "ok") {
      return fail(errc::store_corrupt,
                  fmt::format("failed its integrity check ({}); restore it from a backup",
                              check.value_or("unreadable")));
    }
  }
  const auto version_text = query_text(db, "PRAGMA user_version");
  const int version = version_text ? std::stoi(*version_text) : -1;
  if (version < 0) {
    return fail(errc::store_corrupt, "has no readable schema version");
  }
  if (version > static_cast<int>(migrations.size())) {
    return fail(errc::store_schema_newer,
                fmt::format("has schema version {}, newer than this build knows ({}); run a "
                            "newer dsr-connector",
                            version, migrations.size()));
  }
  for (auto v = static_cast<std::size_t>(version); v < migrations.size(); ++v) {
    const std::string sql =
        fmt::format("BEGIN IMMEDIATE; {} PRAGMA user_version = {}; COMMIT;", migrations[v], v + 1);
    if (!exec(db, sql.c_str())) {
      exec(db, "ROLLBACK");
      return fail(errc::store_unavailable, fmt::format("cannot migrate to schema {}", v + 1));
    }
  }
  auto engine = std::make_unique<sqlite_engine>(db, path);
  if (auto r = engine->prepare(); !r) {
    return r.error();
  }
  return std::unique_ptr<store_engine>(std::move(engine));
}

}  // namespace dsr
