#include "support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace dsr::test {
namespace {

std::vector<std::string> child_environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view kv(*e);
    if (kv.starts_with("DSR_CONNECTOR_") || kv.starts_with("CREDENTIALS_DIRECTORY=") ||
        kv.starts_with("NOTIFY_SOCKET=")) {
      continue;
    }
    out.emplace_back(kv);
  }
  for (const auto& [k, v] : extra) {
    out.push_back(k + "=" + v);
  }
  return out;
}

std::optional<int> decode(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return std::nullopt;
}

}  // namespace

process::process(const std::string& binary, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env, std::filesystem::path log_file)
    : log_file_(std::move(log_file)) {
  std::vector<std::string> argv_s{binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  auto env_s = child_environment(env);
  std::vector<char*> envp;
  for (auto& e : env_s) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  const int fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::runtime_error("cannot create " + log_file_.string());
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(fd);
}

process::~process() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::string process::output() const {
  std::ifstream in(log_file_);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool process::wait_listening(std::chrono::milliseconds timeout) {
  static const std::regex pub(R"(listening on https?://[^ ]+:(\d+) for MineOS webhooks)");
  static const std::regex adm(R"(listening on http://[^ ]+:(\d+) for operator endpoints)");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto out = output();
    std::smatch m;
    if (std::regex_search(out, m, pub)) {
      port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
      if (std::regex_search(out, m, adm)) {
        admin_port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
      }
      return true;
    }
    if (wait_exit(std::chrono::milliseconds(0))) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the log, not timing
  }
  return false;
}

std::uint16_t process::wait_port(const std::string& pattern, std::chrono::milliseconds timeout) {
  const std::regex re(pattern);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto out = output();
    std::smatch m;
    if (std::regex_search(out, m, re)) {
      return static_cast<std::uint16_t>(std::stoi(m[1]));
    }
    if (wait_exit(std::chrono::milliseconds(0))) {
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the log, not timing
  }
  return 0;
}

bool process::wait_output(std::string_view needle, std::size_t occurrences,
                          std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto out = output();
    std::size_t seen = 0;
    for (auto at = out.find(needle); at != std::string::npos; at = out.find(needle, at + 1)) {
      ++seen;
    }
    if (seen >= occurrences) {
      return true;
    }
    if (wait_exit(std::chrono::milliseconds(0))) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the log, not timing
  }
  return false;
}

void process::signal(int sig) {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, sig);
  }
}

std::optional<int> process::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_code_) {
    return exit_code_;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = decode(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

run_result run(const std::string& binary, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout) {
  char name[] = "/tmp/dsr-run-XXXXXX";
  const int fd = ::mkstemp(name);
  ::close(fd);
  run_result result;
  {
    process p(binary, args, env, name);
    const auto code = p.wait_exit(timeout);
    result.exit_code = code.value_or(-1);
    result.output = p.output();
  }
  ::unlink(name);
  return result;
}

}  // namespace dsr::test
