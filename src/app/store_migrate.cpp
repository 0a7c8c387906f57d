// `dsr-connector store migrate --from sqlite:PATH --config FILE` (docs/contract.md §8): every job
// of an SQLite store (any state, with its journal, pending report and kept export) moved into the
// empty PostgreSQL store of the configuration, in one transaction, with the same store_key (the
// sealed IDs are copied as they are, never opened). The SQLite file is read, never written; a
// store a daemon holds (its lock file) or a PostgreSQL store that holds jobs is refused, nothing
// written.

#include "dsr/app/daemon.hpp"

#include "dsr/app/startup.hpp"
#include "dsr/common/crypto.hpp"
#include "dsr/jobs/exports.hpp"
#include "dsr/jobs/kept_exports.hpp"
#include "dsr/jobs/store_engine.hpp"
#include "dsr/ops/logging.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace dsr::app {
namespace {

int explain(const std::string& problem, int code) {
  fmt::print(stderr, "dsr-connector: store migrate: {}\n", problem);
  return code;
}

// The SQLite store's lock, held until exit: no daemon can open the store while it is read. Fails
// when a daemon holds it.
result<void> lock_source(const std::filesystem::path& store) {
  const auto path = store.string() + ".lock";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return {};  // no daemon ever ran on it here
    }
    return make_failure(errc::io_error,
                        fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return make_failure(errc::conflict,
                        fmt::format("a dsr-connector daemon has {} open (its lock {} is held); "
                                    "stop it first",
                                    store.string(), path));
  }
  return {};
}

// A kept export put into the PostgreSQL store, in the import's transaction (it stays sealed: the
// same store_key reads it), a piece at a time. Returns whether the job had one.
result<bool> keep_export(store_engine& into, const std::filesystem::path& from_dir,
                         std::int64_t id) {
  const auto from = export_path(from_dir, id);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(from, ec)) {
    return false;
  }
  export_pieces in(from);
  std::uint32_t pieces = 0;
  for (;;) {
    auto piece = in.next();
    if (!piece) {
      return piece.error();
    }
    if (piece->empty()) {
      break;
    }
    if (auto r = into.put_export_chunk(id, "", pieces, *piece); !r) {
      return r.error();
    }
    ++pieces;
  }
  const auto now = std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
  if (auto r = into.finish_export(id, "", pieces, now); !r) {
    return r.error();
  }
  return true;
}

}  // namespace

int store_migrate(const std::filesystem::path& config_file, const std::string& from) {
  ops::setup_bootstrap_logging();
  const auto cfg = load_or_explain(config_file);
  if (!cfg) {
    return 2;
  }
  if (!from.starts_with("sqlite:") || from.size() == 7) {
    return explain(fmt::format("--from '{}': expected sqlite:PATH, the SQLite store to move", from),
                   2);
  }
  if (cfg->store.engine != store_engine_kind::postgresql) {
    return explain(fmt::format("{}: [store] engine is \"sqlite\"; set engine = \"postgresql\" and "
                               "url to the database to move the jobs into",
                               cfg->source.string()),
                   2);
  }
  credential_load_report report;
  const auto credentials = load_credentials(cfg->credentials, process_environment(), report);
  const auto key_hex = credentials->find(credential::store_key);
  const auto key = key_hex ? crypto::from_hex(key_hex->reveal()) : std::nullopt;
  if (!key || key->size() != 32) {
    return explain(
        "credential store_key is missing or not 64 hex digits: give the store_key of "
        "the SQLite store (the jobs' sealed IDs and exports are moved as they are)",
        2);
  }
  const std::filesystem::path source = from.substr(7);
  if (auto r = lock_source(source); !r) {
    return explain(r.error().detail, 1);
  }
  sqlite_store_options read;
  read.path = source;
  read.read_only = true;
  auto sqlite = open_sqlite_engine(read);
  if (!sqlite) {
    return explain(sqlite.error().detail, 1);
  }
  const auto password = credentials->find(credential::store_password);
  postgres_store_options into;
  into.url = cfg->store.url;
  into.password = std::string(password ? password->reveal() : "");
  auto postgres = open_postgres_engine(into);
  if (!postgres) {
    return explain(postgres.error().detail, postgres.error().is(errc::store_schema_newer) ? 2 : 1);
  }
  if (auto r = (*postgres)->begin_import(); !r) {
    return explain(r.error().detail, 1);
  }
  const auto from_dir = export_dir_for(source);
  std::size_t exports = 0;
  const auto undo = [&](const failure& f) {
    (*postgres)->abort_import();
    return explain(f.detail + "; nothing was written", 1);
  };
  std::size_t moved = 0;
  auto each = [&](const stored_job& job) -> result<void> {
    if (auto r = (*postgres)->import_job(job); !r) {
      return r;
    }
    if (job.j.op == operation::copy) {
      auto kept = keep_export(**postgres, from_dir, job.j.id);
      if (!kept) {
        return kept.error();
      }
      exports += *kept ? 1 : 0;
    }
    ++moved;
    return {};
  };
  if (auto r = (*sqlite)->each_job(each); !r) {
    return undo(r.error());
  }
  if (auto r = (*postgres)->finish_import(); !r) {
    return undo(r.error());
  }
  fmt::print(
      "moved {} job(s) and {} kept export(s) from {} into the PostgreSQL store; {} is "
      "unchanged: keep it until the daemon runs on PostgreSQL, then remove it\n",
      moved, exports, source.string(), source.string());
  return 0;
}

}  // namespace dsr::app
