#pragma once
// The nine named credential values of docs/contract.md §3.

#include <array>
#include <optional>
#include <string_view>

namespace dsr {

enum class credential {
  exponea_api_key,
  exponea_api_secret,
  exponea_project_token,
  exponea_api_token,
  mineos_webhook_secret,
  mineos_api_key,
  admin_token,
  store_key,
  store_password,  // PostgreSQL's; optional (peer, certificate or .pgpass auth need none)
};

inline constexpr std::array<credential, 9> all_credentials{
    credential::exponea_api_key,       credential::exponea_api_secret,
    credential::exponea_project_token, credential::exponea_api_token,
    credential::mineos_webhook_secret, credential::mineos_api_key,
    credential::admin_token,           credential::store_key,
    credential::store_password,
};

// The value's NAME as used in [credentials], $CREDENTIALS_DIRECTORY and the environment.
constexpr std::string_view name(credential c) {
  switch (c) {
    case credential::exponea_api_key:
      return "exponea_api_key";
    case credential::exponea_api_secret:
      return "exponea_api_secret";
    case credential::exponea_project_token:
      return "exponea_project_token";
    case credential::exponea_api_token:
      return "exponea_api_token";
    case credential::mineos_webhook_secret:
      return "mineos_webhook_secret";
    case credential::mineos_api_key:
      return "mineos_api_key";
    case credential::admin_token:
      return "admin_token";
    case credential::store_key:
      return "store_key";
    case credential::store_password:
      return "store_password";
  }
  return "";
}

constexpr std::optional<credential> credential_from_name(std::string_view n) {
  for (const auto c : all_credentials) {
    if (name(c) == n) {
      return c;
    }
  }
  return std::nullopt;
}

}  // namespace dsr
