#pragma once
// The [credentials] section the end-to-end tests give the daemon: fixed test values, the Exponea
// ones matching config/exponea-sim.example.json. Secrets end in "SECRET" so that tests can look
// for leaks.

#include <string>

namespace dsr::test {

// `api_secret_line` replaces the exponea_api_secret line (e.g. a NAME_file line).
inline std::string test_credentials(
    const std::string& api_secret_line = R"(exponea_api_secret = "demo-api-secret")") {
  return R"([credentials]
exponea_api_key = "demo-api-key"
)" + api_secret_line +
         R"(
exponea_project_token = "demo-project-token"
exponea_api_token = "demo-api-token"
mineos_webhook_secret = "webhook-secret-e2e-SECRET"
admin_token = "admin-token-of-the-e2e-tests-SECRET"
store_key = ")" +
         std::string(64, 'a') + R"("
mineos_api_key = "mineos-key-SECRET"
)";
}

}  // namespace dsr::test
