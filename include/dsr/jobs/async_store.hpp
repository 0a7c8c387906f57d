#pragma once
// The store as the daemon's parts use it: one coroutine per verb, run on the store thread and
// resumed on the caller's executor with a typed result. Nothing is rendered, logged or called back
// on the store thread: intake, the dispatcher, the reporter, the operator API, the status page and
// the periodic tasks get values and act on their own threads. The verbs' rules are job_store's
// (store.hpp); `finish` is its `release`, `claim` its `claim_next`.
//
// A verb copies its arguments before it returns, so references and views may point at the
// caller's temporaries; but g++ 12 can destroy a temporary built inside a co_await expression
// twice: pass named objects. A store that stopped answers every verb with errc::store_unavailable.

#include "dsr/jobs/store.hpp"
#include "dsr/jobs/store_worker.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsr {

class async_store {
 public:
  template <class T>
  using task = boost::asio::awaitable<result<T>>;
  using millis = std::chrono::milliseconds;

  // `executor`: where the parts that have no coroutine of their own (an HTTP handler, a timer)
  // start one to use the store.
  async_store(job_queue& queue, boost::asio::any_io_executor executor);

  boost::asio::any_io_executor executor() const { return executor_; }
  // False after the last commit failed, true again after one succeeded (intake's 503).
  bool writable() const { return queue_.writable(); }
  // Why the last failed commit failed, naming the store; "" if none did.
  std::string last_error() const { return queue_.last_error(); }

  // Group-committed with the inserts that arrive meanwhile: resumes after the commit.
  task<insert_outcome> insert(new_job j);
  task<std::optional<job>> find(std::string_view request_id);
  task<std::vector<job>> list(std::optional<job_state> state, std::size_t limit);

  // The dispatcher's verbs: a job's lease, its journal, its next state.
  task<std::optional<job>> claim(std::string_view owner, time_point now, millis lease);
  // Written together with the other jobs' lines that wait meanwhile (job_store::append_steps):
  // the journal lines of a batch's jobs cost one commit, not one each.
  task<void> append_step(std::int64_t job_id, std::string_view owner, const job_step& step);
  task<void> finish(std::int64_t job_id, std::string_view owner, const job_release& next,
                    time_point now);
  task<std::size_t> expire_leases(time_point now);
  task<std::size_t> renew_leases(std::span<const std::string> owners, time_point now, millis lease);
  task<void> forget_subject(std::int64_t job_id);
  task<millis> renew_lease(std::int64_t job_id, std::string_view owner, time_point now,
                           millis lease);

  // Several daemons on one database (store.hpp's cluster verbs).
  task<cluster_view> heartbeat(worker_beat beat);
  task<call_turn> take_turn(call_limit limit, std::chrono::microseconds interval);
  task<void> block_calls(call_limit limit, millis d);
  task<void> set_breaker(millis d, std::string reason);
  task<bool> claim_periodic(std::string task, std::string owner, millis period, millis ttl);

  // The reporter's outbox.
  task<std::vector<job>> due_reports(time_point now, std::size_t limit);
  task<std::vector<job>> claim_reports(time_point now, std::size_t limit, millis claim_for);
  task<void> record_report(std::int64_t job_id, const report_update& u, time_point now);
  task<time_point> file_link_expiry(std::int64_t job_id, time_point proposed, time_point now);

  // The operator's actions and views.
  task<operator_result> retry(std::string_view request_id, time_point now);
  task<operator_result> cancel(std::string_view request_id, time_point now);
  task<job_stats> stats(time_point now, millis deadline, millis warning);
  task<std::vector<job>> at_risk(time_point now, millis deadline, millis warning,
                                 std::size_t limit);

  // Housekeeping: retention, file links, the size cap.
  task<std::vector<std::int64_t>> file_links(time_point now, bool expired);
  task<std::size_t> purge_finished(time_point before);
  task<void> set_max_size(std::uint64_t bytes);

  // Exports kept in the store (PostgreSQL): a sealed file's bytes in chunks (job_store's rules).
  task<void> put_export_chunk(std::int64_t job_id, std::string owner, std::uint32_t index,
                              std::string bytes);
  task<void> finish_export(std::int64_t job_id, std::string owner, std::uint32_t chunks,
                           time_point now);
  task<std::optional<std::uint32_t>> export_chunks(std::int64_t job_id);
  task<std::string> export_chunk(std::int64_t job_id, std::uint32_t index);
  task<std::size_t> delete_exports(std::span<const std::int64_t> job_ids);
  task<std::size_t> purge_exports(time_point before, std::span<const std::int64_t> keep);

 private:
  struct step_group;
  job_queue& queue_;
  boost::asio::any_io_executor executor_;
  // Journal lines waiting for the store thread: it writes all of them in one transaction.
  std::shared_ptr<step_group> steps_;
};

}  // namespace dsr
