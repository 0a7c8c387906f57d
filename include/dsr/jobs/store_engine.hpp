#pragma once
// The engine below the job store: the SQL and glue of one database (SQLite, PostgreSQL) and
// nothing else. Every rule of the domain lives above it, in the job store (store.hpp,
// src/jobs/job_store.cpp): sealing, opening and forgetting the subject's ID, the journal lines a
// new job starts with, which operator action applies to which state, MineOS outcomes. An engine
// stores what it is given, answers queries, and keeps each verb one transaction.
//
// Both engines pass one conformance suite (tests/jobs/store_conformance_test.cpp): a behaviour
// that one engine has and the other lacks fails it.
//
// Thread safety: used from one thread at a time (a store thread), as job_store.

#include "dsr/common/error.hpp"
#include "dsr/jobs/job.hpp"
#include "dsr/jobs/store.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsr {

// How a subject's ID is held at rest. The numbers are stored: never reuse one.
enum class subject_form : std::int64_t {
  clear = 0,          // in the clear (tests without a store_key)
  legacy_sealed = 1,  // sealed with store_key itself by an earlier version
  hashed = 2,         // forgotten: a keyed hash that no one can read back
  sealed = 3,         // sealed with the subject key derived from store_key
};

struct stored_subject {
  std::string bytes;
  subject_form form = subject_form::clear;
};

// A job as the engine stores it: `j.subject` is empty, `subject` holds it at rest; with the
// outbox's state, which the job view does not show.
struct stored_job {
  job j;
  stored_subject subject;
  std::optional<time_point> report_next_at;
  bool report_gave_up = false;
};

// A job offered to the engine: what intake knows (its `subject` ignored), the subject at rest, and
// the journal lines it starts with.
// A request that repeats a stored job's request id: a repeat when both came to the same URL
// (delete and opt-out both come to the Delete URL), a conflict when to the other one.
inline insert_outcome::kind repeat_of(bool stored_is_copy, operation incoming) {
  return stored_is_copy == (incoming == operation::copy) ? insert_outcome::kind::duplicate
                                                         : insert_outcome::kind::conflict;
}

struct stored_new_job {
  const new_job* job = nullptr;
  stored_subject subject;
  std::vector<job_step> steps;
};

// A finished job's subject to be replaced by its hash.
struct forgettable_subject {
  std::string request_id;
  std::string id_name;  // the job's subject_id_name ("" = the e-mail)
  stored_subject subject;
};

// An operator action as the engine applies it: a compare-and-set on the state the job store saw,
// with its journal line, in one transaction.
enum class operator_verb {
  requeue,  // state failed -> queued, attempts and the report reset
  resend,   // an unacknowledged report of a finished job is due again
  cancel,   // state queued or retrying -> cancelled with `outcome`, report due
};
struct operator_change {
  std::int64_t job_id = 0;
  operator_verb verb = operator_verb::requeue;
  job_state expected = job_state::failed;   // applied only if the job is still in this state
  job_outcome outcome = job_outcome::none;  // cancel: the MineOS status and message to report
  std::string outcome_message;
  job_step step;  // the journal line
};

class store_engine {
 protected:
  failure unshared() const {
    return make_failure(
        errc::unsupported,
        fmt::format("the {} job store serves one daemon: nothing is shared", name()));
  }

 public:
  virtual ~store_engine() = default;

  // "sqlite" or "postgresql": in error messages and metrics.
  virtual std::string_view name() const = 0;

  // One transaction: each row in order is inserted unless a job has its trace id or request id
  // (duplicate: same operation URL, conflict: the other one) or, for a row not ended at intake,
  // the active jobs (queued, running, retrying) number `max_active` or more (queue_full). An
  // inserted row starts with its `steps`. All outcomes are durable when this returns, or none is.
  virtual result<std::vector<insert_outcome>> insert(std::span<const stored_new_job> rows,
                                                     std::size_t max_active) = 0;

  virtual result<std::optional<stored_job>> find(std::string_view request_id) = 0;
  virtual result<std::vector<stored_job>> list(std::optional<job_state> state,
                                               std::size_t limit) = 0;
  virtual result<std::size_t> count_active() = 0;

  virtual result<std::optional<stored_job>> claim_next(std::string_view owner, time_point now,
                                                       std::chrono::milliseconds lease) = 0;
  // Fenced by the lease: errc::lease_lost when `owner` does not hold the job's lease.
  // One transaction for all when the engine can (SQLite: one transaction; PostgreSQL: one
  // statement); by default one append_step each.
  virtual std::vector<result<void>> append_steps(std::span<const step_line> lines) {
    std::vector<result<void>> out;
    out.reserve(lines.size());
    for (const auto& l : lines) {
      out.push_back(append_step(l.job_id, l.owner, l.step));
    }
    return out;
  }
  virtual result<void> append_step(std::int64_t job_id, std::string_view owner,
                                   const job_step& step) = 0;
  virtual result<void> release(std::int64_t job_id, std::string_view owner, const job_release& next,
                               time_point now) = 0;
  virtual result<std::size_t> expire_leases(time_point now) = 0;
  virtual result<std::size_t> renew_leases(std::span<const std::string> owners, time_point now,
                                           std::chrono::milliseconds lease) = 0;

  // Without history.
  virtual result<std::vector<stored_job>> due_reports(time_point now, std::size_t limit) = 0;
  // Without history; earliest due first.
  virtual result<std::vector<stored_job>> claim_reports(time_point now, std::size_t limit,
                                                        std::chrono::milliseconds claim_for) = 0;
  virtual result<void> record_report(std::int64_t job_id, const report_update& u,
                                     time_point now) = 0;

  // A finished job (completed, user_not_found, cancelled, missing_identifiers) whose subject is
  // not yet a hash; nullopt otherwise.
  virtual result<std::optional<forgettable_subject>> subject_to_forget(std::int64_t job_id) = 0;
  virtual result<void> replace_subject(std::int64_t job_id, const stored_subject& s) = 0;

  // False when the job was no longer in `expected` (another actor changed it meanwhile).
  virtual result<bool> apply(const operator_change& change, time_point now) = 0;

  // Fenced like append_step; the time the lease has left, by the engine's clock.
  virtual result<std::chrono::milliseconds> renew_lease(std::int64_t job_id, std::string_view owner,
                                                        time_point now,
                                                        std::chrono::milliseconds lease) = 0;
  // The cluster verbs of job_store. An engine of one daemon answers errc::unsupported.
  virtual result<cluster_view> heartbeat(const worker_beat&) { return unshared(); }
  virtual result<call_turn> take_turn(call_limit, std::chrono::microseconds) { return unshared(); }
  virtual result<void> block_calls(call_limit, std::chrono::milliseconds) { return unshared(); }
  virtual result<void> set_breaker(std::chrono::milliseconds, std::string_view) {
    return unshared();
  }
  virtual result<bool> claim_periodic(std::string_view, std::string_view, std::chrono::milliseconds,
                                      std::chrono::milliseconds) {
    return unshared();
  }

  virtual result<void> probe_write(time_point now) = 0;
  virtual result<void> set_max_size(std::uint64_t bytes) = 0;
  virtual result<time_point> file_link_expiry(std::int64_t job_id, time_point proposed,
                                              time_point now) = 0;
  virtual result<std::vector<std::int64_t>> file_links(time_point now, bool expired) = 0;
  virtual result<std::size_t> purge_finished(time_point before) = 0;
  // Both are fenced by the run's lease: errc::lease_lost unless `owner` holds the running job
  // ("" = no lease to check: store migrate).
  virtual result<void> put_export_chunk(std::int64_t job_id, std::string_view owner,
                                        std::uint32_t index, std::string_view bytes) = 0;
  virtual result<void> finish_export(std::int64_t job_id, std::string_view owner,
                                     std::uint32_t chunks, time_point now) = 0;
  virtual result<std::optional<std::uint32_t>> export_chunks(std::int64_t job_id) = 0;
  virtual result<std::string> export_chunk(std::int64_t job_id, std::uint32_t index) = 0;
  virtual result<std::size_t> delete_exports(std::span<const std::int64_t> job_ids) = 0;
  virtual result<std::size_t> purge_exports(time_point before,
                                            std::span<const std::int64_t> keep) = 0;
  virtual result<job_stats> stats(time_point now, std::chrono::milliseconds deadline,
                                  std::chrono::milliseconds warning) = 0;
  // Without history.
  virtual result<std::vector<stored_job>> at_risk(time_point now,
                                                  std::chrono::milliseconds deadline,
                                                  std::chrono::milliseconds warning,
                                                  std::size_t limit) = 0;

  // store migrate (docs/contract.md §8). Every job as stored, with its history, in id order, one
  // at a time: memory stays flat however large the store.
  virtual result<void> each_job(const std::function<result<void>(const stored_job&)>& each) = 0;
  // One transaction in which import_job adds jobs as they are, ids kept (a running job goes back
  // to the queue: its daemon is gone). Refused (errc::conflict) when the store holds a job.
  // finish_import commits (and moves the id sequence past the last id); abort_import rolls back.
  virtual result<void> begin_import() = 0;
  virtual result<void> import_job(const stored_job& s) = 0;
  virtual result<void> finish_import() = 0;
  virtual void abort_import() = 0;
};

// The job store over an engine: the domain rules (see the top of this file). `store_key` (32
// bytes) seals subjects; empty keeps them in the clear (tests only).
std::unique_ptr<job_store> make_job_store(std::unique_ptr<store_engine> engine,
                                          const std::string& store_key);

// The engines. Each opens (creating and migrating as needed) its database.
result<std::unique_ptr<store_engine>> open_sqlite_engine(const sqlite_store_options& options);
result<std::unique_ptr<store_engine>> open_postgres_engine(const postgres_store_options& options);

}  // namespace dsr
