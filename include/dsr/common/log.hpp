#pragma once
// The subsystem loggers ("main", "http", "intake", "store", "admin", "config", "jobs", "exponea",
// "mineos"), created by ops::setup_logging.

#include <spdlog/spdlog.h>

#include <memory>

namespace dsr {

// The logger of that subsystem, or the default logger before logging is set up (tests).
inline std::shared_ptr<spdlog::logger> subsystem_logger(const char* name) {
  auto l = spdlog::get(name);
  return l ? l : spdlog::default_logger();
}

}  // namespace dsr
