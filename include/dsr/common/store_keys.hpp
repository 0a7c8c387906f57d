#pragma once
// The keys derived from store_key (32 random bytes) with HKDF-SHA256, one per purpose, so that no
// two uses share a key: what one reveals (a hash, a link's signature) says nothing about another,
// and store_key itself is never used directly on new data. Data written by earlier versions with
// store_key itself (`legacy`) stays readable: readers try the derived key, then the legacy one.

#include <string>
#include <string_view>
#include <vector>

namespace dsr {

struct store_keys {
  std::string subject_seal;  // AES-256-GCM of the subject's ID in the store
  std::string subject_hash;  // HMAC-SHA256 that replaces a finished job's ID
  std::string export_seal;   // the sealed export files (and downloads being scanned)
  std::string legacy;        // store_key itself: what versions before 0.2 sealed and hashed with

  // The keys a kept export may be sealed with, the current one first (http::sealed_file_source).
  std::vector<std::string> export_keys() const { return {export_seal, legacy}; }
};

// Empty `store_key` (tests that keep data in the clear): every key empty.
store_keys derive_store_keys(std::string_view store_key);

}  // namespace dsr
