#pragma once
// A private scratch directory the process creates for itself (docs/contract.md §5): mode 0700, a
// fresh name (mkdtemp) under $RUNTIME_DIRECTORY when systemd provides one, else under the system
// temp directory, which is never changed itself. Removed with its contents when the object goes.

#include "dsr/common/error.hpp"

#include <filesystem>
#include <string_view>

namespace dsr {

class scratch_dir {
 public:
  // `prefix` names the directory ("dsr-connector-check-XXXXXX"). Fails (errc::io_error) naming
  // the parent directory that could not take it.
  static result<scratch_dir> create(std::string_view prefix);

  scratch_dir(scratch_dir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  scratch_dir& operator=(scratch_dir&&) = delete;
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir();

  const std::filesystem::path& path() const { return path_; }

 private:
  explicit scratch_dir(std::filesystem::path p) : path_(std::move(p)) {}
  std::filesystem::path path_;
};

}  // namespace dsr
