#pragma once
// Signed, expiring links to a copy's export (docs/contract.md §6): a copy larger than
// [mineos] inline_data_max_bytes is reported with `files` holding
//   <public_url>/v1/files/<request.id>?expires=<unix seconds>&sig=<hex>
// and GET /v1/files/... on `listen` streams the export while the link is valid. The signature is
// HMAC-SHA256 over the request id and the expiry, under a key of its own derived from store_key
// with HKDF (so it proves nothing else and reveals nothing of store_key), compared in constant
// time. The link carries no personal data: only the request id MineOS already has.
//
// Thread safety: immutable after construction; every method is const.

#include "dsr/common/clock.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace dsr::mineos {

class file_links {
 public:
  // `store_key`: the 32-byte store key; `public_url`: how MineOS reaches this daemon, without a
  // trailing slash.
  file_links(std::string_view store_key, std::string public_url);

  // The link to `request_id`'s export, valid until `expires` (whole seconds).
  std::string url(std::string_view request_id, time_point expires) const;
  // The path and query alone (/v1/files/<id>?expires=..&sig=..).
  std::string target(std::string_view request_id, time_point expires) const;

  enum class verdict {
    ok,
    bad_signature,  // 403: not a link this daemon made (checked first)
    expired,        // 410: a link this daemon made, past its expiry
  };
  // `expires` and `sig` as the query carries them.
  verdict check(std::string_view request_id, std::string_view expires, std::string_view sig,
                time_point now) const;

 private:
  std::string signature(std::string_view request_id, std::string_view expires) const;

  std::string key_;
  std::string public_url_;
};

}  // namespace dsr::mineos
