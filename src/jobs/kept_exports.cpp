#include "dsr/jobs/kept_exports.hpp"

#include "dsr/common/crypto.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace dsr {

export_pieces::export_pieces(const std::filesystem::path& file)
    : file_(file), in_(file, std::ios::binary) {}

result<std::string> export_pieces::next() {
  const auto unreadable = [this] {
    return make_failure(errc::io_error, fmt::format("cannot read the export {}: {}", file_.string(),
                                                    std::strerror(errno)));
  };
  if (!in_.is_open() || in_.bad()) {
    return unreadable();
  }
  if (in_.eof()) {
    return std::string();
  }
  std::string piece(export_piece_bytes, '\0');
  in_.read(piece.data(), static_cast<std::streamsize>(piece.size()));
  if (in_.bad()) {
    return unreadable();
  }
  piece.resize(static_cast<std::size_t>(in_.gcount()));
  return piece;
}

boost::asio::awaitable<result<void>> keep_export(async_store& store, std::filesystem::path file,
                                                 std::int64_t job_id, std::string owner,
                                                 time_point now) {
  export_pieces in(file);
  std::uint32_t pieces = 0;
  for (;;) {
    auto piece = in.next();
    if (!piece) {
      co_return piece.error();
    }
    if (piece->empty()) {
      break;
    }
    if (auto r = co_await store.put_export_chunk(job_id, owner, pieces, std::move(*piece)); !r) {
      co_return r.error();
    }
    ++pieces;
  }
  co_return co_await store.finish_export(job_id, owner, pieces, now);
}

boost::asio::awaitable<result<std::filesystem::path>> fetch_export(async_store& store,
                                                                   std::filesystem::path dir,
                                                                   std::int64_t job_id) {
  auto pieces = co_await store.export_chunks(job_id);
  if (!pieces) {
    co_return pieces.error();
  }
  if (!*pieces) {
    co_return make_failure(errc::not_found,
                           fmt::format("the store keeps no export for job {}", job_id));
  }
  const auto path =
      dir / fmt::format("export-one-{}.part", crypto::to_hex(crypto::random_bytes(8)));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    co_return make_failure(
        errc::io_error, fmt::format("cannot create {}: {}", path.string(), std::strerror(errno)));
  }
  const auto fail = [&](failure f) {
    ::close(fd);
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return f;
  };
  for (std::uint32_t i = 0; i < **pieces; ++i) {
    auto bytes = co_await store.export_chunk(job_id, i);
    if (!bytes) {
      co_return fail(bytes.error());
    }
    std::size_t written = 0;
    while (written < bytes->size()) {
      const auto n = ::write(fd, bytes->data() + written, bytes->size() - written);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        co_return fail(
            make_failure(errc::io_error,
                         fmt::format("cannot write {}: {}", path.string(), std::strerror(errno))));
      }
      written += static_cast<std::size_t>(n);
    }
  }
  ::close(fd);
  co_return path;
}

boost::asio::awaitable<result<export_file>> locate_export(async_store& store,
                                                          std::filesystem::path dir,
                                                          std::int64_t job_id, bool in_store) {
  if (!in_store) {
    co_return export_file{export_path(dir, job_id), false};
  }
  auto fetched = co_await fetch_export(store, dir, job_id);
  if (!fetched) {
    if (fetched.error().is(errc::not_found)) {
      co_return export_file{export_path(dir, job_id), false};
    }
    co_return fetched.error();
  }
  co_return export_file{std::move(*fetched), true};
}

void drop_scratch(const export_file& f) {
  if (f.scratch) {
    std::error_code ec;
    std::filesystem::remove(f.path, ec);
  }
}

}  // namespace dsr
