#pragma once
// `dsr-connector serve`: loads the configuration and credentials, opens the store, starts the
// listeners and runs until SIGTERM/SIGINT. Returns the process exit code (0 after a graceful
// stop, 1 on a runtime failure, 2 on a configuration or credential error).

#include <filesystem>

namespace dsr::app {

int serve(const std::filesystem::path& config_file);

}  // namespace dsr::app
