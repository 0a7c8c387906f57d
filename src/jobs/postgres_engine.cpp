// The PostgreSQL engine's writes (postgres_engine.hpp): intake and operator actions, and the
// connection glue every statement goes through. Claims, the journal and leases are in
// postgres_leases.cpp.

#include "postgres_engine.hpp"

#include "dsr/common/crypto.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace dsr::detail {

// A batch is committed at once. Usually one round trip whatever its size: one INSERT of every new
// job with its first journal lines, its own transaction; the jobs it refused (repeats) are then
// looked up in one more. The active jobs are counted (in a transaction with the INSERT) when the
// last count is over a second old or the queue may be near max_queued_jobs; near it, the stored
// repeats are looked up first and capacity is decided job by job. Either way the outcomes are
// those of one job at a time, in the batch's order.
result<std::vector<insert_outcome>> postgres_engine::insert(std::span<const stored_new_job> jobs,
                                                            std::size_t max_active) {
  const auto now = std::chrono::steady_clock::now();
  const bool recount = now - counted_at_ > std::chrono::seconds(1) ||
                       active_estimate_ + jobs.size() >= max_active / 2;
  // The first job of each request id and trace id in the batch; a later one can only repeat.
  std::set<std::string> traces;
  std::set<std::string> requests;
  std::vector<const stored_new_job*> firsts;
  std::size_t new_active = 0;
  for (const auto& row : jobs) {
    if (!traces.contains(row.job->trace_id) && !requests.contains(row.job->request_id)) {
      traces.insert(row.job->trace_id);
      requests.insert(row.job->request_id);
      firsts.push_back(&row);
      new_active += row.job->ended ? 0 : 1;
    }
  }
  auto count = active_estimate_;
  if (!recount && count + new_active <= max_active) {
    // Far from the cap: the INSERT is its own transaction (one round trip, committed when it
    // returns), and the repeats it refused are read after it.
    auto outcomes = insert_all(jobs, firsts, count);
    if (!outcomes) {
      return outcomes.error();
    }
    active_estimate_ = count;
    return outcomes;
  }
  if (auto r = begin(); !r) {
    return r.error();
  }
  auto active = query("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'retrying')",
                      "counting active jobs");
  if (!active) {
    return rollback(active.error());
  }
  count = static_cast<std::size_t>(active->integer(0, 0));
  counted_at_ = now;
  auto outcomes = count + new_active <= max_active ? insert_all(jobs, firsts, count)
                                                   : insert_in_order(jobs, max_active, count);
  if (!outcomes) {
    return rollback(outcomes.error());
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  active_estimate_ = count;
  return outcomes;
}

// Every first job fits under the cap: all are offered at once, and what the INSERT refused is a
// repeat of a stored job or of an earlier one in the batch (visible to this transaction).
result<std::vector<insert_outcome>> postgres_engine::insert_all(
    std::span<const stored_new_job> jobs, const std::vector<const stored_new_job*>& firsts,
    std::size_t& count) {
  auto inserted = insert_new(firsts);
  if (!inserted) {
    return inserted.error();
  }
  std::vector<insert_outcome> outcomes(jobs.size());
  std::vector<std::size_t> refused;
  std::set<std::string> claimed;  // request ids answered `inserted` so far
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const new_job& j = *jobs[i].job;
    if (inserted->contains(j.request_id) && !claimed.contains(j.request_id)) {
      claimed.insert(j.request_id);
      outcomes[i] = {insert_outcome::kind::inserted, j.request_id};
      count += j.ended ? 0 : 1;
    } else {
      refused.push_back(i);
    }
  }
  if (refused.empty()) {
    return outcomes;
  }
  std::vector<std::string> request_ids;
  std::vector<std::string> trace_ids;
  for (const auto i : refused) {
    request_ids.push_back(jobs[i].job->request_id);
    trace_ids.push_back(jobs[i].job->trace_id);
  }
  auto stored = stored_repeats(request_ids, trace_ids);
  if (!stored) {
    return stored.error();
  }
  for (const auto i : refused) {
    const new_job& j = *jobs[i].job;
    if (const auto t = stored->by_trace.find(j.trace_id); t != stored->by_trace.end()) {
      outcomes[i] = {insert_outcome::kind::duplicate, t->second};
    } else if (const auto r = stored->by_request.find(j.request_id);
               r != stored->by_request.end()) {
      outcomes[i] = {repeat_of(r->second, j.op), j.request_id};
    } else {
      return no_earlier_job();
    }
  }
  return outcomes;
}

result<postgres_engine::repeats> postgres_engine::stored_repeats(
    const std::vector<std::string>& request_ids, const std::vector<std::string>& trace_ids) {
  auto rows = query(
      "SELECT request_id, trace_id, operation FROM jobs WHERE request_id = ANY($1::text[]) OR "
      "trace_id = ANY($2::text[])",
      "looking up repeated requests", pg::params().text_array(request_ids).text_array(trace_ids));
  if (!rows) {
    return rows.error();
  }
  repeats out;
  for (int i = 0; i < rows->count(); ++i) {
    out.by_trace.emplace(rows->text(i, 1), rows->text(i, 0));
    out.by_request.emplace(rows->text(i, 0), rows->text(i, 2) == "copy");
  }
  return out;
}

// Near the cap: the stored repeats first, then each job in order against the cap.
result<std::vector<insert_outcome>> postgres_engine::insert_in_order(
    std::span<const stored_new_job> jobs, std::size_t max_active, std::size_t& count) {
  std::vector<std::string> request_ids;
  std::vector<std::string> trace_ids;
  for (const auto& row : jobs) {
    request_ids.push_back(row.job->request_id);
    trace_ids.push_back(row.job->trace_id);
  }
  auto stored = stored_repeats(request_ids, trace_ids);
  if (!stored) {
    return stored.error();
  }
  auto& by_trace = stored->by_trace;
  auto& by_request = stored->by_request;
  std::vector<insert_outcome> outcomes;
  std::vector<const stored_new_job*> fresh;
  for (const auto& row : jobs) {
    const new_job& j = *row.job;
    if (const auto t = by_trace.find(j.trace_id); t != by_trace.end()) {
      outcomes.push_back({insert_outcome::kind::duplicate, t->second});
    } else if (const auto r = by_request.find(j.request_id); r != by_request.end()) {
      outcomes.push_back({repeat_of(r->second, j.op), j.request_id});
    } else if (!j.ended && count >= max_active) {
      outcomes.push_back({insert_outcome::kind::queue_full, j.request_id});
    } else {
      outcomes.push_back({insert_outcome::kind::inserted, j.request_id});
      fresh.push_back(&row);
      by_trace.emplace(j.trace_id, j.request_id);
      by_request.emplace(j.request_id, j.op == operation::copy);
      count += j.ended ? 0 : 1;
    }
  }
  if (fresh.empty()) {
    return outcomes;
  }
  auto inserted = insert_new(fresh);
  if (!inserted) {
    return inserted.error();
  }
  // Another daemon committed one of these ids since the lookup: it was refused by ON CONFLICT.
  for (auto& o : outcomes) {
    if (o.result != insert_outcome::kind::inserted || inserted->contains(o.request_id)) {
      continue;
    }
    const auto row = std::find_if(fresh.begin(), fresh.end(), [&](const stored_new_job* f) {
      return f->job->request_id == o.request_id;
    });
    auto seen = earlier(*(*row)->job);
    if (!seen) {
      return seen.error();
    }
    if (!*seen) {
      return no_earlier_job();
    }
    o = **seen;
  }
  return outcomes;
}

// One statement: the guarded change and its journal line commit together or not at all.
result<bool> postgres_engine::apply(const operator_change& c, time_point now) {
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

result<void> postgres_engine::connect() {
  // A cut network shows as an error within tcp_user_timeout (data unacknowledged) or the
  // keepalives (an idle connection), not as a call that never returns.
  std::vector<const char*> keys{
      "connect_timeout",     "application_name", "keepalives",       "keepalives_idle",
      "keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname"};
  const auto timeout = std::to_string(options_.connect_timeout.count());
  std::vector<const char*> values{timeout.c_str(), "dsr-connector",     "1", "10", "5", "3",
                                  "15000",         options_.url.c_str()};
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
  PQsetNoticeProcessor(
      conn_.get(), [](void*, const char*) {}, nullptr);
  return {};
}

result<pg::rows> postgres_engine::query(const char* sql, std::string_view doing,
                                        const pg::params& p, bool may_repeat) {
  if (conn_ == nullptr || PQstatus(conn_.get()) != CONNECTION_OK) {
    if (auto r = connect(); !r) {
      return r.error();
    }
  }
  const bool idle = PQtransactionStatus(conn_.get()) == PQTRANS_IDLE;
  pg::rows r = pg::exec(conn_.get(), sql, p, options_.query_timeout);
  if (!r.ok() && may_repeat && idle && PQstatus(conn_.get()) != CONNECTION_OK) {
    if (auto c = connect(); !c) {
      return c.error();
    }
    r = pg::exec(conn_.get(), sql, p, options_.query_timeout);
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
  const errc code =
      state == "XX001" || state == "XX002" ? errc::store_corrupt : errc::store_unavailable;
  return make_failure(code, fmt::format("job store {}: {} while {}{}", where_, why, doing,
                                        state.empty() ? "" : " (SQLSTATE " + state + ")"));
}

result<void> postgres_engine::run(const char* sql, std::string_view doing, const pg::params& p,
                                  bool may_repeat) {
  auto r = query(sql, doing, p, may_repeat);
  return r ? result<void>{} : result<void>{r.error()};
}

failure postgres_engine::rollback(failure f) {
  if (conn_ != nullptr && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
    pg::exec(conn_.get(), "ROLLBACK");
  }
  return f;
}

failure postgres_engine::no_earlier_job() const {
  return make_failure(errc::store_unavailable,
                      fmt::format("job store {}: a job was refused as a repeat but no earlier "
                                  "one was found",
                                  where_));
}

failure postgres_engine::lease_lost(std::int64_t job_id, std::string_view owner) const {
  return make_failure(errc::lease_lost,
                      fmt::format("job {} is not leased by {} any more", job_id, owner));
}

result<std::optional<insert_outcome>> postgres_engine::earlier(const new_job& j) {
  auto by_trace = query("SELECT request_id FROM jobs WHERE trace_id = $1", "looking up a trace id",
                        pg::params().text(j.trace_id));
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
    return insert_outcome{repeat_of(by_request->text(0, 0) == "copy", j.op), j.request_id};
  }
  return std::optional<insert_outcome>{};
}

// Every job of `rows` and its first journal lines in one statement (ON CONFLICT DO NOTHING also
// waits for a concurrent insert of the same key to commit or roll back). Returns the request ids
// inserted.
result<std::set<std::string>> postgres_engine::insert_new(
    const std::vector<const stored_new_job*>& rows) {
  std::vector<std::string> request_id, trace_id, op, integration_id, source, request_type;
  std::vector<std::optional<std::int64_t>> created_at;
  std::vector<std::int64_t> received_at, subject_form;
  std::vector<std::string> subject_hex, state, opt_out, right_id, right_name, right_type;
  std::vector<std::string> subject_id_name, outcome, outcome_message;
  std::vector<std::string> step_request_id, step, step_result;
  std::vector<std::int64_t> step_at, step_seq;
  for (const auto* row : rows) {
    const new_job& j = *row->job;
    request_id.push_back(j.request_id);
    trace_id.push_back(j.trace_id);
    op.emplace_back(j.op == operation::copy ? "copy" : "delete");
    integration_id.push_back(j.integration_id);
    source.push_back(j.source);
    request_type.push_back(j.request_type);
    created_at.push_back(j.created_at ? std::optional<std::int64_t>(ms(*j.created_at))
                                      : std::nullopt);
    received_at.push_back(ms(j.received_at));
    subject_hex.push_back(crypto::to_hex(row->subject.bytes));
    subject_form.push_back(static_cast<std::int64_t>(row->subject.form));
    state.emplace_back(j.ended ? to_string(j.ended->state) : "queued");
    opt_out.emplace_back(j.op == operation::opt_out ? "t" : "f");
    right_id.push_back(j.right.id);
    right_name.push_back(j.right.name);
    right_type.push_back(j.right.type);
    subject_id_name.push_back(j.subject_id_name);
    outcome.emplace_back(j.ended ? to_string(j.ended->outcome) : "");
    outcome_message.push_back(j.ended ? j.ended->message : std::string());
    std::int64_t seq = 0;
    for (const auto& s : row->steps) {
      step_request_id.push_back(j.request_id);
      step_at.push_back(ms(s.at));
      step.emplace_back(to_string(s.step));
      step_result.push_back(s.result);
      step_seq.push_back(++seq);
    }
  }
  pg::params p;
  p.text_array(request_id)
      .text_array(trace_id)
      .text_array(op)
      .text_array(integration_id)
      .text_array(source)
      .text_array(request_type)
      .optional_integer_array(created_at)
      .integer_array(received_at)
      .text_array(subject_hex)
      .integer_array(subject_form)
      .text_array(state)
      .text_array(opt_out)
      .text_array(right_id)
      .text_array(right_name)
      .text_array(right_type)
      .text_array(subject_id_name)
      .text_array(outcome)
      .text_array(outcome_message)
      .text_array(step_request_id)
      .integer_array(step_at)
      .text_array(step)
      .text_array(step_result)
      .integer_array(step_seq);
  auto r = query(
      "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
      "$5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::text[], "
      "$12::boolean[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], "
      "$18::text[]) AS u(request_id, trace_id, operation, integration_id, source, request_type, "
      "created_at_ms, received_at_ms, subject_hex, subject_form, state, opt_out, right_id, "
      "right_name, right_type, subject_id_name, outcome, outcome_message)), "
      "job AS (INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, "
      "request_type, created_at_ms, received_at_ms, updated_at_ms, subject, subject_form, state, "
      "next_attempt_at_ms, opt_out, right_id, right_name, right_type, subject_id_name, outcome, "
      "outcome_message, report_next_at_ms) SELECT request_id, trace_id, operation, "
      "integration_id, source, request_type, created_at_ms, received_at_ms, received_at_ms, "
      "decode(subject_hex, 'hex'), subject_form, state, received_at_ms, opt_out, right_id, "
      "right_name, right_type, subject_id_name, outcome, outcome_message, CASE WHEN state = "
      "'queued' THEN NULL ELSE received_at_ms END FROM input ON CONFLICT DO NOTHING RETURNING id, "
      "request_id), "
      "steps AS (INSERT INTO job_steps (job_id, seq, at_ms, step, result) SELECT job.id, s.seq, "
      "s.at_ms, s.step, s.result FROM job JOIN unnest($19::text[], $20::bigint[], $21::text[], "
      "$22::text[], $23::bigint[]) AS s(request_id, at_ms, step, result, seq) ON s.request_id = "
      "job.request_id) "
      "SELECT request_id FROM job",
      "inserting jobs", p);
  if (!r) {
    return r.error();
  }
  std::set<std::string> inserted;
  for (int i = 0; i < r->count(); ++i) {
    inserted.insert(r->text(i, 0));
  }
  return inserted;
}

}  // namespace dsr::detail
