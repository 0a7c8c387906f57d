#include "dsr/common/store_keys.hpp"

#include "dsr/common/crypto.hpp"

namespace dsr {

store_keys derive_store_keys(std::string_view store_key) {
  if (store_key.empty()) {
    return {};
  }
  return store_keys{crypto::hkdf_sha256(store_key, "", "dsr-connector subject seal v1"),
                    crypto::hkdf_sha256(store_key, "", "dsr-connector subject hash v1"),
                    crypto::hkdf_sha256(store_key, "", "dsr-connector export seal v1"),
                    std::string(store_key)};
}

}  // namespace dsr
