#pragma once
// The steps `serve` and `check` take before any part runs: the configuration and the credentials
// loaded or explained, the warnings a careful operator wants at start-up, the process's file
// limit and lease owner id. Each explains a problem on stderr itself; the caller only picks the
// exit code. Called on the main thread, before the runtime runs.

#include "dsr/config/config.hpp"
#include "dsr/credentials/credentials.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dsr::app {

// Answers other than exports (errors, acknowledgements) are small; an export goes to a file.
inline constexpr std::size_t answer_in_memory_limit = 1024 * 1024;

// The configuration, or nullopt after printing why it cannot be used (exit code 2).
std::optional<config> load_or_explain(const std::filesystem::path& file);

// The credentials `cfg` names, checked, in the store a reload (SIGHUP) swaps for every reader at
// once; null after printing every problem (exit code 2). Warnings go to the main logger.
std::unique_ptr<swappable_credentials> load_credentials_or_explain(const config& cfg);

// Warnings about settings that work but surprise: trace logging writes personal data, opt-out
// requests without consent categories fail.
void warn_about_settings(const config& cfg);

// max_connections sockets per listener need as many descriptors, plus the store, exports, logs
// and the peers' pools: raises the soft limit toward the hard one, and warns when that is short.
void raise_file_limit(std::uint64_t max_connections, unsigned listeners);

// What a careful operator would want to hear about at start-up: a store folder others can read,
// secrets in a configuration file others can read, operator endpoints in plain HTTP on a network
// address. None stops the daemon.
std::vector<std::string> deployment_warnings(const config& cfg);

// This process's lease owner id: "host:pid:random", or "[jobs] worker_name:random" when set. The
// random part makes a restarted daemon a new owner (docs/contract.md §8).
std::string owner_id(const std::string& worker_name);

}  // namespace dsr::app
