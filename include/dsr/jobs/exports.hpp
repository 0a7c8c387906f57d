#pragma once
// Copy exports kept on disk (one JSON file per job under exports/ beside the store), and the
// export-one answers being scanned there (`*.part`, `*.tmp`).

#include "dsr/common/error.hpp"
#include "dsr/jobs/store.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>

namespace dsr {

// The directory beside the store: `<store dir>/exports`.
std::filesystem::path export_dir_for(const std::filesystem::path& store_path);

// Creates `dir` (mode 0700: exports hold personal data). Fails (errc::io_error) naming it.
result<void> prepare_export_dir(const std::filesystem::path& dir);

// Where a completed copy job keeps its export.
std::filesystem::path export_path(const std::filesystem::path& dir, std::int64_t job_id);

// Deletes the answers a previous run was still downloading or scanning; returns how many. Call at
// start-up, before any job runs.
std::size_t remove_partial_exports(const std::filesystem::path& dir);

// Deletes the export files in `dir` last written before `cutoff`, but those of the jobs in `keep`
// (copies whose file link is still live); returns how many. A missing directory is not an error.
// Used hourly with cutoff = now - export_retention_days.
std::size_t purge_exports(const std::filesystem::path& dir, std::filesystem::file_time_type cutoff,
                          std::span<const std::int64_t> keep = {});

// Deletes the exports whose file link (contract §6) expired by `now`, as the store records them;
// returns how many files went. Runs on the store thread (it reads the store).
result<std::size_t> remove_expired_link_exports(job_store& store, const std::filesystem::path& dir,
                                                time_point now);

}  // namespace dsr
