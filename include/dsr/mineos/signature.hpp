#pragma once
// The X-Mine-Signature scheme (docs/contract.md §4): base64 (standard alphabet, padded) of
// HMAC-SHA256 over the raw request body, keyed with mineos_webhook_secret. MineOS does not publish
// the algorithm; this module is the one place to change if it differs.

#include "dsr/credentials/secret.hpp"

#include <span>
#include <string>
#include <string_view>

namespace dsr::mineos {

inline constexpr std::string_view signature_header = "X-Mine-Signature";

// The header value MineOS would send for `body` under `key`.
std::string sign(std::string_view body, std::string_view key);

// True when `header` is the signature of `body` under any of `keys` (rotation). Each comparison is
// constant-time; all keys are tried whatever the outcome, so timing does not tell which matched.
bool verify(std::string_view body, std::string_view header, std::span<const secret> keys);

}  // namespace dsr::mineos
