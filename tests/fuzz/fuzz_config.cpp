// libFuzzer target: the configuration parser (config/config.hpp). Any text either becomes a
// configuration or is refused with a config_error naming the source; nothing else may escape.

#include "dsr/config/config.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto cfg = dsr::parse_config(text, "fuzz.toml", "/nonexistent");
    if (cfg.server.listen.port > 65535 || cfg.jobs.concurrency == 0) {
      std::abort();  // validation let an impossible value through
    }
  } catch (const dsr::config_error& e) {
    if (std::string_view(e.what()).find("fuzz.toml") == std::string_view::npos) {
      std::abort();  // an error that does not name the file
    }
  }
  return 0;
}
