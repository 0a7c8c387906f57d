// The SQLite engine's schema (sqlite_engine.hpp): the migrations, the SQL of every prepared
// statement, and opening a store (creating and migrating it, or reading it as it is).

#include "sqlite_engine.hpp"

#include <fmt/format.h>

#include <array>
#include <filesystem>
#include <string>
#include <system_error>

namespace dsr {
namespace {

using detail::sqlite_engine;
using sqlite::exec;
using sqlite::query_text;

// Each entry moves the schema from version i to i + 1. Never edit an entry that has shipped;
// append a new one.
constexpr std::array<const char*, 6> migrations{
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
    // v5: exports kept in the store, as the PostgreSQL engine keeps them (the daemon keeps
    // SQLite's on disk): the sealed file's bytes in chunks, readable once `exports` holds a row.
    R"sql(
CREATE TABLE exports (
  job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  chunks INTEGER NOT NULL,
  finished_at_ms INTEGER NOT NULL
);
CREATE TABLE export_chunks (
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
)sql",
    // v6: the daemon that last ran each job (the job view's "worker", [jobs] worker_name).
    R"sql(
ALTER TABLE jobs ADD COLUMN worker TEXT NOT NULL DEFAULT '';
)sql",
};

}  // namespace

std::int64_t sqlite_schema_version() {
  return static_cast<std::int64_t>(migrations.size());
}

detail::sqlite_engine::statements::statements(sqlite3* db)
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
      find_by_request(db, fmt::format("SELECT {} FROM jobs WHERE request_id = ?1", job_columns)),
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
            "updated_at_ms = ?3, worker = ?4 WHERE id = (SELECT id FROM jobs WHERE state IN "
            "('queued', "
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

namespace {

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