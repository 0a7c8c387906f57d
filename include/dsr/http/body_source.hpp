#pragma once
// A message body read in pieces instead of held in memory: an export of a million events is sent
// to MineOS (and to an operator) from its file, a few kilobytes at a time.

#include "dsr/common/error.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace dsr::http {

// Not thread safe: one reader at a time (the connection writing it).
class body_source {
 public:
  virtual ~body_source() = default;
  // The body's length in bytes (sent as Content-Length).
  virtual std::uint64_t size() const = 0;
  // Reads the next bytes into `out`; 0 at the end. Fails (errc::io_error) when the bytes cannot
  // be read, and then the message is abandoned (the connection closed).
  virtual result<std::size_t> read(std::span<char> out) = 0;
  // Starts again from the first byte (a request re-sent on a fresh connection).
  virtual result<void> rewind() = 0;
};

// `prefix`, the contents of `file`, then `suffix`. Fails (errc::io_error, naming the file) when the
// file cannot be opened; the file must not change while the source is in use.
result<std::shared_ptr<body_source>> file_source(const std::filesystem::path& file,
                                                 std::string prefix = {}, std::string suffix = {});

// Like file_source for a file written sealed (sealed_file.hpp) with `key` and `file_id`: the
// body is the plaintext, opened chunk by chunk as it is sent. Fails (errc::io_error) when the file
// cannot be opened or has no sealed file's size; a chunk that does not open (another key, an
// altered file) fails the read.
result<std::shared_ptr<body_source>> sealed_file_source(const std::filesystem::path& file,
                                                        std::string key, std::string file_id,
                                                        std::string prefix = {},
                                                        std::string suffix = {});
// The same with several candidate keys, the current one first: the file is read with the first
// key its first chunk opens with (an export sealed with store_key itself by an earlier version
// stays readable). None opens: the first key is used, and reading fails. No key (an empty list,
// or an empty first key: a store kept in the clear): file_source.
result<std::shared_ptr<body_source>> sealed_file_source(const std::filesystem::path& file,
                                                        std::vector<std::string> keys,
                                                        std::string file_id,
                                                        std::string prefix = {},
                                                        std::string suffix = {});

}  // namespace dsr::http
