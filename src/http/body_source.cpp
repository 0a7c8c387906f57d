#include "dsr/http/body_source.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace dsr::http {
namespace {

class file_source_impl final : public body_source {
 public:
  file_source_impl(int fd, std::uint64_t file_size, std::filesystem::path path, std::string prefix,
                   std::string suffix)
      : fd_(fd),
        file_size_(file_size),
        path_(std::move(path)),
        prefix_(std::move(prefix)),
        suffix_(std::move(suffix)) {}
  file_source_impl(const file_source_impl&) = delete;
  file_source_impl& operator=(const file_source_impl&) = delete;
  ~file_source_impl() override { ::close(fd_); }

  std::uint64_t size() const override { return prefix_.size() + file_size_ + suffix_.size(); }

  result<std::size_t> read(std::span<char> out) override {
    if (out.empty()) {
      return std::size_t{0};
    }
    if (offset_ < prefix_.size()) {
      return copy_text(prefix_, offset_, out);
    }
    const std::uint64_t in_file = offset_ - prefix_.size();
    if (in_file < file_size_) {
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), file_size_ - in_file));
      const auto n = ::pread(fd_, out.data(), want, static_cast<off_t>(in_file));
      if (n < 0) {
        return make_failure(errc::io_error, fmt::format("cannot read {}: {}", path_.string(),
                                                        std::strerror(errno)));
      }
      if (n == 0) {
        return make_failure(errc::io_error, fmt::format("{} became shorter while it was being sent",
                                                        path_.string()));
      }
      offset_ += static_cast<std::uint64_t>(n);
      return static_cast<std::size_t>(n);
    }
    const std::uint64_t in_suffix = offset_ - prefix_.size() - file_size_;
    if (in_suffix < suffix_.size()) {
      return copy_text(suffix_, in_suffix, out);
    }
    return std::size_t{0};
  }

  result<void> rewind() override {
    offset_ = 0;
    return {};
  }

 private:
  std::size_t copy_text(const std::string& text, std::uint64_t from, std::span<char> out) {
    const auto n = std::min<std::size_t>(out.size(), text.size() - from);
    std::memcpy(out.data(), text.data() + from, n);
    offset_ += n;
    return n;
  }

  int fd_;
  std::uint64_t file_size_;
  std::filesystem::path path_;
  std::string prefix_;
  std::string suffix_;
  std::uint64_t offset_ = 0;
};

}  // namespace

result<std::shared_ptr<body_source>> file_source(const std::filesystem::path& file,
                                                 std::string prefix, std::string suffix) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_failure(errc::io_error,
                        fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_failure(errc::io_error,
                        fmt::format("cannot read {}: {}", file.string(), std::strerror(err)));
  }
  return std::shared_ptr<body_source>(std::make_shared<file_source_impl>(
      fd, static_cast<std::uint64_t>(st.st_size), file, std::move(prefix), std::move(suffix)));
}

}  // namespace dsr::http
