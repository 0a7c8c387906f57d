#pragma once
// Small cryptographic helpers over OpenSSL's EVP interface.

#include <string>
#include <string_view>

namespace dsr::crypto {

// HMAC-SHA256 of `data` keyed with `key`: the 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);

// Standard base64 alphabet with padding.
std::string base64_encode(std::string_view bytes);

// Compares two strings in time that depends only on their lengths' digests, never on where they
// differ: both sides are hashed with SHA-256 and the digests compared with CRYPTO_memcmp. Use it
// for every comparison of a MAC, token or password.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace dsr::crypto
