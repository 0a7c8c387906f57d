#include "dsr/jobs/exports.hpp"

#include <fmt/format.h>

#include <sys/stat.h>

namespace dsr {

std::filesystem::path export_dir_for(const std::filesystem::path& store_path) {
  return store_path.parent_path() / "exports";
}

result<void> prepare_export_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return make_failure(errc::io_error,
                        fmt::format("cannot create the export directory {}: {}", dir.string(),
                                    ec ? ec.message() : std::string("chmod failed")));
  }
  return {};
}

std::filesystem::path export_path(const std::filesystem::path& dir, std::int64_t job_id) {
  return dir / fmt::format("{}.json", job_id);
}

std::size_t remove_partial_exports(const std::filesystem::path& dir) {
  std::size_t removed = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code file_ec;
    const auto ext = it->path().extension();
    if (it->is_regular_file(file_ec) && (ext == ".part" || ext == ".tmp") &&
        std::filesystem::remove(it->path(), file_ec)) {
      ++removed;
    }
  }
  return removed;
}

std::size_t purge_exports(const std::filesystem::path& dir,
                          std::filesystem::file_time_type cutoff) {
  std::size_t removed = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code file_ec;
    if (!it->is_regular_file(file_ec) || it->path().extension() != ".json") {
      continue;
    }
    const auto written = it->last_write_time(file_ec);
    if (!file_ec && written < cutoff && std::filesystem::remove(it->path(), file_ec)) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace dsr
