#pragma once
// The credential store: the eight named values of docs/contract.md §3, each looked up (first
// found wins)
//   1. the file $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=),
//   2. the environment variable DSR_CONNECTOR_<NAME>,
//   3. NAME_file = "/path" in [credentials] (content, trailing newline stripped),
//   4. NAME = "value" in [credentials].
// Kept behind an interface so that a reload (SIGHUP) can swap values in a running process.

#include "dsr/config/config.hpp"
#include "dsr/config/credential_names.hpp"
#include "dsr/credentials/secret.hpp"

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dsr {

class credential_store {
 public:
  virtual ~credential_store() = default;
  // The value, or nullopt when no source holds it. Thread-safe.
  virtual std::optional<secret> find(credential c) const = 0;
  // Where the value came from ("$CREDENTIALS_DIRECTORY/admin_token", "environment
  // DSR_CONNECTOR_ADMIN_TOKEN", "file /etc/...", "config inline"), or "" when missing. Never the
  // value itself.
  virtual std::string origin(credential c) const = 0;
};

// A credential store whose values a reload replaces at once, for every reader. Thread-safe.
class swappable_credentials final : public credential_store {
 public:
  explicit swappable_credentials(std::unique_ptr<credential_store> first);
  std::optional<secret> find(credential c) const override;
  std::string origin(credential c) const override;
  void replace(std::unique_ptr<credential_store> next);

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const credential_store> current_;
};

// What loading found besides the values: warnings (a file readable by group or others) and
// errors (a named file that cannot be read). Messages name files and values, never contents.
struct credential_load_report {
  std::vector<std::string> warnings;
  std::vector<std::string> errors;
};

// The process environment, as a seam for tests.
using env_lookup = std::function<std::optional<std::string>(const std::string& name)>;
env_lookup process_environment();

// Loads every value once from the four sources. Reading happens here; `find` only returns
// copies of what was loaded.
std::unique_ptr<credential_store> load_credentials(const credentials_config& cfg,
                                                   const env_lookup& env,
                                                   credential_load_report& report);

// The values `serve` needs for this configuration (docs/contract.md §3).
std::vector<credential> required_for_serve(const config& cfg);

// The shortest admin_token and webhook secret accepted: shorter ones can be guessed.
inline constexpr std::size_t min_admin_token_length = 32;
inline constexpr std::size_t min_webhook_secret_length = 16;

// Checks that every required value is present and well-formed (store_key: 64 hex digits;
// admin_token at least 32 characters; each webhook secret at least 16). Returns one message per
// problem, each naming the value and how to provide it, never the value; empty when ok.
std::vector<std::string> check_credentials(const config& cfg, const credential_store& store);

// The secrets of a multi-line value (mineos_webhook_secret rotation): one per non-empty line,
// surrounding white space trimmed.
std::vector<secret> split_lines(const secret& value);

}  // namespace dsr
