#pragma once
// The exponea-sim binary as the end-to-end tests start it: on 127.0.0.1:0 with a seed file.

#include "support/process.hpp"

#include <filesystem>
#include <memory>

namespace dsr::test {

// Starts the simulator with `seed_file` (output to `log_file`) and waits until it listens;
// `port` is 0 (and the process's output says why) when it did not start within `timeout` (a
// large seed takes a while to parse).
inline std::unique_ptr<process> start_sim(
    const std::filesystem::path& seed_file, const std::filesystem::path& log_file,
    std::uint16_t& port, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto sim = std::make_unique<process>(
      DSR_SIM_BINARY,
      std::vector<std::string>{"--seed", seed_file.string(), "--listen", "127.0.0.1:0"},
      std::map<std::string, std::string>{}, log_file);
  port = sim->wait_port(R"(exponea-sim listening on http://[^ ]+:(\d+))", timeout);
  return sim;
}

}  // namespace dsr::test
