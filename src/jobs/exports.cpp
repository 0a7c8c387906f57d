#include "dsr/jobs/exports.hpp"

namespace dsr {

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
