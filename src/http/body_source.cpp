#include "dsr/http/body_source.hpp"

#include "dsr/common/sealed_file.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace dsr::http {
namespace {

// A prefix, a middle read from an open file, then a suffix. Owns the file descriptor.
class framed_source : public body_source {
 public:
  framed_source(int fd, std::filesystem::path path, std::uint64_t middle_size, std::string prefix,
                std::string suffix)
      : fd_(fd),
        path_(std::move(path)),
        middle_size_(middle_size),
        prefix_(std::move(prefix)),
        suffix_(std::move(suffix)) {}
  framed_source(const framed_source&) = delete;
  framed_source& operator=(const framed_source&) = delete;
  ~framed_source() override { ::close(fd_); }

  std::uint64_t size() const override { return prefix_.size() + middle_size_ + suffix_.size(); }

  result<std::size_t> read(std::span<char> out) override {
    if (out.empty()) {
      return std::size_t{0};
    }
    if (offset_ < prefix_.size()) {
      return copy(prefix_, offset_, out);
    }
    const std::uint64_t in_middle = offset_ - prefix_.size();
    if (in_middle < middle_size_) {
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), middle_size_ - in_middle));
      auto n = read_middle(out.first(want), in_middle);
      if (n) {
        offset_ += *n;
      }
      return n;
    }
    const std::uint64_t in_suffix = in_middle - middle_size_;
    if (in_suffix < suffix_.size()) {
      return copy(suffix_, in_suffix, out);
    }
    return std::size_t{0};
  }

  result<void> rewind() override {
    offset_ = 0;
    restart_middle();
    return {};
  }

 protected:
  // Reads the middle's next bytes (at most out.size(), at least one); `at` is the offset in it.
  virtual result<std::size_t> read_middle(std::span<char> out, std::uint64_t at) = 0;
  virtual void restart_middle() {}

  // Reads exactly out.size() bytes of the file at `at`.
  result<void> read_file(std::span<char> out, std::uint64_t at) const {
    std::size_t got = 0;
    while (got < out.size()) {
      const auto n = ::pread(fd_, out.data() + got, out.size() - got, static_cast<off_t>(at + got));
      if (n < 0) {
        return make_failure(errc::io_error, fmt::format("cannot read {}: {}", path_.string(),
                                                        std::strerror(errno)));
      }
      if (n == 0) {
        return make_failure(errc::io_error, fmt::format("{} became shorter while it was being sent",
                                                        path_.string()));
      }
      got += static_cast<std::size_t>(n);
    }
    return {};
  }

  const std::filesystem::path& path() const { return path_; }

 private:
  std::size_t copy(const std::string& text, std::uint64_t from, std::span<char> out) {
    const auto n = std::min<std::size_t>(out.size(), text.size() - from);
    std::memcpy(out.data(), text.data() + from, n);
    offset_ += n;
    return n;
  }

  int fd_;
  std::filesystem::path path_;
  std::uint64_t middle_size_;
  std::string prefix_;
  std::string suffix_;
  std::uint64_t offset_ = 0;
};

// The file as it is.
class plain_source final : public framed_source {
 public:
  using framed_source::framed_source;

 private:
  result<std::size_t> read_middle(std::span<char> out, std::uint64_t at) override {
    if (auto r = read_file(out, at); !r) {
      return r.error();
    }
    return out.size();
  }
};

// The plaintext of a sealed file, one chunk in memory at a time (read in order).
class sealed_source final : public framed_source {
 public:
  sealed_source(int fd, std::filesystem::path path, std::uint64_t file_size,
                std::uint64_t plain_size, std::string key, std::string file_id, std::string prefix,
                std::string suffix)
      : framed_source(fd, std::move(path), plain_size, std::move(prefix), std::move(suffix)),
        file_size_(file_size),
        key_(std::move(key)),
        file_id_(std::move(file_id)) {}

 private:
  result<std::size_t> read_middle(std::span<char> out, std::uint64_t) override {
    if (chunk_pos_ == chunk_.size()) {
      if (auto r = next_chunk(); !r) {
        return r.error();
      }
    }
    const auto n = std::min(out.size(), chunk_.size() - chunk_pos_);
    std::memcpy(out.data(), chunk_.data() + chunk_pos_, n);
    chunk_pos_ += n;
    return n;
  }

  void restart_middle() override {
    file_pos_ = 0;
    index_ = 0;
    chunk_.clear();
    chunk_pos_ = 0;
  }

  result<void> next_chunk() {
    const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(
        sealed_file::chunk_plain + sealed_file::chunk_overhead, file_size_ - file_pos_));
    std::string sealed(len, '\0');
    if (auto r = read_file(sealed, file_pos_); !r) {
      return r.error();
    }
    const bool last = file_pos_ + len == file_size_;
    auto plain = sealed_file::open_chunk(key_, file_id_, index_, last, sealed);
    if (!plain) {
      return make_failure(errc::io_error,
                          fmt::format("{} does not decrypt with store_key (another key, or the "
                                      "file was altered)",
                                      path().string()));
    }
    file_pos_ += len;
    ++index_;
    chunk_ = std::move(*plain);
    chunk_pos_ = 0;
    return {};
  }

  std::uint64_t file_size_;
  std::string key_;
  std::string file_id_;
  std::uint64_t file_pos_ = 0;
  std::uint64_t index_ = 0;
  std::string chunk_;
  std::size_t chunk_pos_ = 0;
};

// Opens `file` for reading and returns its descriptor and size.
result<std::pair<int, std::uint64_t>> open_for_reading(const std::filesystem::path& file) {
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
  return std::pair<int, std::uint64_t>{fd, static_cast<std::uint64_t>(st.st_size)};
}

}  // namespace

result<std::shared_ptr<body_source>> sealed_file_source(const std::filesystem::path& file,
                                                        std::string key, std::string file_id,
                                                        std::string prefix, std::string suffix) {
  return sealed_file_source(file, std::vector<std::string>{std::move(key)}, std::move(file_id),
                            std::move(prefix), std::move(suffix));
}

result<std::shared_ptr<body_source>> sealed_file_source(const std::filesystem::path& file,
                                                        std::vector<std::string> keys,
                                                        std::string file_id, std::string prefix,
                                                        std::string suffix) {
  if (keys.empty() || keys.front().empty()) {
    return file_source(file, std::move(prefix), std::move(suffix));
  }
  auto opened = open_for_reading(file);
  if (!opened) {
    return opened.error();
  }
  const auto [fd, file_size] = *opened;
  const auto plain = sealed_file::plain_size(file_size);
  if (!plain) {
    ::close(fd);
    return make_failure(errc::io_error,
                        fmt::format("{} is not a sealed export (cut short?)", file.string()));
  }
  std::string key = keys.front();
  if (keys.size() > 1) {
    // The key is the one its first chunk opens with (a file sealed by an earlier version).
    constexpr std::uint64_t full = sealed_file::chunk_plain + sealed_file::chunk_overhead;
    std::string first(static_cast<std::size_t>(std::min(file_size, full)), '\0');
    const auto n = ::pread(fd, first.data(), first.size(), 0);
    if (n == static_cast<ssize_t>(first.size())) {
      for (const auto& k : keys) {
        if (!k.empty() && sealed_file::open_chunk(k, file_id, 0, file_size <= full, first)) {
          key = k;
          break;
        }
      }
    }
  }
  return std::shared_ptr<body_source>(
      std::make_shared<sealed_source>(fd, file, file_size, *plain, std::move(key),
                                      std::move(file_id), std::move(prefix), std::move(suffix)));
}

result<std::shared_ptr<body_source>> file_source(const std::filesystem::path& file,
                                                 std::string prefix, std::string suffix) {
  auto opened = open_for_reading(file);
  if (!opened) {
    return opened.error();
  }
  const auto [fd, file_size] = *opened;
  return std::shared_ptr<body_source>(
      std::make_shared<plain_source>(fd, file, file_size, std::move(prefix), std::move(suffix)));
}

}  // namespace dsr::http
