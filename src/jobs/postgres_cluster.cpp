// The PostgreSQL engine's cluster verbs (store.hpp, docs/contract.md §8): the daemons' heartbeats,
// the shared rate limit (one GCRA row), the shared circuit breaker and the periodic tasks' runs.
// Every time here is the database's clock_timestamp(), handed back to daemons as durations; each
// verb is one autocommit statement (two for a heartbeat), so nothing holds session state and
// PgBouncer in transaction mode works.

#include "postgres_engine.hpp"

#include <fmt/format.h>

#include <string>

namespace dsr::detail {
namespace {

constexpr const char* db_now_us = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

}  // namespace

// The schema is read first and alone: a newer daemon may have changed every other table.
result<cluster_view> postgres_engine::heartbeat(const worker_beat& beat) {
  cluster_view out;
  auto v = read("SELECT version FROM dsr_schema", "reading the schema version");
  if (!v) {
    return v.error();
  }
  out.schema = v->count() == 0 ? 0 : v->integer(0, 0);
  if (out.schema > static_cast<std::int64_t>(postgres_schema_version())) {
    return out;
  }
  // The SELECT sees the rows as they were before this statement's own upsert: the others, + 1.
  const auto sql = fmt::format(
      "WITH n AS (SELECT {} AS now), up AS (INSERT INTO workers (owner, name, version, "
      "started_at_ms, seen_at_ms) SELECT $1, $2, $3, now, now FROM n ON CONFLICT (owner) DO "
      "UPDATE SET seen_at_ms = EXCLUDED.seen_at_ms, name = EXCLUDED.name, version = "
      "EXCLUDED.version), gone AS (DELETE FROM workers WHERE seen_at_ms < (SELECT now FROM n) - "
      "10 * $4::bigint AND owner <> $1) SELECT (SELECT COUNT(*) FROM workers w WHERE w.owner <> "
      "$1 AND w.seen_at_ms >= n.now - $4::bigint) + 1, GREATEST(l.blocked_until_ms - n.now, 0), "
      "GREATEST(l.breaker_until_ms - n.now, 0), l.breaker_reason FROM call_limits l, n WHERE "
      "l.name = 'exponea'",
      db_now);
  auto r = query(sql.c_str(), "recording this daemon's heartbeat",
                 pg::params()
                     .text(beat.owner)
                     .text(beat.name)
                     .text(beat.version)
                     .integer(beat.live_for.count()));
  if (!r) {
    return r.error();
  }
  if (r->count() == 1) {
    out.live_workers = static_cast<std::size_t>(r->integer(0, 0));
    out.calls_blocked_for = std::chrono::milliseconds(r->integer(0, 1));
    out.breaker_open_for = std::chrono::milliseconds(r->integer(0, 2));
    out.breaker_reason = r->text(0, 3);
  }
  return out;
}

// GCRA without burst credit: a call's slot is the later of the theoretical arrival time (tat) and
// now, and moves tat one interval on. While a Retry-After holds, no slot is taken. A limit's row
// is made by its first turn (the schema makes only Exponea's).
result<call_turn> postgres_engine::take_turn(call_limit limit, std::chrono::microseconds interval) {
  const auto sql = fmt::format(
      "WITH n AS (SELECT {0} AS now), up AS (INSERT INTO call_limits AS l (name, tat_us) SELECT "
      "$2, n.now + $1::bigint FROM n ON CONFLICT (name) DO UPDATE SET tat_us = CASE WHEN "
      "l.blocked_until_ms * 1000 > (SELECT now FROM n) THEN l.tat_us ELSE GREATEST(l.tat_us, "
      "(SELECT now FROM n)) + $1::bigint END RETURNING l.tat_us, l.blocked_until_ms) SELECT CASE "
      "WHEN up.blocked_until_ms * 1000 > n.now THEN 0 ELSE up.tat_us - $1::bigint - n.now END, "
      "GREATEST(up.blocked_until_ms * 1000 - n.now, 0) FROM up, n",
      db_now_us);
  auto r = query(sql.c_str(), "taking a turn of the shared rate limit",
                 pg::params().integer(interval.count()).text(to_string(limit)));
  if (!r) {
    return r.error();
  }
  call_turn out;
  if (r->count() == 1) {
    out.wait = std::chrono::microseconds(std::max<std::int64_t>(r->integer(0, 0), 0));
    out.blocked = std::chrono::microseconds(r->integer(0, 1));
  }
  return out;
}

result<void> postgres_engine::block_calls(call_limit limit, std::chrono::milliseconds d) {
  const auto sql = fmt::format(
      "INSERT INTO call_limits AS l (name, blocked_until_ms) VALUES ($2, {} + $1::bigint) ON "
      "CONFLICT (name) DO UPDATE SET blocked_until_ms = GREATEST(l.blocked_until_ms, "
      "EXCLUDED.blocked_until_ms)",
      db_now);
  return run(sql.c_str(), "sharing a Retry-After",
             pg::params().integer(d.count()).text(to_string(limit)));
}

result<void> postgres_engine::set_breaker(std::chrono::milliseconds d, std::string_view reason) {
  const auto sql = fmt::format(
      "UPDATE call_limits SET breaker_until_ms = CASE WHEN $1::bigint = 0 THEN 0 ELSE {} + "
      "$1::bigint END, breaker_reason = $2 WHERE name = 'exponea'",
      db_now);
  return run(sql.c_str(), "sharing the circuit breaker",
             pg::params().integer(d.count()).text(reason));
}

// A leader row per task with a TTL: taken by one UPDATE when no daemon holds it and no daemon ran
// the task within `period`.
result<bool> postgres_engine::claim_periodic(std::string_view task, std::string_view owner,
                                             std::chrono::milliseconds period,
                                             std::chrono::milliseconds ttl) {
  if (auto r = run("INSERT INTO periodic_tasks (task) VALUES ($1) ON CONFLICT (task) DO NOTHING",
                   "recording a periodic task", pg::params().text(task));
      !r) {
    return r.error();
  }
  const auto sql = fmt::format(
      "WITH n AS (SELECT {} AS now) UPDATE periodic_tasks t SET owner = $2, held_until_ms = n.now "
      "+ $4::bigint, last_run_at_ms = n.now FROM n WHERE t.task = $1 AND t.held_until_ms < n.now "
      "AND t.last_run_at_ms <= n.now - $3::bigint",
      db_now);
  auto r = query(sql.c_str(), "claiming a periodic task",
                 pg::params().text(task).text(owner).integer(period.count()).integer(ttl.count()));
  if (!r) {
    return r.error();
  }
  return r->affected() == 1;
}

}  // namespace dsr::detail
