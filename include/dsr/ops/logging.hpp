#pragma once
// Logging: spdlog to stderr (journald collects it), one logger per subsystem ("main", "http",
// "intake", "store", "admin"), text or one JSON object per line. Never a secret at any level;
// e-mails, names and bodies only at trace.

#include "dsr/config/config.hpp"

namespace dsr::ops {

// Before the configuration is read: text at info.
void setup_bootstrap_logging();

// Applies [log] to every subsystem logger.
void setup_logging(const log_config& cfg);

}  // namespace dsr::ops
