#include "dsr/mineos/signature.hpp"

#include "dsr/common/crypto.hpp"

namespace dsr::mineos {

std::string sign(std::string_view body, std::string_view key) {
  return crypto::base64_encode(crypto::hmac_sha256(key, body));
}

bool verify(std::string_view body, std::string_view header, std::span<const secret> keys) {
  while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) {
    header.remove_prefix(1);
  }
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) {
    header.remove_suffix(1);
  }
  bool ok = false;
  for (const auto& key : keys) {
    ok |= crypto::constant_time_equal(sign(body, key.reveal()), header);
  }
  return ok && !header.empty();
}

}  // namespace dsr::mineos
