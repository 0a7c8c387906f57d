#include "dsr/http/body_source.hpp"

#include "dsr/common/sealed_file.hpp"

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

// The plaintext of a sealed file, one chunk in memory at a time.
class sealed_source final : public body_source {
 public:
  sealed_source(int fd, std::uint64_t file_size, std::uint64_t plain_size,
                std::filesystem::path path, std::string key, std::string file_id,
                std::string prefix, std::string suffix)
      : fd_(fd),
        file_size_(file_size),
        plain_size_(plain_size),
        path_(std::move(path)),
        key_(std::move(key)),
        file_id_(std::move(file_id)),
        prefix_(std::move(prefix)),
        suffix_(std::move(suffix)) {}
  sealed_source(const sealed_source&) = delete;
  sealed_source& operator=(const sealed_source&) = delete;
  ~sealed_source() override { ::close(fd_); }

  std::uint64_t size() const override { return prefix_.size() + plain_size_ + suffix_.size(); }

  result<std::size_t> read(std::span<char> out) override {
    if (out.empty()) {
      return std::size_t{0};
    }
    if (offset_ < prefix_.size()) {
      return copy(prefix_, offset_, out);
    }
    if (offset_ < prefix_.size() + plain_size_) {
      if (chunk_pos_ == chunk_.size()) {
        if (auto r = next_chunk(); !r) {
          return r.error();
        }
      }
      const auto n = std::min(out.size(), chunk_.size() - chunk_pos_);
      std::memcpy(out.data(), chunk_.data() + chunk_pos_, n);
      chunk_pos_ += n;
      offset_ += n;
      return n;
    }
    const std::uint64_t in_suffix = offset_ - prefix_.size() - plain_size_;
    if (in_suffix < suffix_.size()) {
      return copy(suffix_, in_suffix, out);
    }
    return std::size_t{0};
  }

  result<void> rewind() override {
    offset_ = 0;
    file_pos_ = 0;
    index_ = 0;
    chunk_.clear();
    chunk_pos_ = 0;
    return {};
  }

 private:
  std::size_t copy(const std::string& text, std::uint64_t from, std::span<char> out) {
    const auto n = std::min<std::size_t>(out.size(), text.size() - from);
    std::memcpy(out.data(), text.data() + from, n);
    offset_ += n;
    return n;
  }

  result<void> next_chunk() {
    const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(
        sealed_file::chunk_plain + sealed_file::chunk_overhead, file_size_ - file_pos_));
    std::string sealed(len, '\0');
    std::size_t got = 0;
    while (got < len) {
      const auto n =
          ::pread(fd_, sealed.data() + got, len - got, static_cast<off_t>(file_pos_ + got));
      if (n <= 0) {
        return make_failure(errc::io_error, fmt::format("cannot read {}", path_.string()));
      }
      got += static_cast<std::size_t>(n);
    }
    const bool last = file_pos_ + len == file_size_;
    auto plain = sealed_file::open_chunk(key_, file_id_, index_, last, sealed);
    if (!plain) {
      return make_failure(errc::io_error,
                          fmt::format("{} does not decrypt with store_key (another key, or the "
                                      "file was altered)",
                                      path_.string()));
    }
    file_pos_ += len;
    ++index_;
    chunk_ = std::move(*plain);
    chunk_pos_ = 0;
    return {};
  }

  int fd_;
  std::uint64_t file_size_;
  std::uint64_t plain_size_;
  std::filesystem::path path_;
  std::string key_;
  std::string file_id_;
  std::string prefix_;
  std::string suffix_;
  std::uint64_t offset_ = 0;
  std::uint64_t file_pos_ = 0;
  std::uint64_t index_ = 0;
  std::string chunk_;
  std::size_t chunk_pos_ = 0;
};

}  // namespace

result<std::shared_ptr<body_source>> sealed_file_source(const std::filesystem::path& file,
                                                        std::string key, std::string file_id,
                                                        std::string prefix, std::string suffix) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return make_failure(errc::io_error,
                        fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return make_failure(errc::io_error, fmt::format("cannot read {}", file.string()));
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  const auto plain = sealed_file::plain_size(file_size);
  if (!plain) {
    ::close(fd);
    return make_failure(errc::io_error,
                        fmt::format("{} is not a sealed export (cut short?)", file.string()));
  }
  return std::shared_ptr<body_source>(
      std::make_shared<sealed_source>(fd, file_size, *plain, file, std::move(key),
                                      std::move(file_id), std::move(prefix), std::move(suffix)));
}

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
