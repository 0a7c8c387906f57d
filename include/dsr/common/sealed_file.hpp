#pragma once
// The on-disk format of encrypted exports: the plaintext cut into 64 KiB chunks, each sealed with
// AES-256-GCM under store_key with a fresh nonce (nonce || ciphertext || tag). The file's id (the
// request id), the chunk's index and whether it is the last are authenticated, so chunks cannot
// be moved between files, reordered, dropped or the file cut short without opening failing.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace dsr::sealed_file {

inline constexpr std::size_t chunk_plain = 64 * 1024;
inline constexpr std::size_t chunk_overhead = 12 + 16;

std::string seal_chunk(std::string_view key, std::string_view file_id, std::uint64_t index,
                       bool last, std::string_view plain);
std::optional<std::string> open_chunk(std::string_view key, std::string_view file_id,
                                      std::uint64_t index, bool last, std::string_view sealed);

// Seals a plaintext given piece by piece: a chunk goes out (through `put`) once more bytes follow
// it, since only then is it known not to be the last; finish() writes the last one.
class writer {
 public:
  // `put` writes sealed bytes; false when it could not (the writer then stays failed).
  writer(std::string_view key, std::string_view file_id, std::function<bool(std::string_view)> put);
  bool write(std::string_view plain);
  // Seals what is left as the last chunk. Call once.
  bool finish();

 private:
  void put(std::string_view sealed);

  std::string key_;
  std::string file_id_;
  std::function<bool(std::string_view)> put_;
  std::string buffer_;
  std::uint64_t index_ = 0;
  bool failed_ = false;
};

// The plaintext size of a sealed file of `file_size` bytes (every chunk but the last is full);
// nullopt when no sealed file has that size.
std::optional<std::uint64_t> plain_size(std::uint64_t file_size);

}  // namespace dsr::sealed_file
