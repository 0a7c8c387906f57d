#include "dsr/config/config.hpp"

#include "dsr/config/credential_names.hpp"
#include "dsr/config/request_types.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <boost/url/parse.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace dsr {
namespace {

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date/time";
  }
}

// A libpq connection string that carries a secret: user:password@ in a URI, or a password or
// sslpassword parameter (URI query or key=value form).
bool holds_password(std::string_view url) {
  constexpr std::array<std::string_view, 2> secret_keys{"password", "sslpassword"};
  const auto is_secret_key = [&](std::string_view key) {
    return std::find(secret_keys.begin(), secret_keys.end(), key) != secret_keys.end();
  };
  const auto scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    const auto rest = url.substr(scheme + 3);
    const auto authority = rest.substr(0, rest.find_first_of("/?"));
    const auto at = authority.rfind('@');
    if (at != std::string_view::npos &&
        authority.substr(0, at).find(':') != std::string_view::npos) {
      return true;
    }
    const auto query = url.find('?');
    std::string_view q = query == std::string_view::npos ? "" : url.substr(query + 1);
    while (!q.empty()) {
      const auto amp = q.find('&');
      const auto param = q.substr(0, amp);
      if (is_secret_key(param.substr(0, param.find('=')))) {
        return true;
      }
      q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    }
    return false;
  }
  // key=value form: "host=db password=x", spaces allowed around '='.
  std::size_t i = 0;
  while (i < url.size()) {
    while (i < url.size() && (url[i] == ' ' || url[i] == '\t')) {
      ++i;
    }
    const auto key_end = url.find_first_of(" \t=", i);
    const auto key = url.substr(i, key_end == std::string_view::npos ? url.size() - i : key_end - i);
    if (is_secret_key(key)) {
      return true;
    }
    // Skip to the next key: past '=', the value (quoted or not).
    i = url.find('=', i);
    if (i == std::string_view::npos) {
      break;
    }
    ++i;
    while (i < url.size() && url[i] == ' ') {
      ++i;
    }
    if (i < url.size() && url[i] == '\'') {
      for (++i; i < url.size() && url[i] != '\''; ++i) {
        if (url[i] == '\\') {
          ++i;
        }
      }
      ++i;
    } else {
      while (i < url.size() && url[i] != ' ' && url[i] != '\t') {
        ++i;
      }
    }
  }
  return false;
}

// Reads the keys of one [section], remembering which were read so that the rest can be reported
// as unknown. Every error names the file, the section, the key and its line.
class section_reader {
 public:
  section_reader(const toml::table* table, std::string section, const std::string& file)
      : table_(table), section_(std::move(section)), file_(file) {}

  [[noreturn]] void fail(std::string_view key, std::string_view problem) const {
    std::string where;
    if (table_ != nullptr) {
      if (const auto* n = table_->get(key)) {
        where = fmt::format(" (line {})", n->source().begin.line);
      }
    }
    throw config_error(fmt::format("{}: [{}] {}: {}{}", file_, section_, key, problem, where));
  }

  const toml::node* node(std::string_view key) {
    seen_.emplace(key);
    return table_ == nullptr ? nullptr : table_->get(key);
  }

  void string(std::string_view key, std::string& out) {
    if (const auto* n = node(key)) {
      if (!n->is_string()) {
        fail(key, fmt::format("expected a string, got {}", type_name(*n)));
      }
      out = n->as_string()->get();
    }
  }

  void boolean(std::string_view key, bool& out) {
    if (const auto* n = node(key)) {
      if (!n->is_boolean()) {
        fail(key, fmt::format("expected true or false, got {}", type_name(*n)));
      }
      out = n->as_boolean()->get();
    }
  }

  template <class Int>
  void integer(std::string_view key, Int& out, std::int64_t min,
               std::int64_t max = static_cast<std::int64_t>(std::min<std::uint64_t>(
                   std::numeric_limits<Int>::max(), std::numeric_limits<std::int64_t>::max()))) {
    if (const auto* n = node(key)) {
      if (!n->is_integer()) {
        fail(key, fmt::format("expected an integer, got {}", type_name(*n)));
      }
      const std::int64_t v = n->as_integer()->get();
      if (v < min || v > max) {
        fail(key, fmt::format("{} is out of range; use a value from {} to {}", v, min, max));
      }
      out = static_cast<Int>(v);
    }
  }

  // An array of strings; every element a non-empty string.
  void strings(std::string_view key, std::vector<std::string>& out) {
    if (const auto* n = node(key)) {
      const auto* a = n->as_array();
      if (a == nullptr) {
        fail(key, fmt::format("expected an array of strings, got {}", type_name(*n)));
      }
      out.clear();
      for (const auto& e : *a) {
        if (!e.is_string() || e.as_string()->get().empty()) {
          fail(key, "every element must be a non-empty string");
        }
        out.push_back(e.as_string()->get());
      }
    }
  }

  template <class Duration>
  void duration(std::string_view key, Duration& out, std::int64_t min, std::int64_t max) {
    std::int64_t v = out.count();
    integer(key, v, min, max);
    out = Duration{v};
  }

  // Every key of the section that no reader asked for is an error.
  void finish() const {
    if (table_ == nullptr) {
      return;
    }
    for (const auto& [k, v] : *table_) {
      if (!seen_.contains(std::string(k.str()))) {
        throw config_error(
            fmt::format("{}: [{}] {}: unknown key (line {}); see "
                        "config/dsr-connector.example.toml for the valid keys",
                        file_, section_, k.str(), v.source().begin.line));
      }
    }
  }

 private:
  const toml::table* table_;
  std::string section_;
  const std::string& file_;
  std::set<std::string, std::less<>> seen_;
};

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path(p);
  if (path.is_relative() && !base.empty()) {
    return (base / path).lexically_normal();
  }
  return path;
}

// An http(s) URL; plain http only towards a loopback host (docs/contract.md §3).
void check_url(section_reader& r, std::string_view key, const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) {
    r.fail(key, "not a valid absolute URL (expected https://host[:port][/path])");
  }
  // Boost.URL 1.81 reads "http://127.0.0.1.nip.io" as host 127.0.0.1 and path ".nip.io": a
  // path after an authority must start with '/', else the host is not what it seems.
  if (parsed->has_authority() && !parsed->encoded_path().empty() &&
      parsed->encoded_path().front() != '/') {
    r.fail(key,
           "not a valid absolute URL: the host name is not what it seems (expected "
           "https://host[:port][/path])");
  }
  const auto scheme = parsed->scheme();
  const std::string host(parsed->encoded_host_address());
  if (scheme != "https" && scheme != "http") {
    r.fail(key, fmt::format("scheme '{}' is not supported; use https://", scheme));
  }
  if (host.empty()) {
    r.fail(key, "the URL has no host");
  }
  if (scheme == "http" && !is_loopback_host(host)) {
    r.fail(key,
           fmt::format("http:// is allowed only for loopback hosts, not '{}'; use https://", host));
  }
}

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

std::string endpoint::to_string() const {
  if (host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", host, port);
  }
  return fmt::format("{}:{}", host, port);
}

bool is_safe_id(std::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
  });
}

bool is_loopback_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") {
    return true;
  }
  // An address, parsed: a host *name* starting with "127." (127.evil.example.com) is no loopback
  // and would receive credentials in clear.
  const std::string text(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  return ::inet_pton(AF_INET6, text.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

std::optional<endpoint> parse_endpoint(std::string_view text, std::string& problem) {
  endpoint ep;
  std::string_view port_text;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      problem = fmt::format("'{}' is not [IPv6]:port", text);
      return std::nullopt;
    }
    ep.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      problem = fmt::format("'{}' has no port; write host:port, e.g. 127.0.0.1:8080", text);
      return std::nullopt;
    }
    ep.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (ep.host.empty()) {
    problem = fmt::format("'{}' has no host; write host:port, e.g. 0.0.0.0:8080", text);
    return std::nullopt;
  }
  unsigned long port = 0;
  const auto [ptr, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || ptr != port_text.data() + port_text.size()) {
    problem = fmt::format("port '{}' is not a number", port_text);
    return std::nullopt;
  }
  if (port > 65535) {
    problem = fmt::format("port {} is out of range 0-65535", port);
    return std::nullopt;
  }
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

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
    if (cfg.store.engine == store_engine_kind::postgresql && cfg.jobs.lease <= cfg.exponea.timeout) {
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
