#include "dsr/credentials/credentials.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

namespace dsr {

secret& secret::operator=(const secret& other) {
  if (this != &other) {
    wipe();
    value_ = other.value_;
  }
  return *this;
}

secret& secret::operator=(secret&& other) noexcept {
  if (this != &other) {
    wipe();
    value_ = std::move(other.value_);
    other.value_.clear();
  }
  return *this;
}

secret::~secret() {
  wipe();
}

void secret::wipe() noexcept {
  if (!value_.empty()) {
    OPENSSL_cleanse(value_.data(), value_.size());
  }
}

namespace {

struct entry {
  secret value;
  std::string origin;
};

class static_credential_store final : public credential_store {
 public:
  explicit static_credential_store(std::map<credential, entry> values)
      : values_(std::move(values)) {}

  std::optional<secret> find(credential c) const override {
    const auto it = values_.find(c);
    if (it == values_.end()) {
      return std::nullopt;
    }
    return it->second.value;
  }

  std::string origin(credential c) const override {
    const auto it = values_.find(c);
    return it == values_.end() ? std::string() : it->second.origin;
  }

 private:
  std::map<credential, entry> values_;
};

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  return out;
}

// The file's content with one trailing newline (LF or CRLF) removed; nullopt and an error in the
// report when it cannot be read.
std::optional<std::string> read_secret_file(const std::filesystem::path& path,
                                            std::string_view what, bool check_mode,
                                            credential_load_report& report) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    report.errors.push_back(
        fmt::format("{}: cannot read {} ({})", what, path.string(), std::strerror(errno)));
    return std::nullopt;
  }
  if (check_mode && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    report.warnings.push_back(fmt::format(
        "{}: the file {} is readable by group or others (mode {:04o}); run chmod 600 on it", what,
        path.string(), st.st_mode & 07777));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    report.errors.push_back(
        fmt::format("{}: cannot read {} ({})", what, path.string(), std::strerror(errno)));
    return std::nullopt;
  }
  std::ostringstream content;
  content << in.rdbuf();
  std::string value = content.str();
  if (value.ends_with('\n')) {
    value.pop_back();
    if (value.ends_with('\r')) {
      value.pop_back();
    }
  }
  return value;
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}

}  // namespace

env_lookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) {
      return std::string(v);
    }
    return std::nullopt;
  };
}

std::unique_ptr<credential_store> load_credentials(const credentials_config& cfg,
                                                   const env_lookup& env,
                                                   credential_load_report& report) {
  std::map<credential, entry> values;
  const auto dir = env("CREDENTIALS_DIRECTORY");
  for (const auto c : all_credentials) {
    const std::string n(name(c));
    if (dir && !dir->empty()) {
      const std::filesystem::path p = std::filesystem::path(*dir) / n;
      std::error_code ec;
      if (std::filesystem::exists(p, ec)) {
        // systemd owns the mode of these files; no permission warning.
        if (auto v = read_secret_file(p, n, false, report)) {
          values.emplace(c, entry{secret(std::move(*v)), "$CREDENTIALS_DIRECTORY/" + n});
        }
        continue;
      }
    }
    const std::string var = "DSR_CONNECTOR_" + upper(n);
    if (auto v = env(var)) {
      values.emplace(c, entry{secret(std::move(*v)), "environment " + var});
      continue;
    }
    if (const auto it = cfg.files.find(n); it != cfg.files.end()) {
      if (auto v = read_secret_file(it->second, n, true, report)) {
        values.emplace(c, entry{secret(std::move(*v)), "file " + it->second.string()});
      }
      continue;
    }
    if (const auto it = cfg.inline_values.find(n); it != cfg.inline_values.end()) {
      values.emplace(c, entry{secret(it->second), "[credentials] " + n});
    }
  }
  return std::make_unique<static_credential_store>(std::move(values));
}

std::vector<credential> required_for_serve(const config& cfg) {
  std::vector<credential> needed{
      credential::exponea_api_key,
      credential::exponea_api_secret,
      credential::exponea_project_token,
      credential::exponea_api_token,
      credential::mineos_webhook_secret,
      credential::admin_token,
      credential::store_key,
  };
  if (cfg.mineos.reporting()) {
    needed.push_back(credential::mineos_api_key);
  }
  return needed;
}

std::vector<std::string> check_credentials(const config& cfg, const credential_store& store) {
  std::vector<std::string> problems;
  for (const auto c : required_for_serve(cfg)) {
    const auto n = name(c);
    const auto value = store.find(c);
    if (!value || value->empty()) {
      problems.push_back(fmt::format(
          "credential {} is missing{}: provide it as $CREDENTIALS_DIRECTORY/{} (systemd "
          "LoadCredential=), the environment variable DSR_CONNECTOR_{}, or {}_file / {} in "
          "[credentials] of {}",
          n, value ? " (empty)" : "", n, upper(n), n, n, cfg.source.string()));
      continue;
    }
    if (c == credential::store_key) {
      const auto v = value->reveal();
      if (v.size() != 64 || !is_hex(v)) {
        problems.push_back(fmt::format(
            "credential store_key (from {}) must be 32 random bytes written as 64 hex digits; "
            "generate one with: openssl rand -hex 32",
            store.origin(c)));
      }
    }
    if (c == credential::mineos_webhook_secret) {
      const auto secrets = split_lines(*value);
      if (secrets.empty()) {
        problems.push_back(fmt::format("credential mineos_webhook_secret (from {}) holds no secret",
                                       store.origin(c)));
      }
      for (std::size_t i = 0; i < secrets.size(); ++i) {
        if (secrets[i].reveal().size() < min_webhook_secret_length) {
          problems.push_back(fmt::format(
              "credential mineos_webhook_secret (from {}): secret {} of {} is shorter than {} "
              "characters; a short secret can be guessed: use the one MineOS generated, or at "
              "least {} random characters",
              store.origin(c), i + 1, secrets.size(), min_webhook_secret_length,
              min_webhook_secret_length));
        }
      }
    }
    if (c == credential::admin_token && value->reveal().size() < min_admin_token_length) {
      problems.push_back(fmt::format(
          "credential admin_token (from {}) is shorter than {} characters; it guards the "
          "operator API: generate one with: openssl rand -hex 32",
          store.origin(c), min_admin_token_length));
    }
  }
  return problems;
}

std::vector<secret> split_lines(const secret& value) {
  std::vector<secret> out;
  const std::string_view all = value.reveal();
  std::size_t start = 0;
  while (start <= all.size()) {
    auto end = all.find('\n', start);
    if (end == std::string_view::npos) {
      end = all.size();
    }
    std::string_view line = all.substr(start, end - start);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
      line.remove_prefix(1);
    }
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
      line.remove_suffix(1);
    }
    if (!line.empty()) {
      out.emplace_back(std::string(line));
    }
    start = end + 1;
  }
  return out;
}

swappable_credentials::swappable_credentials(std::unique_ptr<credential_store> first)
    : current_(std::move(first)) {}

std::optional<secret> swappable_credentials::find(credential c) const {
  std::shared_ptr<const credential_store> now;
  {
    const std::lock_guard lock(mutex_);
    now = current_;
  }
  return now->find(c);
}

std::string swappable_credentials::origin(credential c) const {
  std::shared_ptr<const credential_store> now;
  {
    const std::lock_guard lock(mutex_);
    now = current_;
  }
  return now->origin(c);
}

void swappable_credentials::replace(std::unique_ptr<credential_store> next) {
  std::shared_ptr<const credential_store> old;
  const std::lock_guard lock(mutex_);
  old = std::exchange(current_, std::shared_ptr<const credential_store>(std::move(next)));
}

}  // namespace dsr
