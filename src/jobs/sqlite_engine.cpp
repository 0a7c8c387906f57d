// The SQLite engine's writes (sqlite_engine.hpp): intake, claims, the journal, release, leases and
// operator actions, each one transaction (BEGIN IMMEDIATE), and the transaction glue under them.

#include "sqlite_engine.hpp"

#include <fmt/format.h>

#include <string>

namespace dsr::detail {

sqlite_engine::~sqlite_engine() {
  stmts_.reset();
  sqlite3_close_v2(db_);
}

result<void> sqlite_engine::prepare() {
  try {
    stmts_ = std::make_unique<statements>(db_);
  } catch (const std::exception& e) {
    return make_failure(errc::store_corrupt, e.what());
  }
  use q(stmts_->count_active);
  if (q.step() != SQLITE_ROW) {
    return error("counting active jobs");
  }
  active_ = static_cast<std::size_t>(q.integer(0));
  return {};
}

result<std::vector<insert_outcome>> sqlite_engine::insert(std::span<const stored_new_job> jobs,
                                                          std::size_t max_active) {
  std::vector<insert_outcome> outcomes;
  outcomes.reserve(jobs.size());
  if (auto r = begin(); !r) {
    return r.error();
  }
  std::size_t active = active_;
  for (const auto& j : jobs) {
    auto o = insert_one(j, max_active, active);
    if (!o) {
      rollback();
      return o.error();
    }
    outcomes.push_back(std::move(*o));
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  active_ = active;
  return outcomes;
}

result<std::optional<stored_job>> sqlite_engine::claim_next(std::string_view owner, time_point now,
                                                            std::chrono::milliseconds lease) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  std::optional<std::int64_t> id;
  {
    use q(stmts_->claim);
    q.bind(1, owner).bind(2, ms(now + lease)).bind(3, ms(now)).bind(4, worker_of(owner));
    const int rc = q.step();
    if (rc == SQLITE_ROW) {
      id = q.integer(0);
    } else if (rc != SQLITE_DONE) {
      auto e = error("claiming a job");
      rollback();
      return e;
    }
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  if (!id) {
    return std::optional<stored_job>{};
  }
  return find_one(stmts_->find_by_id, *id);
}

result<void> sqlite_engine::append_step(std::int64_t job_id, std::string_view owner,
                                        const job_step& s) {
  if (auto r = begin(); !r) {
    return r;
  }
  if (auto r = check_lease(job_id, owner); !r) {
    rollback();
    return r;
  }
  if (auto r = add_step(job_id, s); !r) {
    rollback();
    return r;
  }
  return commit();
}

std::vector<result<void>> sqlite_engine::append_steps(std::span<const step_line> lines) {
  const auto all = [&](const failure& f) { return std::vector<result<void>>(lines.size(), f); };
  if (auto r = begin(); !r) {
    return all(r.error());
  }
  std::vector<result<void>> out;
  out.reserve(lines.size());
  for (const auto& l : lines) {
    if (auto r = check_lease(l.job_id, l.owner); !r) {
      if (!r.error().is(errc::lease_lost)) {
        rollback();
        return all(r.error());
      }
      out.push_back(r.error());  // this line alone: the others keep their leases
      continue;
    }
    if (auto r = add_step(l.job_id, l.step); !r) {
      rollback();
      return all(r.error());
    }
    out.emplace_back();
  }
  if (auto r = commit(); !r) {
    return all(r.error());
  }
  return out;
}

result<void> sqlite_engine::release(std::int64_t job_id, std::string_view owner,
                                    const job_release& next, time_point now) {
  if (auto r = begin(); !r) {
    return r;
  }
  if (auto r = check_lease(job_id, owner); !r) {
    rollback();
    return r;
  }
  {
    use q(stmts_->release);
    q.bind(1, to_string(next.state))
        .bind(2, static_cast<std::int64_t>(next.attempts))
        .bind(3, ms(next.next_attempt_at))
        .bind(4, to_string(next.outcome))
        .bind(5, next.outcome_message)
        .bind(6, ms(now))
        .bind(7, job_id)
        .bind(8, next.op ? std::int64_t{*next.op == operation::opt_out ? 1 : 0} : std::int64_t{-1});
    if (q.step() != SQLITE_DONE) {
      auto e = error("releasing a job");
      rollback();
      return e;
    }
  }
  if (auto r = commit(); !r) {
    return r;
  }
  if (!is_active(next.state) && active_ > 0) {
    --active_;
  }
  return {};
}

result<bool> sqlite_engine::apply(const operator_change& c, time_point now) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  const statement& s = c.verb == operator_verb::requeue  ? stmts_->requeue
                       : c.verb == operator_verb::cancel ? stmts_->cancel
                                                         : stmts_->resend;
  {
    use q(s);
    q.bind(1, c.job_id).bind(2, ms(now)).bind(3, to_string(c.expected));
    if (c.verb == operator_verb::cancel) {
      q.bind(4, to_string(c.outcome)).bind(5, c.outcome_message);
    }
    if (q.step() != SQLITE_DONE) {
      auto e = error("applying an operator action");
      rollback();
      return e;
    }
  }
  if (sqlite3_changes(db_) == 0) {
    rollback();
    return false;
  }
  if (auto r = add_step(c.job_id, c.step); !r) {
    rollback();
    return r.error();
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  if (c.verb == operator_verb::cancel && active_ > 0) {
    --active_;
  } else if (c.verb == operator_verb::requeue) {
    ++active_;
  }
  return true;
}

result<std::size_t> sqlite_engine::expire_leases(time_point now) {
  use q(stmts_->expire);
  q.bind(1, ms(now));
  if (q.step() != SQLITE_DONE) {
    return error("expiring leases");
  }
  return static_cast<std::size_t>(sqlite3_changes(db_));
}

result<std::size_t> sqlite_engine::renew_leases(std::span<const std::string> owners, time_point now,
                                                std::chrono::milliseconds lease) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  std::size_t renewed = 0;
  for (const auto& owner : owners) {
    use q(stmts_->renew);
    q.bind(1, owner).bind(2, ms(now + lease));
    if (q.step() != SQLITE_DONE) {
      auto e = error("renewing leases");
      rollback();
      return e;
    }
    renewed += static_cast<std::size_t>(sqlite3_changes(db_));
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  return renewed;
}

// One daemon holds an SQLite store: its leases outlast any run and are only expired at its next
// start, so a renewal checks the lease and leaves it as it is.
result<std::chrono::milliseconds> sqlite_engine::renew_lease(std::int64_t job_id,
                                                             std::string_view owner, time_point,
                                                             std::chrono::milliseconds lease) {
  if (auto r = check_lease(job_id, owner); !r) {
    return r.error();
  }
  return lease;
}

result<void> sqlite_engine::probe_write(time_point now) {
  use q(stmts_->probe);
  q.bind(1, ms(now));
  if (q.step() != SQLITE_DONE) {
    return error("test-writing the store");
  }
  return {};
}

failure sqlite_engine::error(std::string_view doing) const {
  const int rc = sqlite3_extended_errcode(db_);
  const int primary = rc & 0xff;
  const errc code = (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
                        ? errc::store_corrupt
                        : errc::store_unavailable;
  return make_failure(code, fmt::format("job store {}: {} while {} ({})", path_,
                                        sqlite3_errmsg(db_), doing, sqlite3_errstr(rc)));
}

result<void> sqlite_engine::begin() {
  use q(stmts_->begin);
  if (q.step() != SQLITE_DONE) {
    return error("starting a transaction");
  }
  return {};
}

result<void> sqlite_engine::commit() {
  {
    use q(stmts_->commit);
    if (q.step() == SQLITE_DONE) {
      return {};
    }
  }
  auto e = error("committing");
  rollback();
  return e;
}

void sqlite_engine::rollback() {
  if (sqlite3_get_autocommit(db_) == 0) {
    use q(stmts_->rollback);
    q.step();
  }
}

result<std::optional<insert_outcome>> sqlite_engine::earlier(const new_job& j) {
  {
    use q(stmts_->by_trace);
    q.bind(1, j.trace_id);
    const int rc = q.step();
    if (rc == SQLITE_ROW) {
      return insert_outcome{insert_outcome::kind::duplicate, q.text(0)};
    }
    if (rc != SQLITE_DONE) {
      return error("looking up a trace id");
    }
  }
  use q(stmts_->by_request);
  q.bind(1, j.request_id);
  const int rc = q.step();
  if (rc == SQLITE_ROW) {
    return insert_outcome{repeat_of(q.text(0) == "copy", j.op), j.request_id};
  }
  if (rc != SQLITE_DONE) {
    return error("looking up a request id");
  }
  return std::optional<insert_outcome>{};
}

result<insert_outcome> sqlite_engine::insert_one(const stored_new_job& row, std::size_t max_active,
                                                 std::size_t& active) {
  const new_job& j = *row.job;
  // A job that ends at intake never waits in the queue: it does not count against its capacity.
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
  {
    use q(stmts_->insert_job);
    q.bind(1, j.request_id)
        .bind(2, j.trace_id)
        .bind(3, j.op == operation::copy ? "copy" : "delete")
        .bind(4, j.integration_id)
        .bind(5, j.source)
        .bind(6, j.request_type)
        .bind(11, j.ended ? to_string(j.ended->state) : "queued")
        .bind(12, std::int64_t{j.op == operation::opt_out ? 1 : 0})
        .bind(13, j.right.id)
        .bind(14, j.right.name)
        .bind(15, j.right.type)
        .bind(16, j.subject_id_name)
        .bind(17, to_string(j.ended ? j.ended->outcome : job_outcome::none))
        .bind(18, j.ended ? j.ended->message : std::string());
    if (j.created_at) {
      q.bind(7, ms(*j.created_at));
    } else {
      q.bind_null(7);
    }
    q.bind(8, ms(j.received_at))
        .bind_blob(9, row.subject.bytes)
        .bind(10, static_cast<std::int64_t>(row.subject.form));
    if (const int rc = q.step(); rc != SQLITE_DONE) {
      auto failed = error("inserting a job");
      if (rc != SQLITE_CONSTRAINT_UNIQUE) {
        return failed;
      }
      q.reset();  // the failed statement is undone; the transaction goes on
      auto seen = earlier(j);
      if (!seen) {
        return seen.error();
      }
      if (!*seen) {
        return failed;
      }
      return **seen;
    }
  }
  const auto id = sqlite3_last_insert_rowid(db_);
  for (const auto& step : row.steps) {
    if (auto r = add_step(id, step); !r) {
      return r.error();
    }
  }
  if (!j.ended) {
    ++active;
  }
  return insert_outcome{insert_outcome::kind::inserted, j.request_id};
}

result<void> sqlite_engine::add_step(std::int64_t job_id, const job_step& s) {
  use q(stmts_->insert_step);
  q.bind(1, job_id).bind(2, ms(s.at)).bind(3, to_string(s.step)).bind(4, s.result);
  if (q.step() != SQLITE_DONE) {
    return error("journaling a step");
  }
  return {};
}

result<void> sqlite_engine::check_lease(std::int64_t job_id, std::string_view owner) {
  use q(stmts_->lease_of);
  q.bind(1, job_id);
  const int rc = q.step();
  if (rc == SQLITE_ROW && q.text(0) == owner) {
    return {};
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return error("checking a lease");
  }
  return make_failure(errc::lease_lost,
                      fmt::format("job {} is not leased by {} any more", job_id, owner));
}

}  // namespace dsr::detail
