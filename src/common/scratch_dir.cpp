#include "dsr/common/scratch_dir.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace dsr {

result<scratch_dir> scratch_dir::create(std::string_view prefix) {
  std::filesystem::path parent;
  if (const char* runtime = std::getenv("RUNTIME_DIRECTORY"); runtime != nullptr && *runtime) {
    // systemd may list several, separated by ':'; the first is ours.
    const std::string first(runtime, std::strcspn(runtime, ":"));
    parent = first;
  } else {
    std::error_code ec;
    parent = std::filesystem::temp_directory_path(ec);
    if (ec) {
      parent = "/tmp";
    }
  }
  std::string pattern = (parent / fmt::format("{}-XXXXXX", prefix)).string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  // mkdtemp creates the directory with mode 0700 under a name nobody else has.
  if (::mkdtemp(buffer.data()) == nullptr) {
    return make_failure(errc::io_error,
                        fmt::format("cannot create a private scratch directory in {}: {}",
                                    parent.string(), std::strerror(errno)));
  }
  return scratch_dir(std::filesystem::path(buffer.data()));
}

scratch_dir::~scratch_dir() {
  if (!path_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

}  // namespace dsr
