// The PostgreSQL engine's kept exports (postgres_engine.hpp, store.hpp): a copy's sealed export in
// chunks, in the database so that any daemon can deliver it. Each verb is one statement.

#include "postgres_engine.hpp"

#include <fmt/format.h>

#include <string>
#include <vector>

namespace dsr::detail {

namespace {

// The job, locked, when `owner` ($n) holds its lease or is "" (store migrate): every statement
// below writes only through it, so that a daemon whose lease was taken over writes nothing.
std::string held_by(int n) {
  return fmt::format(
      "held AS (SELECT id FROM jobs WHERE id = $1::bigint AND (${0}::text = '' OR (state = "
      "'running' AND lease_owner = ${0}::text)) FOR UPDATE)",
      n);
}

}  // namespace

result<void> postgres_engine::put_export_chunk(std::int64_t job_id, std::string_view owner,
                                               std::uint32_t index, std::string_view bytes) {
  const auto sql = fmt::format(
      "WITH {}, hide AS (DELETE FROM exports WHERE job_id IN (SELECT id FROM held) AND "
      "$2::integer = 0) INSERT INTO export_chunks (job_id, idx, data) SELECT id, $2::integer, $3 "
      "FROM held ON CONFLICT (job_id, idx) DO UPDATE SET data = EXCLUDED.data",
      held_by(4));
  auto r = query(sql.c_str(), "storing a piece of an export",
                 pg::params()
                     .integer(job_id)
                     .integer(static_cast<std::int64_t>(index))
                     .bytes(bytes)
                     .text(owner));
  if (!r) {
    return r.error();
  }
  return r->affected() == 0 ? result<void>{lease_lost(job_id, owner)} : result<void>{};
}

result<void> postgres_engine::finish_export(std::int64_t job_id, std::string_view owner,
                                            std::uint32_t chunks, time_point now) {
  const auto sql = fmt::format(
      "WITH {}, trim AS (DELETE FROM export_chunks WHERE job_id IN (SELECT id FROM held) AND idx "
      ">= $2::integer) INSERT INTO exports (job_id, chunks, finished_at_ms) SELECT id, "
      "$2::integer, $3::bigint FROM held ON CONFLICT (job_id) DO UPDATE SET chunks = "
      "EXCLUDED.chunks, finished_at_ms = EXCLUDED.finished_at_ms",
      held_by(4));
  auto r = query(sql.c_str(), "finishing an export",
                 pg::params()
                     .integer(job_id)
                     .integer(static_cast<std::int64_t>(chunks))
                     .integer(ms(now))
                     .text(owner));
  if (!r) {
    return r.error();
  }
  return r->affected() == 0 ? result<void>{lease_lost(job_id, owner)} : result<void>{};
}

result<std::optional<std::uint32_t>> postgres_engine::export_chunks(std::int64_t job_id) {
  auto r = read("SELECT chunks FROM exports WHERE job_id = $1::bigint", "reading an export",
                pg::params().integer(job_id));
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    return std::optional<std::uint32_t>{};
  }
  return std::optional<std::uint32_t>(static_cast<std::uint32_t>(r->integer(0, 0)));
}

result<std::string> postgres_engine::export_chunk(std::int64_t job_id, std::uint32_t index) {
  auto r = read("SELECT data FROM export_chunks WHERE job_id = $1::bigint AND idx = $2::integer",
                "reading an export",
                pg::params().integer(job_id).integer(static_cast<std::int64_t>(index)));
  if (!r) {
    return r.error();
  }
  if (r->count() == 0) {
    return make_failure(
        errc::not_found,
        fmt::format("job store {}: piece {} of job {}'s export is missing", where_, index, job_id));
  }
  return r->bytes(0, 0);
}

result<std::size_t> postgres_engine::delete_exports(std::span<const std::int64_t> job_ids) {
  const std::vector<std::int64_t> ids(job_ids.begin(), job_ids.end());
  auto r = query(
      "WITH pieces AS (DELETE FROM export_chunks WHERE job_id = ANY($1::bigint[])) "
      "DELETE FROM exports WHERE job_id = ANY($1::bigint[])",
      "deleting exports", pg::params().integer_array(ids));
  if (!r) {
    return r.error();
  }
  return static_cast<std::size_t>(r->affected());
}

result<std::size_t> postgres_engine::purge_exports(time_point before,
                                                   std::span<const std::int64_t> keep) {
  const std::vector<std::int64_t> kept(keep.begin(), keep.end());
  auto r = query(
      "WITH gone AS (DELETE FROM exports WHERE finished_at_ms < $1::bigint AND NOT (job_id = "
      "ANY($2::bigint[])) RETURNING job_id), pieces AS (DELETE FROM export_chunks WHERE job_id IN "
      "(SELECT job_id FROM gone)) SELECT COUNT(*) FROM gone",
      "purging old exports", pg::params().integer(ms(before)).integer_array(kept));
  if (!r) {
    return r.error();
  }
  return static_cast<std::size_t>(r->integer(0, 0));
}

}  // namespace dsr::detail
