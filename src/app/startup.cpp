#include "dsr/app/startup.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

namespace dsr::app {

std::optional<config> load_or_explain(const std::filesystem::path& file) {
  try {
    return load_config(file);
  } catch (const config_error& e) {
    fmt::print(stderr, "dsr-connector: {}\n", e.what());
    return std::nullopt;
  }
}

std::unique_ptr<swappable_credentials> load_credentials_or_explain(const config& cfg) {
  credential_load_report report;
  auto loaded = load_credentials(cfg.credentials, process_environment(), report);
  for (const auto& w : report.warnings) {
    spdlog::get("main")->warn("{}", w);
  }
  auto problems = check_credentials(cfg, *loaded);
  problems.insert(problems.begin(), report.errors.begin(), report.errors.end());
  if (!problems.empty()) {
    for (const auto& p : problems) {
      fmt::print(stderr, "dsr-connector: {}\n", p);
    }
    return nullptr;
  }
  return std::make_unique<swappable_credentials>(std::move(loaded));
}

void warn_about_settings(const config& cfg) {
  auto log = spdlog::get("main");
  if (cfg.log.level == "trace") {
    log->warn(
        "log level is trace: e-mail addresses, names and request bodies will be written to "
        "the log; use it only to debug, never in production");
  }
  if (cfg.consent.categories.empty() && !cfg.requests.opt_out_types.empty()) {
    log->warn(
        "[consent] categories is empty: opt-out requests ({}) will fail with \"no consent "
        "categories configured\"; list the Bloomreach consent categories an opt-out revokes, or "
        "empty [requests] opt_out_types",
        fmt::join(cfg.requests.opt_out_types, ", "));
  }
}

// systemd's default soft limit is 1024.
void raise_file_limit(std::uint64_t max_connections, unsigned listeners) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return;
  }
  const rlim_t wanted = static_cast<rlim_t>(max_connections * listeners + 256);
  if (lim.rlim_cur >= wanted) {
    return;
  }
  const rlim_t target = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, lim.rlim_max);
  if (target > lim.rlim_cur) {
    lim.rlim_cur = target;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (target < wanted) {
    spdlog::get("main")->warn(
        "open files are limited to {} (hard limit); [server] max_connections = {} per listener "
        "needs about {}: "
        "raise LimitNOFILE= or lower max_connections",
        target, max_connections, wanted);
  }
}

std::vector<std::string> deployment_warnings(const config& cfg) {
  std::vector<std::string> out;
  struct stat st {};
  const auto store_dir = cfg.store.path.parent_path().empty() ? std::filesystem::path(".")
                                                              : cfg.store.path.parent_path();
  if (::stat(store_dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    out.push_back(fmt::format(
        "the store folder {} is open to group or others (mode {:04o}): it holds personal data; "
        "chmod 700 it (the systemd unit sets StateDirectoryMode=0700)",
        store_dir.string(), st.st_mode & 07777));
  }
  if (!cfg.credentials.inline_values.empty() && ::stat(cfg.source.c_str(), &st) == 0 &&
      (st.st_mode & 077) != 0) {
    std::vector<std::string> names;
    for (const auto& [n, v] : cfg.credentials.inline_values) {
      names.push_back(n);
    }
    out.push_back(fmt::format(
        "{} holds secrets inline ({}) and is readable by group or others (mode {:04o}): chmod "
        "600 it, or better move them to LoadCredential= or NAME_file files",
        cfg.source.string(), fmt::join(names, ", "), st.st_mode & 07777));
  }
  if (cfg.server.admin_listen && !is_loopback_host(cfg.server.admin_listen->host)) {
    out.push_back(fmt::format(
        "[server] admin_listen {} is not a loopback address and serves plain HTTP: the admin "
        "token and the job views cross the network in clear; keep it on loopback, or put a "
        "TLS-terminating proxy in front and firewall the port",
        cfg.server.admin_listen->to_string()));
  }
  return out;
}

std::string owner_id(const std::string& worker_name) {
  std::random_device rd;
  if (!worker_name.empty()) {
    return fmt::format("{}:{:08x}", worker_name, rd());
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}:{:08x}", host, ::getpid(), rd());
}

}  // namespace dsr::app
