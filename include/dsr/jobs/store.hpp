#pragma once
// The durable job store. The interface is in terms a SQL engine with transactions serves well
// (SQLite now, PostgreSQL later for several daemons sharing one queue): insert-if-absent in one
// transaction per batch, claim the next due job with a lease for an owner, commit a step under
// that lease, release. Nothing above it assumes a single process.
//
// Thread safety: an implementation is used from one thread at a time (the store thread, see
// store_worker.hpp); it is not internally synchronised.

#include "dsr/common/error.hpp"
#include "dsr/jobs/job.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace dsr {

// What happened to one job offered to `insert`.
// One line for job_store::append_steps.
struct step_line {
  std::int64_t job_id = 0;
  std::string owner;
  job_step step;
};

struct insert_outcome {
  enum class kind {
    inserted,   // a new job was committed
    duplicate,  // a job with this trace id, or this request id and operation, exists
    conflict,   // a job with this request id exists for the other operation
    queue_full  // max_active jobs are queued, running or retrying
  };
  kind result = kind::inserted;
  std::string request_id;  // for duplicate: the original job's request id
};

// A claimed job's new state when its holder lets go of it.
struct job_release {
  job_state state = job_state::queued;
  std::uint32_t attempts = 0;
  time_point next_attempt_at;
  job_outcome outcome = job_outcome::none;  // none keeps the stored one
  std::string outcome_message;              // "" keeps the stored one
  // A Delete-URL job routed again when it ran (a retried right that is now configured): its new
  // operation, delete or opt_out. nullopt keeps the stored one.
  std::optional<operation> op;
};

// The result of one attempt to report a job's outcome to MineOS.
struct report_update {
  bool acknowledged = false;         // MineOS answered 2xx: never sent again
  std::optional<std::string> error;  // the last reporting error (reportError), nullopt once ok
  std::uint32_t attempts = 0;        // attempts that failed with a non-transient answer
  time_point next_at;                // when to try again (ignored when acknowledged or gave_up)
  bool gave_up = false;              // max_attempts reached: stays unreported until `retry`
};

// What an operator's retry or cancel did.
enum class operator_result {
  requeued,       // retry: a failed job is queued again with fresh attempts
  report_resent,  // retry: an unacknowledged report is due again
  cancelled,      // cancel: a queued or retrying job is cancelled (reported Failed)
  not_found,      // no job has this request id
  conflict,       // the job is in no state the action applies to
};

// Figures over the whole store for metrics and the status page.
struct job_stats {
  std::array<std::uint64_t, job_state_count> by_state{};  // indexed by job_state
  // The receipt of the oldest job waiting to run (queued or retrying), if any.
  std::optional<time_point> oldest_waiting;
  // Unfinished jobs (queued, running, retrying, failed) whose due date (createdAt, else receipt,
  // + the deadline) is within the warning period, or already past.
  std::uint64_t due_soon = 0;
  std::uint64_t overdue = 0;
};

// Several daemons on one database (docs/contract.md §8, PostgreSQL): what they share. Times are
// judged by the database's clock and handed back as durations, so that hosts' clocks never meet.
// One daemon's heartbeat: it is alive, and what it sees of the others.
struct worker_beat {
  std::string owner;    // this process's lease owner id (startup.hpp owner_id)
  std::string name;     // [jobs] worker_name, or host:pid
  std::string version;  // DSR_VERSION
  // A daemon seen within this is alive (dsr_workers); rows older than ten of these go.
  std::chrono::milliseconds live_for{std::chrono::seconds(30)};
};
struct cluster_view {
  std::size_t live_workers = 1;  // this one included
  std::int64_t schema = 0;       // the schema version the database holds
  // No call to Exponea before this much time has passed (a 429's Retry-After), 0 if none.
  std::chrono::milliseconds calls_blocked_for{0};
  // The shared circuit breaker holds every daemon for this long (0: closed), and why.
  std::chrono::milliseconds breaker_open_for{0};
  std::string breaker_reason;
};
// One call's turn under the shared rate limit: wait `wait` and go; or, while a Retry-After holds,
// `blocked` (> 0): no turn was taken, ask again after it.
struct call_turn {
  std::chrono::microseconds wait{0};
  std::chrono::microseconds blocked{0};
};
// The rate limits the daemons share: Exponea's calls ([exponea] max_requests_per_second) and
// MineOS's status calls ([mineos] max_requests_per_minute). Each is a row of its own.
enum class call_limit { exponea, mineos };
inline std::string_view to_string(call_limit l) {
  return l == call_limit::mineos ? "mineos" : "exponea";
}

class job_store {
 public:
  virtual ~job_store() = default;

  // Offers each job in one transaction (a group commit): all outcomes are durable when this
  // returns, or none is and the error says why. Dedupe and capacity are checked inside the
  // transaction, in order, so a batch holding two copies of one request inserts it once.
  virtual result<std::vector<insert_outcome>> insert(std::span<const new_job> jobs,
                                                     std::size_t max_active) = 0;

  // The job with its history, or nullopt.
  virtual result<std::optional<job>> find(std::string_view request_id) = 0;

  // Newest first, optionally only one state; history included.
  virtual result<std::vector<job>> list(std::optional<job_state> state, std::size_t limit) = 0;

  // Jobs queued, running or retrying.
  virtual result<std::size_t> count_active() = 0;

  // Atomically takes the queued or retrying job with the earliest next_attempt_at <= now, marks it
  // running under a lease held by `owner` until now + lease. nullopt when none is due.
  virtual result<std::optional<job>> claim_next(std::string_view owner, time_point now,
                                                std::chrono::milliseconds lease) = 0;

  // Appends a journal line to a job leased by `owner` (errc::lease_lost otherwise).
  virtual result<void> append_step(std::int64_t job_id, std::string_view owner,
                                   const job_step& step) = 0;
  // Several jobs' lines at once, each fenced by its own lease as append_step, committed together
  // (one fsync for all: the journal lines of a batch's jobs). One result per line, in order; a
  // line whose lease is lost fails alone, a commit that fails fails them all.
  virtual std::vector<result<void>> append_steps(std::span<const step_line> lines) = 0;

  // Ends `owner`'s lease and stores the job's next state (errc::lease_lost if not held).
  virtual result<void> release(std::int64_t job_id, std::string_view owner, const job_release& next,
                               time_point now) = 0;

  // The outbox: finished jobs whose outcome is due to be reported (not acknowledged, not given up,
  // next attempt <= now), earliest first.
  virtual result<std::vector<job>> due_reports(time_point now, std::size_t limit) = 0;
  // The same reports, claimed: each is due again only at now + claim_for, unless record_report
  // says otherwise first. Two daemons never take the same report at once; one that dies with it
  // leaves it due again after claim_for (a second report only across a crash, §6).
  virtual result<std::vector<job>> claim_reports(time_point now, std::size_t limit,
                                                 std::chrono::milliseconds claim_for) = 0;

  // Records one reporting attempt.
  virtual result<void> record_report(std::int64_t job_id, const report_update& u,
                                     time_point now) = 0;

  // An operator's retry: re-queues a failed job (attempts reset), or makes an unacknowledged
  // report of a finished job due again.
  virtual result<operator_result> retry(std::string_view request_id, time_point now) = 0;

  // An operator's cancel of a queued or retrying job: state cancelled, outcome Failed
  // "cancelled by operator", report due.
  virtual result<operator_result> cancel(std::string_view request_id, time_point now) = 0;

  // Returns running jobs whose lease expired before `now` to the queue; how many.
  virtual result<std::size_t> expire_leases(time_point now) = 0;
  // Extends to now + lease the leases held by each of `owners` on running jobs (a live daemon's
  // heartbeat); how many. A lease that was already taken over stays with its new holder.
  virtual result<std::size_t> renew_leases(std::span<const std::string> owners, time_point now,
                                           std::chrono::milliseconds lease) = 0;
  // Extends one run's lease to `lease` from now before a side-effecting call and returns the time
  // the lease has left, as the store's clock judges it (errc::lease_lost if `owner` lost it).
  virtual result<std::chrono::milliseconds> renew_lease(std::int64_t job_id, std::string_view owner,
                                                        time_point now,
                                                        std::chrono::milliseconds lease) = 0;

  // The cluster (the types above). An engine with one daemon per store (SQLite) answers
  // errc::unsupported: there is nothing to share.
  virtual result<cluster_view> heartbeat(const worker_beat& beat) = 0;
  // Takes the next turn of the shared rate limit `limit`: one call per `interval` across all
  // daemons.
  virtual result<call_turn> take_turn(call_limit limit, std::chrono::microseconds interval) = 0;
  // A 429: no daemon makes a call under `limit` for `d` from now (a later block is never
  // shortened).
  virtual result<void> block_calls(call_limit limit, std::chrono::milliseconds d) = 0;
  // The circuit breaker opened for `d` from now (0: it closed), for `reason`.
  virtual result<void> set_breaker(std::chrono::milliseconds d, std::string_view reason) = 0;
  // Periodic work: true when this daemon (`owner`) may run `task` now, which it then holds for
  // `ttl`: no daemon holds it, and no daemon ran it within `period`. Recorded as its last run.
  virtual result<bool> claim_periodic(std::string_view task, std::string_view owner,
                                      std::chrono::milliseconds period,
                                      std::chrono::milliseconds ttl) = 0;

  // Commits a tiny write: proves the store can commit again after a fault (disk full, I/O error).
  virtual result<void> probe_write(time_point now) = 0;
  // Caps the store's size (0 = no cap): beyond it commits fail as on a full disk. An engine that
  // cannot cap its size ignores it.
  virtual result<void> set_max_size(std::uint64_t bytes) = 0;
  // Replaces a finished job's subject ID (completed, user_not_found, cancelled,
  // missing_identifiers) by its keyed hash; nothing for other states. record_report does it on
  // acknowledgement; call it yourself when outcomes are not reported.
  virtual result<void> forget_subject(std::int64_t job_id) = 0;
  // A copy reported as a file link: records `proposed` as the link's expiry unless one is
  // recorded already, and returns the recorded one (a report sent again carries the same link).
  // A recorded link that expired (by `now`) before MineOS acknowledged the report is replaced:
  // a report that waited out a long pause or outage still carries a link that works.
  virtual result<time_point> file_link_expiry(std::int64_t job_id, time_point proposed,
                                              time_point now) = 0;
  // expired = true: the acknowledged jobs whose file link has expired by `now` (their exports are
  // due for deletion); false: the jobs whose link is still live.
  virtual result<std::vector<std::int64_t>> file_links(time_point now, bool expired) = 0;
  // Exports kept in the store (docs/contract.md §8: with PostgreSQL a copy's export lives in the
  // database, sealed as on disk, so that any daemon can deliver it). An export is its sealed
  // file's bytes cut into chunks, put in order from index 0 (a chunk put again replaces it); it
  // can be read once finish_export recorded how many chunks it has, and putting chunk 0 again
  // hides it until the next finish. Deleted with its job.
  // Both are fenced by the run's lease: errc::lease_lost unless `owner` holds the running job
  // ("" = no lease to check: store migrate).
  virtual result<void> put_export_chunk(std::int64_t job_id, std::string_view owner,
                                        std::uint32_t index, std::string_view bytes) = 0;
  virtual result<void> finish_export(std::int64_t job_id, std::string_view owner,
                                     std::uint32_t chunks, time_point now) = 0;
  // How many chunks the job's finished export has; nullopt when none is kept.
  virtual result<std::optional<std::uint32_t>> export_chunks(std::int64_t job_id) = 0;
  virtual result<std::string> export_chunk(std::int64_t job_id, std::uint32_t index) = 0;
  // Deletes the exports of `job_ids` (their file links expired); how many.
  virtual result<std::size_t> delete_exports(std::span<const std::int64_t> job_ids) = 0;
  // Deletes the exports finished before `before` but those of `keep` (live file links); how many.
  virtual result<std::size_t> purge_exports(time_point before,
                                            std::span<const std::int64_t> keep) = 0;
  // Deletes finished jobs (completed, user_not_found, failed, cancelled) last changed before
  // `before`, with their history: retention_days. Returns how many.
  virtual result<std::size_t> purge_finished(time_point before) = 0;
  // Counts by state, the oldest waiting job, and the jobs at risk of missing their due date.
  virtual result<job_stats> stats(time_point now, std::chrono::milliseconds deadline,
                                  std::chrono::milliseconds warning) = 0;
  // Unfinished jobs (queued, running, retrying, failed) due within `warning` of `now` or already
  // past due, the earliest due first, without their history: the status page's list.
  virtual result<std::vector<job>> at_risk(time_point now, std::chrono::milliseconds deadline,
                                           std::chrono::milliseconds warning,
                                           std::size_t limit) = 0;
};

struct sqlite_store_options {
  std::filesystem::path path;   // ":memory:" for tests
  bool integrity_check = true;  // PRAGMA quick_check when opening
  // Caps the database size in pages (PRAGMA max_page_count): lets tests make the store "full"
  // without filling a disk. 0 = no cap.
  std::uint32_t max_page_count = 0;
  // store_key (32 bytes): the subject's ID is sealed with AES-256-GCM while a job can run, and
  // replaced by HMAC-SHA256 once it is finished and reported, each under its own key derived from
  // store_key (common/store_keys.hpp); IDs an earlier version sealed with store_key itself stay
  // readable. Empty: kept in the clear (tests only).
  std::string subject_key;
  // Read the file as it is (store migrate): nothing written, no migration, a store of another
  // schema version refused.
  bool read_only = false;
};

// The schema version each engine's store has once this build opened it (dsr-connector --version,
// dsr_build_info).
std::int64_t sqlite_schema_version();
std::int64_t postgres_schema_version();

// Opens (creating and migrating as needed) a SQLite store in WAL mode with synchronous=FULL.
result<std::unique_ptr<job_store>> open_sqlite_store(const sqlite_store_options& options);

struct postgres_store_options {
  // A libpq URI or key=value string ([store] url); its password, if any, is the config's to
  // refuse. Shown in messages only as user@host:port/database.
  std::string url;
  // store_password; "" leaves it to libpq (.pgpass, PGPASSWORD, peer or certificate auth).
  std::string password;
  std::string subject_key;  // as sqlite_store_options
  std::chrono::seconds connect_timeout{10};
  // A statement the server has not answered within this is given up on, its connection dropped
  // (a network cut that leaves the socket open must not hang a store thread).
  std::chrono::milliseconds query_timeout{std::chrono::seconds(20)};
  // Leases are judged by the database's clock (docs/contract.md §8): the `now` a caller passes to
  // claim, renew and expire is ignored for them. False: by the caller's (tests with a fake clock).
  bool database_clock = true;
};

// Connects to PostgreSQL 15 or later and migrates its schema (in one transaction, daemons
// starting together wait for each other); refuses a schema newer than this build's.
result<std::unique_ptr<job_store>> open_postgres_store(const postgres_store_options& options);

}  // namespace dsr
