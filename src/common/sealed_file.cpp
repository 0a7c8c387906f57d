#include "dsr/common/sealed_file.hpp"

#include "dsr/common/crypto.hpp"

namespace dsr::sealed_file {
namespace {

std::string aad(std::string_view file_id, std::uint64_t index, bool last) {
  std::string out(file_id);
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((index >> shift) & 0xff));
  }
  out.push_back(last ? '\1' : '\0');
  return out;
}

}  // namespace

std::string seal_chunk(std::string_view key, std::string_view file_id, std::uint64_t index,
                       bool last, std::string_view plain) {
  return crypto::seal(key, plain, aad(file_id, index, last));
}

std::optional<std::string> open_chunk(std::string_view key, std::string_view file_id,
                                      std::uint64_t index, bool last, std::string_view sealed) {
  return crypto::open(key, sealed, aad(file_id, index, last));
}

writer::writer(std::string_view key, std::string_view file_id,
               std::function<bool(std::string_view)> put)
    : key_(key), file_id_(file_id), put_(std::move(put)) {}

void writer::put(std::string_view sealed) {
  if (!failed_ && !put_(sealed)) {
    failed_ = true;
  }
}

bool writer::write(std::string_view plain) {
  buffer_.append(plain);
  if (buffer_.size() <= chunk_plain) {
    return !failed_;
  }
  std::size_t at = 0;
  while (buffer_.size() - at > chunk_plain) {
    put(seal_chunk(key_, file_id_, index_++, false,
                   std::string_view(buffer_).substr(at, chunk_plain)));
    at += chunk_plain;
  }
  buffer_.erase(0, at);
  return !failed_;
}

bool writer::finish() {
  // A plaintext that fills its last chunk exactly is followed by an empty last chunk: a sealed
  // file's last chunk is always short, which is how its size tells where it ends.
  if (buffer_.size() == chunk_plain) {
    put(seal_chunk(key_, file_id_, index_++, false, buffer_));
    buffer_.clear();
  }
  put(seal_chunk(key_, file_id_, index_++, true, buffer_));
  buffer_.clear();
  return !failed_;
}

std::optional<std::uint64_t> plain_size(std::uint64_t file_size) {
  constexpr std::uint64_t full = chunk_plain + chunk_overhead;
  const std::uint64_t full_chunks = file_size / full;
  const std::uint64_t rest = file_size % full;
  // The last chunk is never full-sized... unless the plaintext is a multiple of the chunk size,
  // in which case an empty last chunk follows. So `rest` is the (short) last chunk.
  if (rest < chunk_overhead) {
    return std::nullopt;
  }
  return full_chunks * chunk_plain + (rest - chunk_overhead);
}

}  // namespace dsr::sealed_file
