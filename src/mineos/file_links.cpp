#include "dsr/mineos/file_links.hpp"

#include "dsr/common/crypto.hpp"

#include <fmt/format.h>

#include <charconv>

namespace dsr::mineos {
namespace {

std::int64_t unix_seconds(time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

file_links::file_links(std::string_view store_key, std::string public_url)
    : key_(crypto::hkdf_sha256(store_key, "", "dsr-connector file links v1")),
      public_url_(std::move(public_url)) {}

std::string file_links::signature(std::string_view request_id, std::string_view expires) const {
  // A separator that neither part can hold keeps ("a", "12") and ("a1", "2") apart.
  return crypto::to_hex(crypto::hmac_sha256(key_, fmt::format("{}\n{}", request_id, expires)));
}

std::string file_links::target(std::string_view request_id, time_point expires) const {
  const auto e = std::to_string(unix_seconds(expires));
  return fmt::format("/v1/files/{}?expires={}&sig={}", request_id, e, signature(request_id, e));
}

std::string file_links::url(std::string_view request_id, time_point expires) const {
  return public_url_ + target(request_id, expires);
}

file_links::verdict file_links::check(std::string_view request_id, std::string_view expires,
                                      std::string_view sig, time_point now) const {
  if (!crypto::constant_time_equal(sig, signature(request_id, expires))) {
    return verdict::bad_signature;
  }
  std::int64_t at = 0;
  const auto [p, ec] = std::from_chars(expires.data(), expires.data() + expires.size(), at);
  if (ec != std::errc{} || p != expires.data() + expires.size()) {
    return verdict::bad_signature;  // signed, so never happens; refuse all the same
  }
  return unix_seconds(now) < at ? verdict::ok : verdict::expired;
}

}  // namespace dsr::mineos
