#pragma once
// Copy exports kept on disk (one JSON file per job under exports/ beside the store).

#include <chrono>
#include <filesystem>

namespace dsr {

// Deletes the export files in `dir` last written before `cutoff`; returns how many. A missing
// directory is not an error. Used hourly with cutoff = now - export_retention_days.
std::size_t purge_exports(const std::filesystem::path& dir, std::filesystem::file_time_type cutoff);

}  // namespace dsr
