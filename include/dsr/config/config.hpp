#pragma once
// The daemon's configuration: one typed struct loaded from the TOML file of docs/contract.md §3.
// Every key has a default (the member initialisers below, documented key by key in
// config/dsr-connector.example.toml). Loading is strict: an unknown key, a wrong type or an
// invalid value throws `config_error` whose message names the file, the key and the problem.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dsr {

// "host:port" or "[v6]:port". Port 0 asks the OS for a free port (tests).
struct endpoint {
  std::string host;
  std::uint16_t port = 0;

  std::string to_string() const;
  friend bool operator==(const endpoint&, const endpoint&) = default;
};

struct server_config {
  endpoint listen{"127.0.0.1", 8080};
  std::optional<endpoint> admin_listen;  // nullopt: operator endpoints live on `listen`
  std::uint64_t max_body_bytes = 1048576;
  std::uint64_t max_connections = 1024;            // per listener
  std::uint64_t max_connections_per_client = 256;  // per client address on `listen`; 0 = no cap
  std::uint64_t max_queued_jobs = 1000000;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Added keys: a new connection that sends nothing within first_byte_timeout is closed; a
  // request's header and body must arrive within read_timeout; a keep-alive connection with no
  // request is closed after idle_timeout; 0 io_threads = one per core.
  std::chrono::seconds first_byte_timeout{5};
  std::chrono::seconds read_timeout{10};
  std::chrono::seconds idle_timeout{30};
  std::uint32_t io_threads = 0;

  friend bool operator==(const server_config&, const server_config&) = default;
};

// Where jobs are kept (docs/contract.md §8): an SQLite file for one daemon, or PostgreSQL.
enum class store_engine_kind { sqlite, postgresql };

struct store_config {
  store_engine_kind engine = store_engine_kind::sqlite;
  std::filesystem::path path = "/var/lib/dsr-connector/dsr.sqlite3";
  // postgresql: a libpq URI or key=value string without a password (refused: the password is
  // the credential store_password).
  std::string url;
  std::uint32_t retention_days = 730;
  std::uint32_t export_retention_days = 7;
  // Added key: the most the store may grow to, in MiB (0 = no cap). Beyond it intake answers 503
  // as on a full disk, so that the store never fills a disk it shares.
  std::uint64_t max_size_mb = 0;

  friend bool operator==(const store_config&, const store_config&) = default;
};

// A MineOS custom field tried as the subject's identifier when there is no e-mail (docs/contract.md
// §4): the userInfo.customFields key (e.g. "$internalId") and the Exponea ID name it maps to.
struct custom_field_id {
  std::string field;
  std::string id;

  friend bool operator==(const custom_field_id&, const custom_field_id&) = default;
};

struct exponea_config {
  std::string base_url = "https://api.exponea.com";
  std::string customer_id_type = "registered";
  bool lowercase_ids = true;
  std::string event_type = "privacy_request";
  std::string source = "MineOS";
  std::uint32_t max_requests_per_second = 50;
  // Jobs waiting for the same step share one call: a `batch` of audit (or consent) events, one
  // `anonymize_bulk`. false: one call per job and step.
  bool bulk_calls = true;
  std::chrono::seconds timeout{30};
  std::string ca_file;
  std::chrono::seconds verify_timeout{600};
  std::uint64_t max_export_bytes = 1073741824;
  std::vector<custom_field_id> custom_field_ids;  // tried in order when there is no e-mail

  friend bool operator==(const exponea_config&, const exponea_config&) = default;
};

struct mineos_config {
  // MineOS's API host: "https://api.portal.saymine.com" (EU) or "https://api.us.portal.saymine.com"
  // (US), without a trailing slash. "" = outcomes are not reported.
  std::string api_base_url;
  std::string integration_id;  // used when a delivery carries no integrationId
  std::string public_url;      // how MineOS reaches /v1/files; "" = data always inline
  std::uint64_t inline_data_max_bytes = 4194304;
  std::chrono::hours file_link_ttl{72};
  std::uint32_t max_requests_per_minute = 600;

  bool reporting() const { return !api_base_url.empty(); }
  friend bool operator==(const mineos_config&, const mineos_config&) = default;
};

// Which rights arriving at the Delete URL anonymize and which revoke consent (docs/contract.md §4),
// each normalised (normalise_right in config/request_types.hpp: ASCII letters and digits, lower
// case).
struct requests_config {
  std::vector<std::string> erase_types{"delete"};
  std::vector<std::string> opt_out_types{"donotsell", "donotmail", "optout", "unsubscribe"};

  friend bool operator==(const requests_config&, const requests_config&) = default;
};

// The Bloomreach consent categories an opt-out revokes (their ids, case-sensitive).
struct consent_config {
  std::vector<std::string> categories;

  friend bool operator==(const consent_config&, const consent_config&) = default;
};

struct retry_config {
  std::uint32_t max_attempts = 12;
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::seconds max_backoff{3600};
  std::chrono::seconds pause_probe{60};

  friend bool operator==(const retry_config&, const retry_config&) = default;
};

struct jobs_config {
  std::uint32_t concurrency = 4;
  std::chrono::seconds shutdown_grace{20};
  std::uint32_t deadline_days = 30;
  std::uint32_t deadline_warning_days = 7;
  // postgresql: a dead daemon's jobs are taken over after this; greater than
  // [exponea] timeout_seconds (docs/contract.md §8).
  std::chrono::seconds lease{60};
  // This daemon's name in job views and metrics; "" = <hostname>:<pid>.
  std::string worker_name;

  friend bool operator==(const jobs_config&, const jobs_config&) = default;
};

enum class log_format { text, json };

struct log_config {
  std::string level = "info";  // trace, debug, info, warn, error
  log_format format = log_format::text;

  friend bool operator==(const log_config&, const log_config&) = default;
};

// The [credentials] table as written: inline values (NAME) and file paths (NAME_file), by NAME.
// Raw inputs of the credential store, which applies the lookup order of docs/contract.md §3.
struct credentials_config {
  std::map<std::string, std::string, std::less<>> inline_values;
  std::map<std::string, std::filesystem::path, std::less<>> files;

  friend bool operator==(const credentials_config&, const credentials_config&) = default;
};

struct config {
  std::filesystem::path source;  // the file it was loaded from
  server_config server;
  store_config store;
  exponea_config exponea;
  mineos_config mineos;
  requests_config requests;
  consent_config consent;
  retry_config retry;
  jobs_config jobs;
  log_config log;
  credentials_config credentials;
};

class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and validates the file. Throws config_error (message: "FILE: [section] key: problem").
config load_config(const std::filesystem::path& file);

// Same, from text; `source_name` stands for the file in messages. Relative paths in the text
// (store.path, *_file credentials) are resolved against `base_dir`.
config parse_config(std::string_view text, std::string_view source_name,
                    const std::filesystem::path& base_dir = {});

// "host:port" or "[v6]:port" → endpoint; nullopt with `problem` set when malformed.
std::optional<endpoint> parse_endpoint(std::string_view text, std::string& problem);

// True for "localhost" and for the addresses 127.0.0.0/8 and ::1 (written as addresses: a host
// name that merely starts with "127." is not loopback).
bool is_loopback_host(std::string_view host);

// True when `id` may go into a MineOS URL and a file name (docs/contract.md §4):
// [A-Za-z0-9._~-]{1,128}.
bool is_safe_id(std::string_view id);

}  // namespace dsr
