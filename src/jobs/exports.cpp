#include "dsr/jobs/exports.hpp"

#include <fmt/format.h>

#include <sys/stat.h>

#include <algorithm>
#include <string>

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

std::size_t purge_exports(const std::filesystem::path& dir, std::filesystem::file_time_type cutoff,
                          std::span<const std::int64_t> keep) {
  std::size_t removed = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code file_ec;
    if (!it->is_regular_file(file_ec) || it->path().extension() != ".json") {
      continue;
    }
    const auto name = it->path().stem().string();
    if (std::any_of(keep.begin(), keep.end(),
                    [&](std::int64_t id) { return name == std::to_string(id); })) {
      continue;  // a live file link: deleted when it expires
    }
    const auto written = it->last_write_time(file_ec);
    if (!file_ec && written < cutoff && std::filesystem::remove(it->path(), file_ec)) {
      ++removed;
    }
  }
  return removed;
}

result<std::size_t> remove_expired_link_exports(job_store& store, const std::filesystem::path& dir,
                                                time_point now) {
  auto expired = store.file_links(now, true);
  if (!expired) {
    return expired.error();
  }
  std::size_t removed = 0;
  for (const auto id : *expired) {
    std::error_code ec;
    if (std::filesystem::remove(export_path(dir, id), ec)) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace dsr
