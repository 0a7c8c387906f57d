#pragma once
// The SQLite engine (store_engine.hpp): WAL mode with synchronous=FULL so that a commit survives
// kill -9 and power loss, statements prepared once, schema versioned through PRAGMA user_version.
// SQL and glue only; the rules are the job store's. Private to src/jobs: the rest of the program
// opens it with open_sqlite_engine. Its member functions are defined by what they do:
//   sqlite_engine.cpp   intake, claims, the journal, release, leases, operator actions, and the
//                       transaction glue under them
//   sqlite_queries.cpp  finding and listing jobs, the outbox, subjects, file links, purging, stats
//   sqlite_migrate.cpp  store migrate: every job read out, an import into an empty store
//   sqlite_schema.cpp   the schema migrations, the statements' SQL, opening a store
//
// Thread safety: used from one thread at a time (a store thread), as every engine.

#include "dsr/jobs/sqlite_glue.hpp"
#include "dsr/jobs/store_engine.hpp"
#include "engine_sql.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dsr::detail {

class sqlite_engine final : public store_engine {
 public:
  // Owns `db` (closed with the engine); `path` names the store in error messages.
  sqlite_engine(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite_engine(const sqlite_engine&) = delete;
  sqlite_engine& operator=(const sqlite_engine&) = delete;

  // Finalises the statements, then closes the database.
  ~sqlite_engine() override;

  // Prepares the statements and counts the active jobs: once after opening, again after an
  // import.
  result<void> prepare();

  std::string_view name() const override { return "sqlite"; }
  result<std::vector<insert_outcome>> insert(std::span<const stored_new_job> jobs,
                                             std::size_t max_active) override;
  result<std::optional<stored_job>> find(std::string_view request_id) override;
  result<std::vector<stored_job>> list(std::optional<job_state> state, std::size_t limit) override;
  result<std::size_t> count_active() override { return active_; }
  result<std::optional<stored_job>> claim_next(std::string_view owner, time_point now,
                                               std::chrono::milliseconds lease) override;
  result<void> append_step(std::int64_t job_id, std::string_view owner, const job_step& s) override;
  std::vector<result<void>> append_steps(std::span<const step_line> lines) override;
  result<void> release(std::int64_t job_id, std::string_view owner, const job_release& next,
                       time_point now) override;
  result<std::vector<stored_job>> due_reports(time_point now, std::size_t limit) override;
  result<std::vector<stored_job>> claim_reports(time_point now, std::size_t limit,
                                                std::chrono::milliseconds claim_for) override;
  result<void> record_report(std::int64_t job_id, const report_update& u, time_point now) override;
  result<std::optional<dsr::forgettable_subject>> subject_to_forget(std::int64_t job_id) override;
  result<void> replace_subject(std::int64_t job_id, const stored_subject& s) override;
  result<time_point> file_link_expiry(std::int64_t job_id, time_point proposed,
                                      time_point now) override;
  result<std::vector<std::int64_t>> file_links(time_point now, bool expired) override;
  result<bool> apply(const operator_change& c, time_point now) override;
  result<std::size_t> expire_leases(time_point now) override;
  result<std::size_t> renew_leases(std::span<const std::string> owners, time_point now,
                                   std::chrono::milliseconds lease) override;
  result<void> each_job(const std::function<result<void>(const stored_job&)>& each) override;
  result<void> begin_import() override;
  result<void> import_job(const stored_job& s) override;
  result<void> finish_import() override;
  void abort_import() override;
  result<void> set_max_size(std::uint64_t bytes) override;
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
  result<void> probe_write(time_point now) override;

 private:
  using statement = sqlite::statement;
  using use = sqlite::use;

  // Every statement the engine runs, prepared once (their SQL: sqlite_schema.cpp).
  struct statements {
    explicit statements(sqlite3* db);

    statement begin, commit, rollback, by_trace, by_request, insert_job, insert_step,
        find_by_request, find_by_id, list_all, list_state, history, count_by_state, oldest_waiting,
        deadlines, at_risk, count_active, claim, lease_of, release, due_reports, requeue, resend,
        cancel, record_report, expire, probe, count_all, import_job, renew, subject_of, forget,
        purge_steps, purge_jobs, link_expiry, expired_links, live_links;
  };

  failure error(std::string_view doing) const;
  result<void> begin();
  result<void> commit();
  void rollback();
  // What an earlier job says about this request: a repeat of its trace id, or of its request id
  // (the same operation: a repeat; the other one: a conflict). Empty when it is new.
  result<std::optional<insert_outcome>> earlier(const new_job& j);
  // A new request is inserted straight away: the UNIQUE indexes on request_id and trace_id refuse
  // a repeat, and only then (or when the queue is full) is the earlier job looked up. The answers
  // are those of looking up first; an accepted job costs one index probe per key instead of two.
  result<insert_outcome> insert_one(const stored_new_job& row, std::size_t max_active,
                                    std::size_t& active);
  result<void> add_step(std::int64_t job_id, const job_step& s);
  result<void> check_lease(std::int64_t job_id, std::string_view owner);
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
  stored_job read_job(const use& q) const;
  result<void> load_history(job& j);

  sqlite3* db_;
  std::string path_;
  std::unique_ptr<statements> stmts_;
  std::size_t active_ = 0;
};

}  // namespace dsr::detail
