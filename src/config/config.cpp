#include "dsr/config/config.hpp"

#include "dsr/config/credential_names.hpp"
#include "dsr/config/request_types.hpp"

// The sections, read in order. How a section's keys are read (types, ranges, unknown keys) is in
// section_reader.cpp; the checks of single values (addresses, URLs, paths) in value_checks.cpp.
#include "section_reader.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace dsr {
namespace {

using detail::check_url;
using detail::holds_password;
using detail::resolve;
using detail::section_reader;
using detail::type_name;

// Whether line `line` (1-based) of `text` is in the [credentials] table or names a credential
// (a line broken across others included: the error may point at the start of the next one).
bool touches_credentials(std::string_view text, std::size_t line) {
  std::string section;
  std::size_t n = 0;
  std::size_t start = 0;
  while (start <= text.size() && ++n <= line + 1) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const auto l = text.substr(start, end - start);
    const auto first = l.find_first_not_of(" \t");
    if (first != std::string_view::npos && l[first] == '[') {
      const auto close = l.find(']', first);
      section = std::string(l.substr(
          first + 1, close == std::string_view::npos ? std::string_view::npos : close - first - 1));
    }
    if (n + 1 >= line) {
      if (section == "credentials") {
        return true;
      }
      for (const auto c : all_credentials) {
        if (l.find(name(c)) != std::string_view::npos) {
          return true;
        }
      }
    }
    start = end + 1;
  }
  return section == "credentials";
}

}  // namespace

config parse_config(std::string_view text, std::string_view source_name,
                    const std::filesystem::path& base_dir) {
  const std::string file(source_name);
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const auto line = e.source().begin.line;
    if (touches_credentials(text, line)) {
      // The parser's description may quote the text it choked on: a piece of a secret.
      throw config_error(fmt::format(
          "{}: line {}: invalid TOML in a credential's line; the parser's message is not shown "
          "because it could quote the value: check the quotes and escapes on that line",
          file, line));
    }
    throw config_error(fmt::format("{}: line {}: invalid TOML: {}", file, line, e.description()));
  }

  config cfg;
  cfg.source = file;
  static const std::set<std::string, std::less<>> sections{
      "server",  "store", "exponea", "mineos", "requests",
      "consent", "retry", "jobs",    "log",    "credentials"};
  for (const auto& [k, v] : root) {
    if (!sections.contains(k.str())) {
      throw config_error(fmt::format(
          "{}: {}: unknown section or key (line {}); valid sections: [server] [store] [exponea] "
          "[mineos] [requests] [consent] [retry] [jobs] [log] [credentials]",
          file, k.str(), v.source().begin.line));
    }
    if (!v.is_table()) {
      throw config_error(fmt::format("{}: {}: expected a [{}] table, got {} (line {})", file,
                                     k.str(), k.str(), type_name(v), v.source().begin.line));
    }
  }
  const auto section = [&](const char* name) {
    return section_reader(root[name].as_table(), name, file);
  };

  {
    auto r = section("server");
    const auto read_endpoint = [&](std::string_view key) -> std::optional<endpoint> {
      std::string text_value;
      r.string(key, text_value);
      if (text_value.empty()) {
        return std::nullopt;
      }
      std::string problem;
      auto ep = parse_endpoint(text_value, problem);
      if (!ep) {
        r.fail(key, problem);
      }
      return ep;
    };
    if (auto ep = read_endpoint("listen")) {
      cfg.server.listen = *ep;
    } else if (r.node("listen") != nullptr) {
      r.fail("listen", "must not be empty; write host:port, e.g. 127.0.0.1:8080");
    }
    cfg.server.admin_listen = read_endpoint("admin_listen");
    r.integer("max_body_bytes", cfg.server.max_body_bytes, 1);
    r.integer("max_connections", cfg.server.max_connections, 1, 1'000'000);
    r.integer("max_connections_per_client", cfg.server.max_connections_per_client, 0, 1'000'000);
    r.integer("max_queued_jobs", cfg.server.max_queued_jobs, 1);
    r.string("tls_cert_file", cfg.server.tls_cert_file);
    r.string("tls_key_file", cfg.server.tls_key_file);
    r.duration("first_byte_timeout_seconds", cfg.server.first_byte_timeout, 1, 3600);
    r.duration("read_timeout_seconds", cfg.server.read_timeout, 1, 3600);
    r.duration("idle_timeout_seconds", cfg.server.idle_timeout, 1, 86400);
    r.integer("io_threads", cfg.server.io_threads, 0, 256);
    if (cfg.server.tls_cert_file.empty() != cfg.server.tls_key_file.empty()) {
      r.fail(cfg.server.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
             "tls_cert_file and tls_key_file go together; set both or neither");
    }
    for (auto* file : {&cfg.server.tls_cert_file, &cfg.server.tls_key_file}) {
      if (!file->empty()) {
        *file = resolve(base_dir, *file).string();  // relative to the configuration file
      }
    }
    if (cfg.server.admin_listen && *cfg.server.admin_listen == cfg.server.listen &&
        cfg.server.listen.port != 0) {
      r.fail("admin_listen", "is the same address as listen; leave it \"\" to share `listen`");
    }
    r.finish();
  }
  {
    auto r = section("store");
    std::string engine = "sqlite";
    r.string("engine", engine);
    if (engine == "sqlite") {
      cfg.store.engine = store_engine_kind::sqlite;
    } else if (engine == "postgresql") {
      cfg.store.engine = store_engine_kind::postgresql;
    } else {
      r.fail("engine", fmt::format("'{}' is not one of sqlite, postgresql", engine));
    }
    r.string("url", cfg.store.url);
    if (cfg.store.engine == store_engine_kind::postgresql && cfg.store.url.empty()) {
      r.fail("url",
             "engine = \"postgresql\" needs the database's libpq URI, e.g. "
             "\"postgresql://dsr@db.internal/dsr?sslmode=verify-full\"");
    }
    if (holds_password(cfg.store.url)) {
      // Never printed: the URL holds a secret.
      r.fail("url",
             "holds a password (not shown); remove it from the URL and give it as the credential "
             "store_password (a file in $CREDENTIALS_DIRECTORY, DSR_CONNECTOR_STORE_PASSWORD, or "
             "store_password_file in [credentials])");
    }
    std::string path = cfg.store.path.string();
    r.string("path", path);
    if (path.empty()) {
      r.fail("path", "must not be empty");
    }
    cfg.store.path = resolve(base_dir, path);
    r.integer("retention_days", cfg.store.retention_days, 1, 36500);
    r.integer("export_retention_days", cfg.store.export_retention_days, 0, 36500);
    r.integer("max_size_mb", cfg.store.max_size_mb, 0, 16777216);
    r.finish();
  }
  {
    auto r = section("exponea");
    r.string("base_url", cfg.exponea.base_url);
    check_url(r, "base_url", cfg.exponea.base_url);
    r.string("customer_id_type", cfg.exponea.customer_id_type);
    if (cfg.exponea.customer_id_type.empty()) {
      r.fail("customer_id_type", "must not be empty (e.g. \"registered\")");
    }
    r.boolean("lowercase_ids", cfg.exponea.lowercase_ids);
    r.string("event_type", cfg.exponea.event_type);
    if (cfg.exponea.event_type.empty()) {
      r.fail("event_type", "must not be empty (e.g. \"privacy_request\")");
    }
    r.string("source", cfg.exponea.source);
    r.integer("max_requests_per_second", cfg.exponea.max_requests_per_second, 1, 100000);
    r.boolean("bulk_calls", cfg.exponea.bulk_calls);
    r.duration("timeout_seconds", cfg.exponea.timeout, 1, 3600);
    r.string("ca_file", cfg.exponea.ca_file);
    if (!cfg.exponea.ca_file.empty()) {
      cfg.exponea.ca_file = resolve(base_dir, cfg.exponea.ca_file).string();
    }
    r.duration("verify_timeout_seconds", cfg.exponea.verify_timeout, 0, 86400);
    r.integer("max_export_bytes", cfg.exponea.max_export_bytes, 1);
    if (const auto* n = r.node("custom_field_ids")) {
      const auto* list = n->as_array();
      if (list == nullptr) {
        r.fail(
            "custom_field_ids",
            "expected an array of tables, e.g. [{field = \"$internalId\", id = \"customer_id\"}]");
      }
      for (const auto& e : *list) {
        const auto* t = e.as_table();
        const auto text = [&](const char* k) -> std::string {
          const auto* v = t == nullptr ? nullptr : t->get(k);
          return v != nullptr && v->is_string() ? v->as_string()->get() : std::string();
        };
        if (t == nullptr || t->size() != 2 || text("field").empty() || text("id").empty()) {
          r.fail("custom_field_ids",
                 "each element must be {field = \"<MineOS custom field>\", id = \"<Exponea ID "
                 "name>\"}, both non-empty, e.g. {field = \"$internalId\", id = \"customer_id\"}");
        }
        cfg.exponea.custom_field_ids.push_back({text("field"), text("id")});
      }
    }
    r.finish();
  }
  {
    auto r = section("mineos");
    if (r.node("status_url") != nullptr) {
      r.fail("status_url",
             "was replaced by api_base_url: MineOS's status API is POST "
             "{api_base_url}/api/ticket/{request id}/custom-integrations/{integration id}; set "
             "api_base_url = \"https://api.portal.saymine.com\" (EU) or "
             "\"https://api.us.portal.saymine.com\" (US) and remove status_url (README, "
             "\"Upgrading\")");
    }
    r.string("api_base_url", cfg.mineos.api_base_url);
    if (!cfg.mineos.api_base_url.empty()) {
      check_url(r, "api_base_url", cfg.mineos.api_base_url);
      while (cfg.mineos.api_base_url.ends_with('/')) {
        cfg.mineos.api_base_url.pop_back();
      }
    }
    r.string("integration_id", cfg.mineos.integration_id);
    if (!cfg.mineos.integration_id.empty() && !is_safe_id(cfg.mineos.integration_id)) {
      r.fail("integration_id",
             "must be 1 to 128 characters from A-Z a-z 0-9 . _ ~ - (it goes into MineOS URLs); "
             "copy it from the custom system in MineOS");
    }
    r.string("public_url", cfg.mineos.public_url);
    if (!cfg.mineos.public_url.empty()) {
      check_url(r, "public_url", cfg.mineos.public_url);
      while (cfg.mineos.public_url.ends_with('/')) {
        cfg.mineos.public_url.pop_back();
      }
    }
    r.integer("inline_data_max_bytes", cfg.mineos.inline_data_max_bytes, 1);
    r.duration("file_link_ttl_hours", cfg.mineos.file_link_ttl, 1, 8760);
    r.integer("max_requests_per_minute", cfg.mineos.max_requests_per_minute, 1, 1'000'000);
    r.finish();
  }
  {
    auto r = section("requests");
    r.strings("erase_types", cfg.requests.erase_types);
    r.strings("opt_out_types", cfg.requests.opt_out_types);
    for (auto* list : {&cfg.requests.erase_types, &cfg.requests.opt_out_types}) {
      const char* key = list == &cfg.requests.erase_types ? "erase_types" : "opt_out_types";
      for (auto& t : *list) {
        const auto normalised = mineos::normalise_right(t);
        if (normalised.empty()) {
          r.fail(key, fmt::format("\"{}\" has no letter or digit; rights are compared by their "
                                  "letters and digits only",
                                  t));
        }
        t = normalised;
      }
    }
    for (const auto& t : cfg.requests.erase_types) {
      if (std::find(cfg.requests.opt_out_types.begin(), cfg.requests.opt_out_types.end(), t) !=
          cfg.requests.opt_out_types.end()) {
        r.fail("opt_out_types",
               fmt::format("\"{}\" is also in erase_types; a right is either anonymized or "
                           "opted out, remove it from one list",
                           t));
      }
    }
    r.finish();
  }
  {
    auto r = section("consent");
    r.strings("categories", cfg.consent.categories);
    r.finish();
  }
  {
    auto r = section("retry");
    r.integer("max_attempts", cfg.retry.max_attempts, 1, 1000);
    r.duration("initial_backoff_ms", cfg.retry.initial_backoff, 1, 86'400'000);
    r.duration("max_backoff_seconds", cfg.retry.max_backoff, 1, 604800);
    r.duration("pause_probe_seconds", cfg.retry.pause_probe, 1, 86400);
    r.finish();
  }
  {
    auto r = section("jobs");
    r.integer("concurrency", cfg.jobs.concurrency, 1, 1024);
    r.duration("shutdown_grace_seconds", cfg.jobs.shutdown_grace, 0, 3600);
    r.integer("deadline_days", cfg.jobs.deadline_days, 1, 3650);
    r.integer("deadline_warning_days", cfg.jobs.deadline_warning_days, 0, 3650);
    r.duration("lease_seconds", cfg.jobs.lease, 2, 86400);
    r.string("worker_name", cfg.jobs.worker_name);
    if (cfg.jobs.worker_name.size() > 200) {
      r.fail("worker_name", "is longer than 200 characters");
    }
    if (cfg.store.engine == store_engine_kind::postgresql &&
        cfg.jobs.lease <= cfg.exponea.timeout) {
      r.fail("lease_seconds",
             fmt::format("{} must be greater than [exponea] timeout_seconds ({}), so that a call "
                         "cannot land after another daemon took the job over; raise it to at least "
                         "{}",
                         cfg.jobs.lease.count(), cfg.exponea.timeout.count(),
                         cfg.exponea.timeout.count() + 1));
    }
    r.finish();
  }
  {
    auto r = section("log");
    r.string("level", cfg.log.level);
    static const std::set<std::string, std::less<>> levels{"trace", "debug", "info", "warn",
                                                           "error"};
    if (!levels.contains(cfg.log.level)) {
      r.fail("level",
             fmt::format("'{}' is not one of trace, debug, info, warn, error", cfg.log.level));
    }
    std::string format = "text";
    r.string("format", format);
    if (format == "text") {
      cfg.log.format = log_format::text;
    } else if (format == "json") {
      cfg.log.format = log_format::json;
    } else {
      r.fail("format", fmt::format("'{}' is not one of text, json", format));
    }
    r.finish();
  }
  if (const auto* creds = root["credentials"].as_table()) {
    section_reader r(creds, "credentials", file);
    for (const auto& [k, v] : *creds) {
      std::string key(k.str());
      const bool is_file = key.ends_with("_file");
      const std::string base = is_file ? key.substr(0, key.size() - 5) : key;
      if (!credential_from_name(base)) {
        continue;  // reported as unknown by finish()
      }
      std::string value;
      r.string(key, value);
      if (is_file) {
        if (value.empty()) {
          r.fail(key, "must name a file");
        }
        cfg.credentials.files.emplace(base, resolve(base_dir, value));
      } else {
        cfg.credentials.inline_values.emplace(base, std::move(value));
      }
    }
    r.finish();
  }
  return cfg;
}

config load_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw config_error(
        fmt::format("{}: cannot read the configuration file ({}); pass an existing "
                    "file with --config",
                    file.string(), std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file.string(), file.parent_path());
}

}  // namespace dsr