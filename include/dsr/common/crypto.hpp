#pragma once
// Small cryptographic helpers over OpenSSL's EVP interface.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace dsr::crypto {

// HMAC-SHA256 of `data` keyed with `key`: the 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);

// HKDF-SHA256 (RFC 5869): `length` bytes derived from `key` for the purpose named by `info`, so
// that one secret (store_key) yields independent keys. Throws std::runtime_error only when OpenSSL
// fails (a bug or a broken library).
std::string hkdf_sha256(std::string_view key, std::string_view salt, std::string_view info,
                        std::size_t length = 32);

// Standard base64 alphabet with padding.
std::string base64_encode(std::string_view bytes);

// Compares two strings in time that depends only on their lengths' digests, never on where they
// differ: both sides are hashed with SHA-256 and the digests compared with CRYPTO_memcmp. Use it
// for every comparison of a MAC, token or password.
bool constant_time_equal(std::string_view a, std::string_view b);

// AES-256-GCM with a fresh random 96-bit nonce: returns nonce || ciphertext || 16-byte tag.
// `key` must be 32 bytes; `aad` is authenticated, not stored (bind the value to its record).
std::string seal(std::string_view key, std::string_view plaintext, std::string_view aad = {});

// The plaintext of `seal`ed bytes; nullopt when they were not sealed with this key and `aad`, or
// were altered.
std::optional<std::string> open(std::string_view key, std::string_view sealed,
                                std::string_view aad = {});

// `n` bytes from OpenSSL's CSPRNG (session ids, CSRF tokens).
std::string random_bytes(std::size_t n);

// "0a1b..." → bytes; nullopt when not an even number of hex digits.
std::optional<std::string> from_hex(std::string_view hex);
std::string to_hex(std::string_view bytes);

}  // namespace dsr::crypto
