#pragma once
// A fresh directory under $TMPDIR, removed with everything in it when the object goes away.

#include <filesystem>
#include <string_view>

namespace dsr::test {

class temp_dir {
 public:
  temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir();

  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/name with `mode`, returning the full path.
  std::filesystem::path write(std::string_view name, std::string_view content,
                              int mode = 0600) const;

 private:
  std::filesystem::path path_;
};

}  // namespace dsr::test
