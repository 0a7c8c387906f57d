#include "dsr/ops/logging.hpp"

#include "dsr/common/time.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <array>

namespace dsr::ops {
namespace {

constexpr std::array<const char*, 10> subsystems{"main",   "http", "intake",  "store",  "admin",
                                                 "config", "jobs", "exponea", "mineos", "cluster"};

// One JSON object per line: {"time","level","logger","message"}. Invalid UTF-8 is replaced rather
// than failing the line.
class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto t = std::chrono::time_point_cast<millis>(msg.time);
    const nlohmann::json line{
        {"time", format_rfc3339(time_point{t.time_since_epoch()})},
        {"level", spdlog::level::to_string_view(msg.level)},
        {"logger", msg.logger_name},
        {"message", std::string_view(msg.payload.data(), msg.payload.size())},
    };
    const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

std::shared_ptr<spdlog::sinks::sink> stderr_sink() {
  static auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  return sink;
}

void make_loggers(spdlog::level::level_enum level, std::unique_ptr<spdlog::formatter> formatter) {
  auto sink = stderr_sink();
  sink->set_formatter(std::move(formatter));
  for (const char* name : subsystems) {
    auto logger = spdlog::get(name);
    if (!logger) {
      logger = std::make_shared<spdlog::logger>(name, sink);
      spdlog::register_logger(logger);
    }
    logger->set_level(level);
    logger->flush_on(spdlog::level::trace);
  }
  auto main = spdlog::get("main");
  spdlog::set_default_logger(main);
}

}  // namespace

void setup_bootstrap_logging() {
  make_loggers(spdlog::level::info,
               std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v",
                                                           spdlog::pattern_time_type::utc));
}

void setup_logging(const log_config& cfg) {
  std::unique_ptr<spdlog::formatter> f;
  if (cfg.format == log_format::json) {
    f = std::make_unique<json_formatter>();
  } else {
    f = std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v",
                                                    spdlog::pattern_time_type::utc);
  }
  make_loggers(spdlog::level::from_str(cfg.level), std::move(f));
}

}  // namespace dsr::ops
