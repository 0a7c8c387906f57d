#pragma once
// A copy's export kept in the store instead of on the daemon's disk (PostgreSQL, docs/contract.md
// §8): any daemon can then deliver it. The export stays sealed as the copy flow wrote it
// (common/sealed_file.hpp): the store holds the sealed file's bytes, in pieces, and a daemon
// that delivers it writes them back into a scratch file of its own, reads it through
// sealed_file_source and removes it. Memory stays at one piece whatever the export's size.

#include "dsr/common/clock.hpp"
#include "dsr/common/error.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/jobs/exports.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace dsr {

// The size of a piece of an export in the store.
inline constexpr std::size_t export_piece_bytes = 1 << 20;

// A sealed export file read a piece (export_piece_bytes) at a time, as the store keeps it.
class export_pieces {
 public:
  explicit export_pieces(const std::filesystem::path& file);
  // The next piece; empty once the file is read whole. errc::io_error when it cannot be read.
  result<std::string> next();

 private:
  std::filesystem::path file_;
  std::ifstream in_;
};

// Puts the sealed file `file` into the store as job_id's export (piece by piece, then finished:
// readable only once whole), fenced by the run's lease `owner` (errc::lease_lost once another
// daemon took the job over). The file is left in place.
boost::asio::awaitable<result<void>> keep_export(async_store& store, std::filesystem::path file,
                                                 std::int64_t job_id, std::string owner,
                                                 time_point now);

// Writes job_id's kept export into a new scratch file in `dir` ("export-one-<16 hex>.part",
// mode 0600: a name the start-up cleanup removes) and returns its path; the caller opens it and
// removes it. errc::not_found when the store keeps no export for the job.
boost::asio::awaitable<result<std::filesystem::path>> fetch_export(async_store& store,
                                                                   std::filesystem::path dir,
                                                                   std::int64_t job_id);

// Where a delivery reads job_id's export from: the file export_path(dir, job_id) when exports are
// kept on disk, or when the store keeps none for the job (a lost export reads as a missing file);
// a scratch copy fetched from the store when `in_store`. Remove a scratch copy once it is opened
// (drop_scratch): the open descriptor keeps reading it. Fails only when the store cannot be read.
struct export_file {
  std::filesystem::path path;
  bool scratch = false;
};
boost::asio::awaitable<result<export_file>> locate_export(async_store& store,
                                                          std::filesystem::path dir,
                                                          std::int64_t job_id, bool in_store);
void drop_scratch(const export_file& f);

}  // namespace dsr
