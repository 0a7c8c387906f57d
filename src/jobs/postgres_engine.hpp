#pragma once
// The PostgreSQL engine (store_engine.hpp), through libpq on the store thread: one connection,
// each verb one transaction (or one statement, atomic by itself), every statement unnamed and
// sent with its parameters (no session state: PgBouncer in transaction mode works). A broken
// connection fails the verb with store_unavailable and is made again on the next one. SQL and glue
// only; the rules are the job store's. Private to src/jobs (and to dsr_store_pg, which alone sees
// libpq's headers): the rest of the program opens it with open_postgres_engine. Its member
// functions are defined by what they do:
//   postgres_engine.cpp   intake, claims, the journal, release, leases, operator actions, and the
//                         connection glue under them
//   postgres_queries.cpp  finding and listing jobs, the outbox, subjects, file links, purging,
//                         stats
//   postgres_migrate.cpp  store migrate: every job read out, an import into an empty store
//   postgres_schema.cpp   the schema migrations, connecting and migrating
//
// Thread safety: used from one thread at a time (a store thread), as every engine.

#include "dsr/jobs/pg_glue.hpp"
#include "dsr/jobs/store_engine.hpp"
#include "engine_sql.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace dsr::detail {

// The database's clock in milliseconds since the epoch: what leases and the cluster's shared state
// are judged by, whatever the daemons' clocks say.
inline constexpr const char* db_now = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

// The next journal line's number, for a job whose id is $1.
inline constexpr const char* next_seq =
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM job_steps WHERE job_id = $1)";

class postgres_engine final : public store_engine {
 public:
  // `o.url` is shown in error messages without its password or other options.
  explicit postgres_engine(postgres_store_options o);

  std::string_view name() const override { return "postgresql"; }
  // Connects and brings the schema to this build's version.
  result<void> open();

  result<std::vector<insert_outcome>> insert(std::span<const stored_new_job> jobs,
                                             std::size_t max_active) override;
  result<std::optional<stored_job>> find(std::string_view request_id) override;
  result<std::vector<stored_job>> list(std::optional<job_state> state, std::size_t limit) override;
  result<std::size_t> count_active() override;
  result<std::optional<stored_job>> claim_next(std::string_view owner, time_point now,
                                               std::chrono::milliseconds lease) override;
  result<void> append_step(std::int64_t job_id, std::string_view owner, const job_step& s) override;
  std::vector<result<void>> append_steps(std::span<const step_line> lines) override;
  result<void> release(std::int64_t job_id, std::string_view owner, const job_release& next,
                       time_point now) override;
  result<std::size_t> expire_leases(time_point now) override;
  // A lease's "now": NULL (the database's clock, options_.database_clock) or the caller's.
  pg::params& lease_clock(pg::params& p, time_point now) const;
  result<cluster_view> heartbeat(const worker_beat& beat) override;
  result<call_turn> take_turn(call_limit limit, std::chrono::microseconds interval) override;
  result<void> block_calls(call_limit limit, std::chrono::milliseconds d) override;
  result<void> set_breaker(std::chrono::milliseconds d, std::string_view reason) override;
  result<bool> claim_periodic(std::string_view task, std::string_view owner,
                              std::chrono::milliseconds period,
                              std::chrono::milliseconds ttl) override;
  result<std::size_t> renew_leases(std::span<const std::string> owners, time_point now,
                                   std::chrono::milliseconds lease) override;
  result<std::vector<stored_job>> due_reports(time_point now, std::size_t limit) override;
  result<std::vector<stored_job>> claim_reports(time_point now, std::size_t limit,
                                                std::chrono::milliseconds claim_for) override;
  result<void> record_report(std::int64_t job_id, const report_update& u, time_point now) override;
  result<std::optional<forgettable_subject>> subject_to_forget(std::int64_t job_id) override;
  result<void> replace_subject(std::int64_t job_id, const stored_subject& s) override;
  result<bool> apply(const operator_change& c, time_point now) override;
  result<void> probe_write(time_point now) override;
  result<void> each_job(const std::function<result<void>(const stored_job&)>& each) override;
  result<void> begin_import() override;
  result<void> import_job(const stored_job& s) override;
  result<void> finish_import() override;
  void abort_import() override { rollback(failure{}); }
  // The server's disk is the database administrator's to cap.
  result<void> set_max_size(std::uint64_t) override { return {}; }
  result<time_point> file_link_expiry(std::int64_t job_id, time_point proposed,
                                      time_point now) override;
  result<std::vector<std::int64_t>> file_links(time_point now, bool expired) override;
  result<std::size_t> purge_finished(time_point before) override;
  result<void> put_export_chunk(std::int64_t job_id, std::string_view owner, std::uint32_t index,
                                std::string_view bytes) override;
  result<void> finish_export(std::int64_t job_id, std::string_view owner, std::uint32_t chunks,
                             time_point now) override;
  result<std::chrono::milliseconds> renew_lease(std::int64_t job_id, std::string_view owner,
                                                time_point now,
                                                std::chrono::milliseconds lease) override;
  result<std::optional<std::uint32_t>> export_chunks(std::int64_t job_id) override;
  result<std::string> export_chunk(std::int64_t job_id, std::uint32_t index) override;
  result<std::size_t> delete_exports(std::span<const std::int64_t> job_ids) override;
  result<std::size_t> purge_exports(time_point before, std::span<const std::int64_t> keep) override;
  result<job_stats> stats(time_point now, std::chrono::milliseconds deadline,
                          std::chrono::milliseconds warning) override;
  result<std::vector<stored_job>> at_risk(time_point now, std::chrono::milliseconds deadline,
                                          std::chrono::milliseconds warning,
                                          std::size_t limit) override;

 private:
  result<void> connect();
  // A statement's rows, or why it failed. A broken connection is dropped, and made again by the
  // next statement. A statement that `may_repeat` (one that reads, or BEGIN) and found the
  // connection broken outside a transaction (the server restarted or failed over since the last
  // verb) runs once more on a new connection; a write is never repeated, since it may have
  // committed before the connection broke.
  result<pg::rows> query(const char* sql, std::string_view doing, const pg::params& p = {},
                         bool may_repeat = false);
  result<void> run(const char* sql, std::string_view doing, const pg::params& p = {},
                   bool may_repeat = false);
  result<pg::rows> read(const char* sql, std::string_view doing, const pg::params& p = {}) {
    return query(sql, doing, p, true);
  }
  result<void> begin() { return run("BEGIN", "starting a transaction", {}, true); }
  // A COMMIT whose answer is lost leaves its outcome unknown: the caller reports a failure, and
  // a repeat of the request finds the job if it was committed (dedupe).
  result<void> commit() { return run("COMMIT", "committing"); }
  failure rollback(failure f);
  failure lease_lost(std::int64_t job_id, std::string_view owner) const;
  // An INSERT refused a job as a repeat, yet no stored job repeats it.
  failure no_earlier_job() const;
  // What an earlier job says about this request: a repeat of its trace id, or of its request id
  // (the same operation URL: a repeat; the other one: a conflict). Empty when it is new.
  result<std::optional<insert_outcome>> earlier(const new_job& j);
  // One statement inserts every job of `rows` with its first journal lines; the request ids
  // inserted (a request or trace id taken meanwhile is skipped: ON CONFLICT DO NOTHING).
  result<std::set<std::string>> insert_new(const std::vector<const stored_new_job*>& rows);
  // The two ways insert() decides a batch (see there); `count` gains the active jobs inserted.
  result<std::vector<insert_outcome>> insert_all(std::span<const stored_new_job> jobs,
                                                 const std::vector<const stored_new_job*>& firsts,
                                                 std::size_t& count);
  result<std::vector<insert_outcome>> insert_in_order(std::span<const stored_new_job> jobs,
                                                      std::size_t max_active, std::size_t& count);
  // The stored jobs (this transaction's included) with one of these request or trace ids.
  struct repeats {
    std::map<std::string, std::string> by_trace;  // trace id -> its job's request id
    std::map<std::string, bool> by_request;       // request id -> is a copy
  };
  result<repeats> stored_repeats(const std::vector<std::string>& request_ids,
                                 const std::vector<std::string>& trace_ids);
  result<std::optional<stored_job>> find_one(const std::string& sql, const pg::params& p);
  static std::vector<stored_job> read_jobs(const pg::rows& r);
  // The journals of `jobs`, in one query.
  result<void> load_history(std::vector<stored_job>& jobs);

  postgres_store_options options_;
  std::string where_;
  // The active jobs as this connection last counted them, plus what it inserted since; an exact
  // COUNT(*) (which reads every active job's index entry) is taken only when that estimate is
  // more than a second old or the queue may be near max_active (half of it or more).
  std::size_t active_estimate_ = 0;
  std::chrono::steady_clock::time_point counted_at_{};
  pg::connection conn_;
};

}  // namespace dsr::detail
