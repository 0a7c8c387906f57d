#pragma once
// GET /v1/files/{request.id}?expires=<unix>&sig=<hex> on `listen` (docs/contract.md §6): MineOS
// downloads a large copy's export through the link the report carried. The signature is checked
// first (403), then the expiry (410); a valid link streams the decrypted export in constant memory,
// any number of times until it expires. An expired link whose recorded expiry has passed deletes
// the export it names (the hourly purge does the same for links nobody asks for again).
//
// Thread-safe; references must outlive the object.

#include "dsr/common/clock.hpp"
#include "dsr/http/router.hpp"
#include "dsr/jobs/async_store.hpp"
#include "dsr/mineos/file_links.hpp"

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace dsr::mineos {

class file_downloads {
 public:
  // `export_keys`: the key exports are sealed with, then older ones to try (store_keys.hpp);
  // empty: in the clear.
  file_downloads(async_store& store, std::shared_ptr<const file_links> links,
                 std::filesystem::path export_dir, std::vector<std::string> export_keys,
                 std::shared_ptr<clock> clock, bool exports_in_store = false);

  // GET /v1/files/{id} on `listen`.
  void add_routes(http::router& r);
  void handle(const http::request& req, const std::string& request_id, http::responder done);

 private:
  boost::asio::awaitable<void> serve(std::string request_id, file_links::verdict verdict,
                                     time_point now, std::string remote, http::responder done);

  async_store& store_;
  std::shared_ptr<const file_links> links_;
  std::filesystem::path export_dir_;
  std::vector<std::string> export_keys_;
  std::shared_ptr<clock> clock_;
  bool exports_in_store_;  // kept in the store (PostgreSQL), not in export_dir
};

}  // namespace dsr::mineos
