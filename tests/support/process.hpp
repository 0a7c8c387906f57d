#pragma once
// Runs the real dsr-connector binary for end-to-end tests: output captured to a file, the
// listening ports read from its log, signals sent like an operator or systemd would.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace dsr::test {

struct run_result {
  int exit_code = -1;  // 128 + signal when killed
  std::string output;  // stdout and stderr together
};

class process {
 public:
  // Starts `binary args...`; the environment is this process's without DSR_CONNECTOR_* and
  // CREDENTIALS_DIRECTORY, plus `env`. Output goes to `log_file`.
  process(const std::string& binary, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env, std::filesystem::path log_file);
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  // Kills the process (SIGKILL) if it still runs.
  ~process();

  // Waits until the log says where the daemon listens; false if it exits or times out first.
  bool wait_listening(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Waits for a log line matching `pattern` whose first group is a port; 0 if none came.
  std::uint16_t wait_port(const std::string& pattern,
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Waits until `needle` appears `occurrences` times in the output; false if the process exits
  // or the time runs out first.
  bool wait_output(std::string_view needle, std::size_t occurrences = 1,
                   std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::uint16_t admin_port() const { return admin_port_ != 0 ? admin_port_ : port_; }

  void signal(int sig);
  // The exit code (128 + signal when killed), or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::string output() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::filesystem::path log_file_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
};

// Runs to completion (bounded by `timeout`, then SIGKILL).
run_result run(const std::string& binary, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace dsr::test
