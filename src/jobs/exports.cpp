#include "dsr/jobs/exports.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <string>

namespace dsr {
namespace {

bool all_of_class(std::string_view s, bool (*in)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), in);
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f');
}

}  // namespace

bool is_export_name(std::string_view name) {
  return name.ends_with(".json") && all_of_class(name.substr(0, name.size() - 5), is_digit);
}

bool is_download_name(std::string_view name) {
  constexpr std::string_view prefix = "export-one-";
  return name.starts_with(prefix) && name.ends_with(".part") &&
         name.size() == prefix.size() + 16 + 5 &&
         all_of_class(name.substr(prefix.size(), 16), is_hex);
}

bool is_scan_name(std::string_view name) {
  return name.ends_with(".tmp") && is_export_name(name.substr(0, name.size() - 4));
}

std::filesystem::path export_dir_for(const std::filesystem::path& store_path) {
  return store_path.parent_path() / "exports";
}

result<void> prepare_export_dir(const std::filesystem::path& dir) {
  // Created private when missing. An existing one is opened without following a symlink and
  // checked on the descriptor itself: a symlink or another owner's folder is refused, never
  // chmod-ed or emptied (it is not the daemon's to change).
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_failure(errc::io_error, fmt::format("cannot create the export directory {}: {}",
                                                    dir.string(), std::strerror(errno)));
  }
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return make_failure(
        errc::io_error,
        err == ELOOP || err == ENOTDIR
            ? fmt::format("the export directory {} is a symlink or not a directory; the daemon "
                          "keeps personal data only in a folder of its own: remove or move it, "
                          "and the daemon creates it",
                          dir.string())
            : fmt::format("cannot open the export directory {}: {}", dir.string(),
                          std::strerror(err)));
  }
  struct stat st {};
  const bool ok = ::fstat(fd, &st) == 0;
  std::string problem;
  if (!ok) {
    problem =
        fmt::format("cannot read the export directory {}: {}", dir.string(), std::strerror(errno));
  } else if (st.st_uid != ::geteuid()) {
    problem = fmt::format(
        "the export directory {} belongs to another user (uid {}); the daemon keeps personal data "
        "only in a folder of its own: remove or move it, and the daemon creates it",
        dir.string(), st.st_uid);
  } else if ((st.st_mode & 077) != 0 && ::fchmod(fd, 0700) != 0) {
    problem = fmt::format("cannot make the export directory {} private (mode 0700): {}",
                          dir.string(), std::strerror(errno));
  }
  ::close(fd);
  if (!problem.empty()) {
    return make_failure(errc::io_error, std::move(problem));
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
    const auto name = it->path().filename().string();
    if (it->symlink_status(file_ec).type() == std::filesystem::file_type::regular &&
        (is_download_name(name) || is_scan_name(name)) &&
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
    if (it->symlink_status(file_ec).type() != std::filesystem::file_type::regular ||
        !is_export_name(it->path().filename().string())) {
      continue;  // only what the daemon writes: never a file it did not make
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

std::size_t remove_exports(const std::filesystem::path& dir,
                           std::span<const std::int64_t> job_ids) {
  std::size_t removed = 0;
  for (const auto id : job_ids) {
    std::error_code ec;
    if (std::filesystem::remove(export_path(dir, id), ec)) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace dsr
