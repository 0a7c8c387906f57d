#pragma once
// Copy exports kept on disk (one JSON file per job under exports/ beside the store), and the
// export-one answers being scanned there (`*.part`, `*.tmp`).

#include "dsr/common/error.hpp"
#include "dsr/jobs/store.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

namespace dsr {

// The directory beside the store: `<store dir>/exports`.
std::filesystem::path export_dir_for(const std::filesystem::path& store_path);

// Creates `dir` (mode 0700: exports hold personal data), or makes sure an existing one is the
// daemon's own: a symlink or a folder owned by another user is refused (errc::io_error naming it
// and what to do), never changed; an own folder open to group or others is made 0700.
result<void> prepare_export_dir(const std::filesystem::path& dir);

// The names the daemon writes in the export directory, and the only ones it deletes there:
// "<job id>.json" (an export), "export-one-<16 hex>.part" (a download being scanned),
// "<job id>.json.tmp" (an export being written).
bool is_export_name(std::string_view name);
bool is_download_name(std::string_view name);
bool is_scan_name(std::string_view name);

// Where a completed copy job keeps its export.
std::filesystem::path export_path(const std::filesystem::path& dir, std::int64_t job_id);

// Deletes the answers a previous run was still downloading or scanning (regular files with the
// names above only); returns how many. Call at start-up, before any job runs.
std::size_t remove_partial_exports(const std::filesystem::path& dir);

// Deletes the export files in `dir` last written before `cutoff`, but those of the jobs in `keep`
// (copies whose file link is still live); returns how many. A missing directory is not an error.
// Used hourly with cutoff = now - export_retention_days.
std::size_t purge_exports(const std::filesystem::path& dir, std::filesystem::file_time_type cutoff,
                          std::span<const std::int64_t> keep = {});

// Deletes the exports of `job_ids` (those whose file link, docs/contract.md §6, expired, as
// async_store::file_links(now, true) lists them); returns how many files went.
std::size_t remove_exports(const std::filesystem::path& dir, std::span<const std::int64_t> job_ids);

}  // namespace dsr
