// The PostgreSQL engine (store_engine.hpp), through libpq on the store thread: one connection,
// each verb one transaction (or one statement, atomic by itself), every statement unnamed and
// sent with its parameters (no session state: PgBouncer in transaction mode works). A broken
// connection fails the verb with store_unavailable and is made again on the next one. The schema
// is versioned in dsr_schema and migrated in one transaction under a transaction-scoped advisory
// lock, so that daemons starting together migrate once. SQL and glue only; the rules are the job
// store's.

#include "dsr/jobs/store_engine.hpp"

#include "dsr/jobs/pg_glue.hpp"

#include <fmt/format.h>

#include <array>
#include <map>
#include <string>

namespace dsr {
namespace {

// Each entry moves the schema from version i to i + 1. Never edit an entry that has shipped;
// append a new one. Times are milliseconds since the epoch, as in the SQLite engine.
constexpr std::array<const char*, 1> migrations{
    R"sql(
CREATE TABLE jobs (
  id bigserial PRIMARY KEY,
  request_id text NOT NULL UNIQUE,
  trace_id text NOT NULL UNIQUE,
  operation text NOT NULL CHECK (operation IN ('delete', 'copy')),
  opt_out boolean NOT NULL DEFAULT false,
  integration_id text NOT NULL,
  source text NOT NULL,
  request_type text NOT NULL,
  right_id text NOT NULL DEFAULT '',
  right_name text NOT NULL DEFAULT '',
  right_type text NOT NULL DEFAULT '',
  created_at_ms bigint,
  received_at_ms bigint NOT NULL,
  updated_at_ms bigint NOT NULL,
  subject bytea NOT NULL,
  subject_form smallint NOT NULL,
  subject_id_name text NOT NULL DEFAULT '',
  state text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at_ms bigint NOT NULL,
  lease_owner text,
  lease_expires_at_ms bigint,
  outcome text NOT NULL DEFAULT '',
  outcome_message text NOT NULL DEFAULT '',
  reported boolean NOT NULL DEFAULT false,
  report_error text,
  report_attempts integer NOT NULL DEFAULT 0,
  report_next_at_ms bigint,
  report_gave_up boolean NOT NULL DEFAULT false,
  file_link_expires_at_ms bigint
);
CREATE INDEX jobs_due ON jobs (next_attempt_at_ms, id) WHERE state IN ('queued', 'retrying');
CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running', 'retrying');
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_leases ON jobs (lease_expires_at_ms) WHERE state = 'running';
CREATE INDEX jobs_outbox ON jobs (report_next_at_ms) WHERE NOT reported AND NOT report_gave_up;
CREATE INDEX jobs_file_links ON jobs (file_link_expires_at_ms)
  WHERE file_link_expires_at_ms IS NOT NULL;
CREATE TABLE job_steps (
  job_id bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  seq integer NOT NULL,
  at_ms bigint NOT NULL,
  step text NOT NULL,
  result text NOT NULL,
  PRIMARY KEY (job_id, seq)
);
CREATE TABLE store_probe (id integer PRIMARY KEY CHECK (id = 1), at_ms bigint NOT NULL);
)sql",
};

// Taken with pg_advisory_xact_lock around a migration: released by COMMIT or ROLLBACK, never
// held by the session. ("dsr-schema" in ASCII.)
constexpr std::int64_t schema_lock = 0x6473722d736368;

constexpr const char* finished_states =
    "('completed', 'user_not_found', 'failed', 'cancelled', 'missing_identifiers')";

constexpr const char* job_columns =
    "id, request_id, trace_id, operation, integration_id, source, request_type, created_at_ms, "
    "received_at_ms, updated_at_ms, subject, state, attempts, next_attempt_at_ms, lease_owner, "
    "lease_expires_at_ms, outcome, outcome_message, reported, report_error, report_attempts, "
    "subject_form, opt_out, right_id, right_name, right_type, subject_id_name, "
    "file_link_expires_at_ms, report_next_at_ms, report_gave_up";

// The next journal line's number, for a job whose id is $1.
constexpr const char* next_seq =
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM job_steps WHERE job_id = $1)";

std::int64_t ms(time_point t) {
  return t.time_since_epoch().count();
}
time_point from_ms(std::int64_t v) {
  return time_point{millis{v}};
}

// The URL as it may be shown: user, host, port and database, never a password or other option.
std::string describe(const std::string& url) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (opts == nullptr) {
    PQfreemem(err);
    return "postgresql (an unreadable [store] url)";
  }
  std::map<std::string, std::string> v;
  for (auto* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) {
      v[o->keyword] = o->val;
    }
  }
  PQconninfoFree(opts);
  std::string out = "postgresql://";
  if (!v["user"].empty()) {
    out += v["user"] + "@";
  }
  out += v["host"];
  if (!v["port"].empty()) {
    out += ":" + v["port"];
  }
  return out + "/" + v["dbname"];
}

class postgres_engine final : public store_engine {
 public:
  explicit postgres_engine(postgres_store_options o)
      : options_(std::move(o)), where_(describe(options_.url)) {}

  std::string_view name() const override { return "postgresql"; }

  // Connects and brings the schema to this build's version.
  result<void> open() {
    if (auto r = connect(); !r) {
      return r;
    }
    if (auto r = run("BEGIN", "starting a migration"); !r) {
      return r;
    }
    auto rolled_back = [&](failure f) -> result<void> {
      pg::exec(conn_.get(), "ROLLBACK");
      return f;
    };
    if (auto r = run("SELECT pg_advisory_xact_lock($1)", "waiting for the schema lock",
                     pg::params().integer(schema_lock));
        !r) {
      return rolled_back(r.error());
    }
    if (auto r = run("CREATE TABLE IF NOT EXISTS dsr_schema (version integer NOT NULL)",
                     "creating the schema version table");
        !r) {
      return rolled_back(r.error());
    }
    auto v = query("SELECT version FROM dsr_schema", "reading the schema version");
    if (!v) {
      return rolled_back(v.error());
    }
    const std::int64_t version = v->count() == 0 ? 0 : v->integer(0, 0);
    if (version > static_cast<std::int64_t>(migrations.size())) {
      return rolled_back(make_failure(
          errc::store_schema_newer,
          fmt::format("job store {}: has schema version {}, newer than this build knows ({}); run "
                      "a newer dsr-connector",
                      where_, version, migrations.size())));
    }
    for (auto i = static_cast<std::size_t>(version); i < migrations.size(); ++i) {
      pg::rows r(PQexec(conn_.get(), migrations[i]));
      if (!r.ok()) {
        return rolled_back(make_failure(
            errc::store_unavailable,
            fmt::format("job store {}: cannot migrate to schema {}: {} (SQLSTATE {})", where_,
                        i + 1, r.message(), r.sqlstate())));
      }
    }
    const char* set_version = v->count() == 0 ? "INSERT INTO dsr_schema (version) VALUES ($1)"
                                              : "UPDATE dsr_schema SET version = $1";
    if (auto r = run(set_version, "recording the schema version",
                     pg::params().integer(static_cast<std::int64_t>(migrations.size())));
        !r) {
      return rolled_back(r.error());
    }
    return commit();
  }

  result<std::vector<insert_outcome>> insert(std::span<const stored_new_job> jobs,
                                             std::size_t max_active) override {
    if (auto r = begin(); !r) {
      return r.error();
    }
    auto active = query(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'retrying')",
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

  result<std::optional<stored_job>> find(std::string_view request_id) override {
    return find_one(fmt::format("SELECT {} FROM jobs WHERE request_id = $1", job_columns),
                    pg::params().text(request_id));
  }

  result<std::vector<stored_job>> list(std::optional<job_state> state,
                                       std::size_t limit) override {
    pg::params p;
    std::string sql;
    if (state) {
      p.text(to_string(*state));
      sql = fmt::format("SELECT {} FROM jobs WHERE state = $1 ORDER BY id DESC LIMIT $2",
                        job_columns);
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

  result<std::size_t> count_active() override {
    auto r = read("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'retrying')",
                   "counting active jobs");
    if (!r) {
      return r.error();
    }
    return static_cast<std::size_t>(r->integer(0, 0));
  }

  // SKIP LOCKED: daemons claiming at once take different jobs instead of waiting for each other.
  result<std::optional<stored_job>> claim_next(std::string_view owner, time_point now,
                                               std::chrono::milliseconds lease) override {
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
  result<void> append_step(std::int64_t job_id, std::string_view owner,
                           const job_step& s) override {
    const auto sql = fmt::format(
        "WITH held AS (SELECT id FROM jobs WHERE id = $1 AND state = 'running' AND lease_owner = "
        "$2 FOR UPDATE) INSERT INTO job_steps (job_id, seq, at_ms, step, result) SELECT id, {}, "
        "$3, $4, $5 FROM held",
        next_seq);
    auto r = query(sql.c_str(), "journaling a step",
                   pg::params().integer(job_id).text(owner).integer(ms(s.at)).text(to_string(s.step)).text(
                       s.result));
    if (!r) {
      return r.error();
    }
    if (r->affected() == 0) {
      return lease_lost(job_id, owner);
    }
    return {};
  }

  result<void> release(std::int64_t job_id, std::string_view owner, const job_release& next,
                       time_point now) override {
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

  result<std::size_t> expire_leases(time_point now) override {
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

  result<std::size_t> renew_leases(std::span<const std::string> owners, time_point now,
                                   std::chrono::milliseconds lease) override {
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

  result<std::vector<stored_job>> due_reports(time_point now, std::size_t limit) override {
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

  result<void> record_report(std::int64_t job_id, const report_update& u,
                             time_point now) override {
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

  result<std::optional<forgettable_subject>> subject_to_forget(std::int64_t job_id) override {
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
    return std::optional<forgettable_subject>{forgettable_subject{
        r->text(0, 2), r->text(0, 3),
        stored_subject{r->bytes(0, 0), subject_form{r->integer(0, 1)}}}};
  }

  result<void> replace_subject(std::int64_t job_id, const stored_subject& s) override {
    auto r = query("UPDATE jobs SET subject = $2, subject_form = $3 WHERE id = $1",
                   "replacing a finished job's subject by its hash",
                   pg::params().integer(job_id).bytes(s.bytes).integer(
                       static_cast<std::int64_t>(s.form)));
    return r ? result<void>{} : result<void>{r.error()};
  }

  // One statement: the guarded change and its journal line commit together or not at all.
  result<bool> apply(const operator_change& c, time_point now) override {
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

  result<void> probe_write(time_point now) override {
    auto r = query(
        "INSERT INTO store_probe (id, at_ms) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at_ms "
        "= excluded.at_ms",
        "test-writing the store", pg::params().integer(ms(now)));
    return r ? result<void>{} : result<void>{r.error()};
  }

  result<void> each_job(
      const std::function<result<void>(const stored_job&)>& each) override {
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
  result<void> begin_import() override {
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
      return rollback(make_failure(errc::conflict,
                                   fmt::format("job store {} already holds {} job(s); jobs are "
                                               "moved into an empty store only",
                                               where_, n->integer(0, 0))));
    }
    return {};
  }

  result<void> import_job(const stored_job& s) override {
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

  result<void> finish_import() override {
    if (auto r = run("SELECT setval(pg_get_serial_sequence('jobs', 'id'), GREATEST((SELECT "
                     "MAX(id) FROM jobs), 1))",
                     "moving the job id sequence");
        !r) {
      return rollback(r.error());
    }
    return commit();
  }

  void abort_import() override { rollback(failure{}); }

  // The server's disk is the database administrator's to cap.
  result<void> set_max_size(std::uint64_t) override { return {}; }

  result<time_point> file_link_expiry(std::int64_t job_id, time_point proposed,
                                      time_point now) override {
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

  result<std::vector<std::int64_t>> file_links(time_point now, bool expired) override {
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

  result<std::size_t> purge_finished(time_point before) override {
    const auto sql =
        fmt::format("DELETE FROM jobs WHERE state IN {} AND updated_at_ms < $1", finished_states);
    auto r = query(sql.c_str(), "purging old jobs", pg::params().integer(ms(before)));
    if (!r) {
      return r.error();
    }
    return static_cast<std::size_t>(r->affected());
  }

  result<job_stats> stats(time_point now, std::chrono::milliseconds deadline,
                          std::chrono::milliseconds warning) override {
    job_stats out;
    auto by_state = read("SELECT state, COUNT(*) FROM jobs GROUP BY state",
                          "counting jobs by state");
    if (!by_state) {
      return by_state.error();
    }
    for (int i = 0; i < by_state->count(); ++i) {
      if (const auto st = parse_job_state(by_state->text(i, 0))) {
        out.by_state[static_cast<std::size_t>(*st)] =
            static_cast<std::uint64_t>(by_state->integer(i, 1));
      }
    }
    auto oldest =
        read("SELECT MIN(received_at_ms) FROM jobs WHERE state IN ('queued', 'retrying')",
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

  result<std::vector<stored_job>> at_risk(time_point now, std::chrono::milliseconds deadline,
                                          std::chrono::milliseconds warning,
                                          std::size_t limit) override {
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

 private:
  result<void> connect() {
    std::vector<const char*> keys{"connect_timeout", "application_name", "keepalives",
                                  "keepalives_idle", "keepalives_interval", "keepalives_count",
                                  "dbname"};
    const auto timeout = std::to_string(options_.connect_timeout.count());
    std::vector<const char*> values{timeout.c_str(), "dsr-connector", "1", "30", "10", "3",
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
    PQsetNoticeProcessor(conn_.get(), [](void*, const char*) {}, nullptr);
    return {};
  }

  // A statement's rows, or why it failed. A broken connection is dropped, and made again by the
  // next statement. A statement that `may_repeat` (one that reads, or BEGIN) and found the
  // connection broken outside a transaction (the server restarted or failed over since the last
  // verb) runs once more on a new connection; a write is never repeated, since it may have
  // committed before the connection broke.
  result<pg::rows> query(const char* sql, std::string_view doing, const pg::params& p = {},
                         bool may_repeat = false) {
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
    const errc code = state == "XX001" || state == "XX002" ? errc::store_corrupt
                                                           : errc::store_unavailable;
    return make_failure(code, fmt::format("job store {}: {} while {}{}", where_, why, doing,
                                          state.empty() ? "" : " (SQLSTATE " + state + ")"));
  }

  result<void> run(const char* sql, std::string_view doing, const pg::params& p = {},
                   bool may_repeat = false) {
    auto r = query(sql, doing, p, may_repeat);
    return r ? result<void>{} : result<void>{r.error()};
  }

  result<pg::rows> read(const char* sql, std::string_view doing, const pg::params& p = {}) {
    return query(sql, doing, p, true);
  }

  result<void> begin() { return run("BEGIN", "starting a transaction", {}, true); }

  // A COMMIT whose answer is lost leaves its outcome unknown: the caller reports a failure, and
  // a repeat of the request finds the job if it was committed (dedupe).
  result<void> commit() { return run("COMMIT", "committing"); }

  failure rollback(failure f) {
    if (conn_ != nullptr && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      pg::exec(conn_.get(), "ROLLBACK");
    }
    return f;
  }

  failure lease_lost(std::int64_t job_id, std::string_view owner) const {
    return make_failure(errc::lease_lost,
                        fmt::format("job {} is not leased by {} any more", job_id, owner));
  }

  // What an earlier job says about this request: a repeat of its trace id, or of its request id
  // (the same operation URL: a repeat; the other one: a conflict). Empty when it is new.
  result<std::optional<insert_outcome>> earlier(const new_job& j) {
    auto by_trace = query("SELECT request_id FROM jobs WHERE trace_id = $1",
                          "looking up a trace id", pg::params().text(j.trace_id));
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

  // One statement inserts the job (unless its request id or trace id is taken: ON CONFLICT DO
  // NOTHING, which also waits for a concurrent insert of the same key to commit or roll back)
  // and its first journal lines.
  result<insert_outcome> insert_one(const stored_new_job& row, std::size_t max_active,
                                    std::size_t& active) {
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
        "NULL ELSE $8 END) ON CONFLICT DO NOTHING RETURNING id), steps AS (INSERT INTO job_steps (job_id, seq, "
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

  result<std::optional<stored_job>> find_one(const std::string& sql, const pg::params& p) {
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

  static std::vector<stored_job> read_jobs(const pg::rows& r) {
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
      out.push_back(std::move(row));
    }
    return out;
  }

  // The journals of `jobs`, in one query.
  result<void> load_history(std::vector<stored_job>& jobs) {
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

  postgres_store_options options_;
  std::string where_;
  pg::connection conn_;
};

}  // namespace

result<std::unique_ptr<store_engine>> open_postgres_engine(const postgres_store_options& options) {
  auto engine = std::make_unique<postgres_engine>(options);
  if (auto r = engine->open(); !r) {
    return r.error();
  }
  return std::unique_ptr<store_engine>(std::move(engine));
}

result<std::unique_ptr<job_store>> open_postgres_store(const postgres_store_options& options) {
  auto engine = open_postgres_engine(options);
  if (!engine) {
    return engine.error();
  }
  return make_job_store(std::move(*engine), options.subject_key);
}

}  // namespace dsr
