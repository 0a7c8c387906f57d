#pragma once
// `dsr-connector serve`: loads the configuration and credentials, opens the store, starts the
// listeners and runs until SIGTERM/SIGINT. Returns the process exit code (0 after a graceful
// stop, 1 on a runtime failure, 2 on a configuration or credential error).

#include <filesystem>

namespace dsr::app {

int serve(const std::filesystem::path& config_file);

// `dsr-connector check`: the "Test your integration" checks, one line each (or the isTest JSON
// body with `json`). Writes nothing anywhere. 0 when nothing failed, 1 otherwise, 2 on a
// configuration error.
int check(const std::filesystem::path& config_file, bool json);

}  // namespace dsr::app
