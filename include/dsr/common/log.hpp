#pragma once
// The subsystem loggers ("main", "http", "intake", "store", "admin", "config", "jobs", "exponea",
// "mineos", "cluster"), created by ops::setup_logging.

#include <spdlog/spdlog.h>

#include <exception>
#include <memory>
#include <string>

namespace dsr {

// The logger of that subsystem, or the default logger before logging is set up (tests).
inline std::shared_ptr<spdlog::logger> subsystem_logger(const char* name) {
  auto l = spdlog::get(name);
  return l ? l : spdlog::default_logger();
}

}  // namespace dsr

namespace dsr {

// The completion of a co_spawn'ed coroutine that must never end the process: an exception that
// escapes it is logged as "<what> stopped: ..." on the `logger_name` subsystem logger.
inline auto log_if_thrown(const char* logger_name, std::string what) {
  return [logger_name, what = std::move(what)](const std::exception_ptr& e) {
    if (!e) {
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      subsystem_logger(logger_name)->error("{} stopped: {}", what, ex.what());
    } catch (...) {
      subsystem_logger(logger_name)->error("{} stopped", what);
    }
  };
}

}  // namespace dsr
