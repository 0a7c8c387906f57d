// The SQLite engine's kept exports (sqlite_engine.hpp, store.hpp): a sealed export's bytes in
// chunks. The daemon keeps SQLite's exports on disk; these verbs hold the engines to one contract.

#include "sqlite_engine.hpp"

#include <fmt/format.h>

#include <string>

namespace dsr::detail {
namespace {

// A list of ids as SQLite's json_each reads it.
std::string json_ids(std::span<const std::int64_t> ids) {
  return fmt::format("[{}]", fmt::join(ids, ","));
}

}  // namespace

result<void> sqlite_engine::put_export_chunk(std::int64_t job_id, std::string_view owner,
                                             std::uint32_t index, std::string_view bytes) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  if (auto r = owner.empty() ? result<void>{} : check_lease(job_id, owner); !r) {
    rollback();
    return r;
  }
  if (index == 0) {
    const statement hide(db_, "DELETE FROM exports WHERE job_id = ?1");
    use q(hide);
    q.bind(1, job_id);
    if (q.step() != SQLITE_DONE) {
      auto e = error("replacing an export");
      rollback();
      return e;
    }
  }
  {
    const statement put(db_,
                        "INSERT INTO export_chunks (job_id, idx, data) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT (job_id, idx) DO UPDATE SET data = excluded.data");
    use q(put);
    q.bind(1, job_id).bind(2, static_cast<std::int64_t>(index)).bind_blob(3, bytes);
    if (q.step() != SQLITE_DONE) {
      auto e = error("storing a piece of an export");
      rollback();
      return e;
    }
  }
  return commit();
}

result<void> sqlite_engine::finish_export(std::int64_t job_id, std::string_view owner,
                                          std::uint32_t chunks, time_point now) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  if (auto r = owner.empty() ? result<void>{} : check_lease(job_id, owner); !r) {
    rollback();
    return r;
  }
  {
    const statement trim(db_, "DELETE FROM export_chunks WHERE job_id = ?1 AND idx >= ?2");
    use q(trim);
    q.bind(1, job_id).bind(2, static_cast<std::int64_t>(chunks));
    if (q.step() != SQLITE_DONE) {
      auto e = error("finishing an export");
      rollback();
      return e;
    }
  }
  {
    const statement done(db_,
                         "INSERT INTO exports (job_id, chunks, finished_at_ms) VALUES (?1, ?2, ?3) "
                         "ON CONFLICT (job_id) DO UPDATE SET chunks = excluded.chunks, "
                         "finished_at_ms = excluded.finished_at_ms");
    use q(done);
    q.bind(1, job_id).bind(2, static_cast<std::int64_t>(chunks)).bind(3, ms(now));
    if (q.step() != SQLITE_DONE) {
      auto e = error("finishing an export");
      rollback();
      return e;
    }
  }
  return commit();
}

result<std::optional<std::uint32_t>> sqlite_engine::export_chunks(std::int64_t job_id) {
  const statement s(db_, "SELECT chunks FROM exports WHERE job_id = ?1");
  use q(s);
  q.bind(1, job_id);
  const int rc = q.step();
  if (rc == SQLITE_ROW) {
    return std::optional<std::uint32_t>(static_cast<std::uint32_t>(q.integer(0)));
  }
  if (rc != SQLITE_DONE) {
    return error("reading an export");
  }
  return std::optional<std::uint32_t>{};
}

result<std::string> sqlite_engine::export_chunk(std::int64_t job_id, std::uint32_t index) {
  const statement s(db_, "SELECT data FROM export_chunks WHERE job_id = ?1 AND idx = ?2");
  use q(s);
  q.bind(1, job_id).bind(2, static_cast<std::int64_t>(index));
  const int rc = q.step();
  if (rc == SQLITE_ROW) {
    return q.blob(0);
  }
  if (rc != SQLITE_DONE) {
    return error("reading an export");
  }
  return make_failure(
      errc::not_found,
      fmt::format("job store {}: piece {} of job {}'s export is missing", path_, index, job_id));
}

result<std::size_t> sqlite_engine::delete_exports(std::span<const std::int64_t> job_ids) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  std::size_t deleted = 0;
  for (const char* sql :
       {"DELETE FROM export_chunks WHERE job_id IN (SELECT value FROM json_each(?1))",
        "DELETE FROM exports WHERE job_id IN (SELECT value FROM json_each(?1))"}) {
    const statement s(db_, sql);
    use q(s);
    q.bind(1, json_ids(job_ids));
    if (q.step() != SQLITE_DONE) {
      auto e = error("deleting exports");
      rollback();
      return e;
    }
    deleted = static_cast<std::size_t>(sqlite3_changes(db_));
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  return deleted;
}

result<std::size_t> sqlite_engine::purge_exports(time_point before,
                                                 std::span<const std::int64_t> keep) {
  if (auto r = begin(); !r) {
    return r.error();
  }
  const auto kept = json_ids(keep);
  std::size_t purged = 0;
  for (const char* sql :
       {"DELETE FROM export_chunks WHERE job_id IN (SELECT job_id FROM exports WHERE "
        "finished_at_ms < ?1 AND job_id NOT IN (SELECT value FROM json_each(?2)))",
        "DELETE FROM exports WHERE finished_at_ms < ?1 AND job_id NOT IN (SELECT value FROM "
        "json_each(?2))"}) {
    const statement s(db_, sql);
    use q(s);
    q.bind(1, ms(before)).bind(2, kept);
    if (q.step() != SQLITE_DONE) {
      auto e = error("purging old exports");
      rollback();
      return e;
    }
    purged = static_cast<std::size_t>(sqlite3_changes(db_));
  }
  if (auto r = commit(); !r) {
    return r.error();
  }
  return purged;
}

}  // namespace dsr::detail
