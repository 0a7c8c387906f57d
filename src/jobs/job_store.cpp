// The job store's domain rules over an engine (store_engine.hpp): the subject's ID sealed at rest
// and forgotten once reported, the journal lines a new job starts with, and the operator's retry
// and cancel. The engines below hold only SQL.

#include "dsr/jobs/store_engine.hpp"

#include "dsr/common/crypto.hpp"
#include "dsr/common/store_keys.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace dsr {
namespace {

class domain_store final : public job_store {
 public:
  domain_store(std::unique_ptr<store_engine> engine, const std::string& key)
      : engine_(std::move(engine)), keys_(derive_store_keys(key)) {}

  result<std::vector<insert_outcome>> insert(std::span<const new_job> jobs,
                                             std::size_t max_active) override {
    std::vector<stored_new_job> rows;
    rows.reserve(jobs.size());
    for (const auto& j : jobs) {
      stored_new_job row{&j, seal(j.subject, j.request_id), {}};
      row.steps.push_back(job_step{j.received_at, step_kind::received, "accepted"});
      if (j.ended) {
        // Ended at intake: its outcome is the first attempt's.
        row.steps.push_back(
            job_step{j.received_at, step_name::attempt(0),
                     fmt::format("{}: {}", to_string(j.ended->outcome), j.ended->message)});
      }
      rows.push_back(std::move(row));
    }
    return engine_->insert(rows, max_active);
  }

  result<std::optional<job>> find(std::string_view request_id) override {
    auto found = engine_->find(request_id);
    if (!found) {
      return found.error();
    }
    if (!*found) {
      return std::optional<job>{};
    }
    return std::optional<job>{open(std::move(**found))};
  }

  result<std::vector<job>> list(std::optional<job_state> state, std::size_t limit) override {
    return open_all(engine_->list(state, limit));
  }

  result<std::size_t> count_active() override { return engine_->count_active(); }

  result<std::optional<job>> claim_next(std::string_view owner, time_point now,
                                        std::chrono::milliseconds lease) override {
    auto claimed = engine_->claim_next(owner, now, lease);
    if (!claimed) {
      return claimed.error();
    }
    if (!*claimed) {
      return std::optional<job>{};
    }
    return std::optional<job>{open(std::move(**claimed))};
  }

  result<void> append_step(std::int64_t job_id, std::string_view owner,
                           const job_step& step) override {
    return engine_->append_step(job_id, owner, step);
  }

  std::vector<result<void>> append_steps(std::span<const step_line> lines) override {
    return engine_->append_steps(lines);
  }

  result<void> release(std::int64_t job_id, std::string_view owner, const job_release& next,
                       time_point now) override {
    return engine_->release(job_id, owner, next, now);
  }

  result<std::vector<job>> claim_reports(time_point now, std::size_t limit,
                                         std::chrono::milliseconds claim_for) override {
    return open_all(engine_->claim_reports(now, limit, claim_for));
  }
  result<std::vector<job>> due_reports(time_point now, std::size_t limit) override {
    return open_all(engine_->due_reports(now, limit));
  }

  result<void> record_report(std::int64_t job_id, const report_update& u, time_point now) override {
    if (auto r = engine_->record_report(job_id, u, now); !r) {
      return r;
    }
    if (u.acknowledged) {
      return forget_subject(job_id);
    }
    return {};
  }

  // A failed job keeps its sealed ID until it is retried or purged: it may run again.
  result<void> forget_subject(std::int64_t job_id) override {
    auto found = engine_->subject_to_forget(job_id);
    if (!found) {
      return found.error();
    }
    if (!*found) {
      return {};
    }
    const auto& f = **found;
    const auto value = open_subject(f.subject, f.request_id);
    std::string id;
    if (f.id_name.empty()) {
      // An e-mail: compared lower-cased, as the daemon uses it.
      id = value;
      std::transform(id.begin(), id.end(), id.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    } else {
      id = f.id_name + ":" + value;
    }
    // Only a keyed hash stays: a known ID can be matched to the request, none read back.
    stored_subject hash{
        "hkdf-hmac-sha256:" + crypto::to_hex(crypto::hmac_sha256(keys_.subject_hash, id)),
        subject_form::hashed};
    return engine_->replace_subject(job_id, hash);
  }

  result<operator_result> retry(std::string_view request_id, time_point now) override {
    return operator_action(request_id, now, false);
  }

  result<operator_result> cancel(std::string_view request_id, time_point now) override {
    return operator_action(request_id, now, true);
  }

  result<std::size_t> expire_leases(time_point now) override { return engine_->expire_leases(now); }
  result<std::size_t> renew_leases(std::span<const std::string> owners, time_point now,
                                   std::chrono::milliseconds lease) override {
    return engine_->renew_leases(owners, now, lease);
  }
  result<void> probe_write(time_point now) override { return engine_->probe_write(now); }
  result<void> set_max_size(std::uint64_t bytes) override { return engine_->set_max_size(bytes); }
  result<time_point> file_link_expiry(std::int64_t job_id, time_point proposed,
                                      time_point now) override {
    return engine_->file_link_expiry(job_id, proposed, now);
  }
  result<std::vector<std::int64_t>> file_links(time_point now, bool expired) override {
    return engine_->file_links(now, expired);
  }
  result<std::size_t> purge_finished(time_point before) override {
    return engine_->purge_finished(before);
  }
  result<void> put_export_chunk(std::int64_t job_id, std::string_view owner, std::uint32_t index,
                                std::string_view bytes) override {
    return engine_->put_export_chunk(job_id, owner, index, bytes);
  }
  result<void> finish_export(std::int64_t job_id, std::string_view owner, std::uint32_t chunks,
                             time_point now) override {
    return engine_->finish_export(job_id, owner, chunks, now);
  }
  result<std::chrono::milliseconds> renew_lease(std::int64_t job_id, std::string_view owner,
                                                time_point now,
                                                std::chrono::milliseconds lease) override {
    return engine_->renew_lease(job_id, owner, now, lease);
  }
  result<cluster_view> heartbeat(const worker_beat& beat) override {
    return engine_->heartbeat(beat);
  }
  result<call_turn> take_turn(call_limit limit, std::chrono::microseconds interval) override {
    return engine_->take_turn(limit, interval);
  }
  result<void> block_calls(call_limit limit, std::chrono::milliseconds d) override {
    return engine_->block_calls(limit, d);
  }
  result<void> set_breaker(std::chrono::milliseconds d, std::string_view reason) override {
    return engine_->set_breaker(d, reason);
  }
  result<bool> claim_periodic(std::string_view task, std::string_view owner,
                              std::chrono::milliseconds period,
                              std::chrono::milliseconds ttl) override {
    return engine_->claim_periodic(task, owner, period, ttl);
  }
  result<std::optional<std::uint32_t>> export_chunks(std::int64_t job_id) override {
    return engine_->export_chunks(job_id);
  }
  result<std::string> export_chunk(std::int64_t job_id, std::uint32_t index) override {
    return engine_->export_chunk(job_id, index);
  }
  result<std::size_t> delete_exports(std::span<const std::int64_t> job_ids) override {
    return engine_->delete_exports(job_ids);
  }
  result<std::size_t> purge_exports(time_point before,
                                    std::span<const std::int64_t> keep) override {
    return engine_->purge_exports(before, keep);
  }
  result<job_stats> stats(time_point now, std::chrono::milliseconds deadline,
                          std::chrono::milliseconds warning) override {
    return engine_->stats(now, deadline, warning);
  }
  result<std::vector<job>> at_risk(time_point now, std::chrono::milliseconds deadline,
                                   std::chrono::milliseconds warning, std::size_t limit) override {
    return open_all(engine_->at_risk(now, deadline, warning, limit));
  }

 private:
  // The subject's ID is personal data: sealed with a key derived from store_key, bound to its
  // request id.
  stored_subject seal(const std::string& subject, const std::string& request_id) const {
    if (keys_.subject_seal.empty()) {
      return {subject, subject_form::clear};
    }
    return {crypto::seal(keys_.subject_seal, subject, request_id), subject_form::sealed};
  }

  // "" for a hash, or a seal no key here opens.
  std::string open_subject(const stored_subject& s, const std::string& request_id) const {
    switch (s.form) {
      case subject_form::clear:
        return s.bytes;
      case subject_form::sealed:
        return crypto::open(keys_.subject_seal, s.bytes, request_id).value_or("");
      case subject_form::legacy_sealed:
        return crypto::open(keys_.legacy, s.bytes, request_id).value_or("");
      case subject_form::hashed:
        break;
    }
    return "";
  }

  job open(stored_job s) const {
    s.j.subject = open_subject(s.subject, s.j.request_id);
    return std::move(s.j);
  }

  result<std::vector<job>> open_all(result<std::vector<stored_job>> rows) const {
    if (!rows) {
      return rows.error();
    }
    std::vector<job> out;
    out.reserve(rows->size());
    for (auto& r : *rows) {
      out.push_back(open(std::move(r)));
    }
    return out;
  }

  // Retry: a failed job runs again with fresh attempts; a finished job whose report was not
  // acknowledged has it sent again. Cancel: a job waiting to run (queued or retrying) ends
  // Failed "cancelled by operator" and is reported. Anything else is a conflict.
  result<operator_result> operator_action(std::string_view request_id, time_point now,
                                          bool cancelling) {
    auto found = engine_->find(request_id);
    if (!found) {
      return found.error();
    }
    if (!*found) {
      return operator_result::not_found;
    }
    const job& j = (*found)->j;
    operator_change change{
        j.id,    operator_verb::requeue,
        j.state, job_outcome::none,
        "",      job_step{now, step_kind::operator_action, cancelling ? "cancel" : "retry"}};
    operator_result done = operator_result::conflict;
    if (cancelling && (j.state == job_state::queued || j.state == job_state::retrying)) {
      change.verb = operator_verb::cancel;
      change.outcome = job_outcome::failed;
      change.outcome_message = "cancelled by operator";
      done = operator_result::cancelled;
    } else if (!cancelling && j.state == job_state::failed) {
      change.verb = operator_verb::requeue;
      done = operator_result::requeued;
    } else if (!cancelling && !is_active(j.state) && !j.reported &&
               j.outcome != job_outcome::none) {
      change.verb = operator_verb::resend;
      done = operator_result::report_resent;
    } else {
      return operator_result::conflict;
    }
    auto applied = engine_->apply(change, now);
    if (!applied) {
      return applied.error();
    }
    return *applied ? done : operator_result::conflict;
  }

  std::unique_ptr<store_engine> engine_;
  store_keys keys_;  // from store_key (32 bytes); empty: IDs kept in the clear (tests)
};

}  // namespace

std::unique_ptr<job_store> make_job_store(std::unique_ptr<store_engine> engine,
                                          const std::string& store_key) {
  return std::make_unique<domain_store>(std::move(engine), store_key);
}

result<std::unique_ptr<job_store>> open_sqlite_store(const sqlite_store_options& options) {
  auto engine = open_sqlite_engine(options);
  if (!engine) {
    return engine.error();
  }
  return make_job_store(std::move(*engine), options.subject_key);
}

}  // namespace dsr
