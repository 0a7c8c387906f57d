// The PostgreSQL engine's schema (postgres_engine.hpp): the migrations, versioned in dsr_schema and
// run in one transaction under a transaction-scoped advisory lock so that daemons starting together
// migrate once, and opening the engine.

#include "postgres_engine.hpp"

#include <fmt/format.h>

#include <array>
#include <map>
#include <string>

namespace dsr {
namespace {

using detail::postgres_engine;

// Each entry moves the schema from version i to i + 1. Never edit an entry that has shipped;
// append a new one. Times are milliseconds since the epoch, as in the SQLite engine.
constexpr std::array<const char*, 3> migrations{
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
    // 2: a copy's export kept in the database, sealed as on disk, so that any daemon can deliver
    // it: the sealed file's bytes in chunks, readable once `exports` holds a row.
    R"sql(
CREATE TABLE exports (
  job_id bigint PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  chunks integer NOT NULL,
  finished_at_ms bigint NOT NULL
);
CREATE INDEX exports_finished ON exports (finished_at_ms);
CREATE TABLE export_chunks (
  job_id bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  idx integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (job_id, idx)
);
)sql",
    // 3: several daemons on one database (docs/contract.md §8): who last ran each job, the live
    // daemons, the shared rate limit and circuit breaker, and the periodic tasks' runs. Times in
    // these tables are the database's (clock_timestamp()), never a daemon's.
    R"sql(
ALTER TABLE jobs ADD COLUMN worker text NOT NULL DEFAULT '';
CREATE TABLE workers (
  owner text PRIMARY KEY,
  name text NOT NULL,
  version text NOT NULL,
  started_at_ms bigint NOT NULL,
  seen_at_ms bigint NOT NULL
);
CREATE TABLE call_limits (
  name text PRIMARY KEY,
  tat_us bigint NOT NULL DEFAULT 0,
  blocked_until_ms bigint NOT NULL DEFAULT 0,
  breaker_until_ms bigint NOT NULL DEFAULT 0,
  breaker_reason text NOT NULL DEFAULT ''
);
INSERT INTO call_limits (name) VALUES ('exponea');
CREATE TABLE periodic_tasks (
  task text PRIMARY KEY,
  owner text NOT NULL DEFAULT '',
  held_until_ms bigint NOT NULL DEFAULT 0,
  last_run_at_ms bigint NOT NULL DEFAULT 0
);
)sql",
};

// Taken with pg_advisory_xact_lock around a migration: released by COMMIT or ROLLBACK, never
// held by the session. ("dsr-schema" in ASCII.)
constexpr std::int64_t schema_lock = 0x6473722d736368;

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

}  // namespace

std::int64_t postgres_schema_version() {
  return static_cast<std::int64_t>(migrations.size());
}

namespace detail {

postgres_engine::postgres_engine(postgres_store_options o)
    : options_(std::move(o)), where_(describe(options_.url)) {}

result<void> postgres_engine::open() {
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
      return rolled_back(
          make_failure(errc::store_unavailable,
                       fmt::format("job store {}: cannot migrate to schema {}: {} (SQLSTATE {})",
                                   where_, i + 1, r.message(), r.sqlstate())));
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

}  // namespace detail

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