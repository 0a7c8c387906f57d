#include "support/pg_cluster.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <libpq-fe.h>

namespace dsr::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string read_tail(const fs::path& file, std::size_t max = 4000) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.size() > max) {
    text = "[...]" + text.substr(text.size() - max);
  }
  return text;
}

bool has_server(const fs::path& dir) {
  return ::access((dir / "initdb").c_str(), X_OK) == 0 &&
         ::access((dir / "postgres").c_str(), X_OK) == 0;
}

fs::path pg_config_bindir() {
  std::unique_ptr<FILE, decltype(&::pclose)> p(::popen("pg_config --bindir 2>/dev/null", "r"),
                                               &::pclose);
  if (!p) {
    return {};
  }
  char line[4096] = {};
  if (std::fgets(line, sizeof line, p.get()) == nullptr) {
    return {};
  }
  std::string s(line);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

fs::path find_bindir(const fs::path& requested) {
  const std::string fix =
      ": run scripts/install-deps (it installs Debian's postgresql-15), or point DSR_PG_BINDIR at "
      "the directory holding initdb and postgres";
  if (!requested.empty()) {
    if (!has_server(requested)) {
      throw std::runtime_error("no executable initdb and postgres in " + requested.string() + fix);
    }
    return requested;
  }
  if (const char* env = std::getenv("DSR_PG_BINDIR"); env != nullptr && *env != '\0') {
    if (!has_server(env)) {
      throw std::runtime_error(std::string("no executable initdb and postgres in DSR_PG_BINDIR=") +
                               env + fix);
    }
    return env;
  }
  const fs::path debian = "/usr/lib/postgresql/15/bin";
  if (has_server(debian)) {
    return debian;
  }
  if (const auto configured = pg_config_bindir(); !configured.empty() && has_server(configured)) {
    return configured;
  }
  throw std::runtime_error("the PostgreSQL 15 server (initdb, postgres) is not installed: not in " +
                           debian.string() + " nor in `pg_config --bindir`" + fix);
}

// Whether `uid`:`gid` (no supplementary groups, as the dropped child has) may search `dir`.
bool may_search(const fs::path& dir, uid_t uid, gid_t gid) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return false;
  }
  if (st.st_uid == uid) {
    return (st.st_mode & S_IXUSR) != 0;
  }
  if (st.st_gid == gid) {
    return (st.st_mode & S_IXGRP) != 0;
  }
  return (st.st_mode & S_IXOTH) != 0;
}

// Under the first candidate this process may write and the server's user may reach, a new
// directory (mkdtemp: 0700), given to that user. Existing directories are only read.
fs::path make_private_dir(bool drop, uid_t uid, gid_t gid, const std::string& user) {
  std::vector<fs::path> candidates;
  if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') {
    candidates.emplace_back(t);
  }
  for (const char* c : {"/var/tmp", "/dev/shm", "/tmp"}) {
    candidates.emplace_back(c);
  }
  // The socket's path, <dir>/.s.PGSQL.<port>, must fit a sockaddr_un.
  constexpr std::size_t suffix = sizeof("/dsr-pg-XXXXXX/.s.PGSQL.65535");
  std::string tried;
  for (const auto& candidate : candidates) {
    std::error_code ec;
    const fs::path parent = fs::canonical(candidate, ec);
    std::string why;
    if (ec || !fs::is_directory(parent)) {
      why = "not a directory";
    } else if (parent.string().size() + suffix > sizeof(sockaddr_un::sun_path)) {
      why = "too long a path for a unix socket";
    } else if (::access(parent.c_str(), W_OK | X_OK) != 0) {
      why = "not writable";
    } else if (drop) {
      for (fs::path p = parent;; p = p.parent_path()) {
        if (!may_search(p, uid, gid)) {
          why = user + " may not enter " + p.string();
          break;
        }
        if (p == p.root_path()) {
          break;
        }
      }
    }
    if (why.empty()) {
      std::string pattern = (parent / "dsr-pg-XXXXXX").string();
      if (::mkdtemp(pattern.data()) == nullptr) {
        why = "mkdtemp: " + errno_text(errno);
      } else if (drop && ::chown(pattern.c_str(), uid, gid) != 0) {
        const int err = errno;
        ::rmdir(pattern.c_str());
        throw std::runtime_error("cannot give " + pattern + " to " + user + ": " + errno_text(err));
      } else {
        return pattern;
      }
    }
    tried += (tried.empty() ? "" : "; ") + candidate.string() + ": " + why;
  }
  throw std::runtime_error("no directory for a throwaway PostgreSQL cluster (" + tried +
                           "): set TMPDIR to one");
}

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("socket: " + errno_text(errno));
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  if (!ok) {
    throw std::runtime_error("cannot find a free port on 127.0.0.1");
  }
  return ntohs(a.sin_port);
}

// Starts `argv` with stdout and stderr appended to `log`, in `cwd`, as `uid`:`gid` when `drop`.
// The child gets `death_signal` when this thread ends.
pid_t spawn(const std::vector<std::string>& argv_s, const fs::path& log, const fs::path& cwd,
            bool drop, uid_t uid, gid_t gid, int death_signal) {
  // Everything the child needs is made before fork: a multi-threaded parent's child may only
  // make async-signal-safe calls.
  std::vector<std::string> argv_copy = argv_s;
  std::vector<char*> argv;
  for (auto& a : argv_copy) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  // Nothing from this environment (PGHOST, PGDATA, ...) may lead the server elsewhere.
  std::string env_s[] = {"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"};
  std::vector<char*> envp;
  for (auto& e : env_s) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  const std::string cwd_s = cwd.string();
  const std::string no_exec = "pg_cluster: cannot execute " + argv_s[0] + "\n";
  const std::string no_drop = "pg_cluster: cannot drop to uid " + std::to_string(uid) + "\n";
  const std::string no_cwd = "pg_cluster: cannot enter " + cwd_s + "\n";
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    throw std::runtime_error("cannot create " + log.string() + ": " + errno_text(errno));
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    auto fail = [](const std::string& msg, int code) {
      [[maybe_unused]] auto n = ::write(2, msg.data(), msg.size());
      ::_exit(code);
    };
    ::setsid();
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::close_range(3, ~0U, 0);
    if (drop && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
      fail(no_drop, 126);
    }
    if (::chdir(cwd_s.c_str()) != 0) {
      fail(no_cwd, 126);
    }
    // After setuid, which clears it.
    ::prctl(PR_SET_PDEATHSIG, death_signal);
    if (::getppid() != parent) {
      ::_exit(1);
    }
    ::execve(argv[0], argv.data(), envp.data());
    fail(no_exec, 127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  if (null_fd >= 0) {
    ::close(null_fd);
  }
  if (pid < 0) {
    throw std::runtime_error("fork: " + errno_text(fork_errno));
  }
  return pid;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    return "exited with " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return std::string("was killed by ") + ::strsignal(WTERMSIG(status));
  }
  return "stopped";
}

// The child's wait status, or nullopt if it still runs after `timeout`.
std::optional<int> wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      return status;
    }
    if (steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a child, not timing
  }
}

// The state letter of /proc/<pid>/stat ('R', 'S', 'T', 'Z', ...), or 0 when there is no such
// process; `ppid` receives its parent.
char proc_state(pid_t pid, pid_t* ppid = nullptr) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // The command name may hold spaces and parentheses: the fields start after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream fields(stat.substr(close + 1));
  char state = 0;
  pid_t parent = 0;
  fields >> state >> parent;
  if (ppid != nullptr) {
    *ppid = parent;
  }
  return state;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  struct closer {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, closer> d(::opendir("/proc"));
  if (!d) {
    return out;
  }
  while (const dirent* e = ::readdir(d.get())) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') {
      continue;
    }
    pid_t ppid = 0;
    if (proc_state(static_cast<pid_t>(pid), &ppid) != 0 && ppid == parent) {
      out.push_back(static_cast<pid_t>(pid));
    }
  }
  return out;
}

// Gone, or a zombie: it holds no memory, no shared memory segment, no socket.
bool is_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) {
    return true;
  }
  const char state = proc_state(pid);
  return state == 0 || state == 'Z' || state == 'X';
}

std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    out += c;
    if (c == '"') {
      out += '"';
    }
  }
  return out + "\"";
}

}  // namespace

pg_cluster::pg_cluster(options opts) : opts_(std::move(opts)) {
  bindir_ = find_bindir(opts_.bindir);
  std::string user;
  if (::geteuid() == 0) {
    // initdb and postgres refuse root: run them as nobody, which owns nothing else.
    const passwd* pw = ::getpwnam("nobody");
    if (pw == nullptr) {
      throw std::runtime_error("running as root, and there is no user nobody to run PostgreSQL as");
    }
    const group* gr = ::getgrnam("nogroup");
    drop_privileges_ = true;
    run_uid_ = pw->pw_uid;
    run_gid_ = gr != nullptr ? gr->gr_gid : pw->pw_gid;
    user = "nobody";
  } else {
    run_uid_ = ::geteuid();
    run_gid_ = ::getegid();
    user = "uid " + std::to_string(run_uid_);
  }
  dir_ = make_private_dir(drop_privileges_, run_uid_, run_gid_, user);
  try {
    port_ = free_port();
    const auto initdb_log = dir_ / "initdb.log";
    const pid_t initdb = spawn(
        {(bindir_ / "initdb").string(), "-D", data_dir().string(), "-A", "trust", "-E", "UTF8",
         "--locale=C", "-U", std::string(superuser()), "--no-sync", "--no-instructions"},
        initdb_log, dir_, drop_privileges_, run_uid_, run_gid_, SIGKILL);
    const auto status = wait_child(initdb, std::chrono::seconds(120));
    if (!status) {
      ::kill(initdb, SIGKILL);
      wait_child(initdb, std::chrono::seconds(10));
      throw std::runtime_error("initdb did not finish within 120 s; " + initdb_log.string() +
                               ":\n" + read_tail(initdb_log));
    }
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
      throw std::runtime_error("initdb (as " + user + ") " + describe_status(*status) + "; " +
                               initdb_log.string() + ":\n" + read_tail(initdb_log));
    }
    if (opts_.tcp) {
      allow_loopback_tcp();
    }
    start();
  } catch (...) {
    shut_down();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

pg_cluster::~pg_cluster() {
  // A forked child that exits normally (a death test, say) runs the destructors too.
  if (::getpid() != owner_) {
    return;
  }
  shut_down();
  remove_dead_segment();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

pg_cluster& pg_cluster::shared() {
  static pg_cluster cluster;
  cluster.start();
  return cluster;
}

std::string pg_cluster::uri(std::string_view database) const {
  return "postgresql:///" + percent_encode(database) + "?host=" + percent_encode(dir_.string()) +
         "&port=" + std::to_string(port_) + "&user=" + std::string(superuser());
}

std::string pg_cluster::tcp_uri(std::string_view database, std::uint16_t port) const {
  return "postgresql://" + std::string(superuser()) + "@127.0.0.1:" + std::to_string(port) + "/" +
         percent_encode(database);
}

std::string pg_cluster::create_database(std::string_view name) {
  pg_query(uri(), "CREATE DATABASE " + quote_ident(name));
  return uri(name);
}

void pg_cluster::drop_database(std::string_view name) {
  pg_query(uri(), "DROP DATABASE IF EXISTS " + quote_ident(name) + " WITH (FORCE)");
}

void pg_cluster::start() {
  if (running()) {
    return;
  }
  // clang-format off
  pid_ = spawn({(bindir_ / "postgres").string(), "-D", data_dir().string(), "-k", dir_.string(),
                "-p", std::to_string(port_),
                // Without options::tcp the port only names the socket, .s.PGSQL.<port> in dir_.
                "-c", std::string("listen_addresses=") + (opts_.tcp ? "127.0.0.1" : ""),
                "-c", std::string("fsync=") + (opts_.fsync ? "on" : "off"),
                "-c", "synchronous_commit=on",
                // Crash recovery first flushes the data directory, which initdb --no-sync left
                // unflushed: one syncfs(2) takes ~0.3 s here, an fsync per file ~5 s.
                "-c", "recovery_init_sync_method=syncfs",
                // Files under data/pg_dynshmem, not /dev/shm: a killed server leaves none behind.
                "-c", "dynamic_shared_memory_type=mmap"},
               log_file(), dir_, drop_privileges_, run_uid_, run_gid_, SIGQUIT);
  // clang-format on
  wait_ready();
}

void pg_cluster::allow_loopback_tcp() {
  // initdb -A trust writes such a line too; this one does not depend on its template. The file
  // keeps its owner (the server's user): it is appended to, not replaced.
  const auto hba = data_dir() / "pg_hba.conf";
  std::ofstream out(hba, std::ios::app);
  out << "\n# pg_cluster options::tcp\nhost all all 127.0.0.1/32 trust\n";
  out.close();
  if (!out) {
    throw std::runtime_error("cannot append to " + hba.string());
  }
}

void pg_cluster::wait_ready() {
  const std::string conninfo = uri();
  const auto deadline = steady_clock::now() + opts_.start_timeout;
  for (;;) {
    if (const auto status = wait_child(pid_, std::chrono::milliseconds(0))) {
      pid_ = -1;
      throw std::runtime_error("postgres " + describe_status(*status) +
                               " before accepting connections; " + log_file().string() + ":\n" +
                               read_tail(log_file()));
    }
    if (::PQping(conninfo.c_str()) == PQPING_OK) {
      return;
    }
    if (steady_clock::now() >= deadline) {
      kill9();
      throw std::runtime_error("postgres did not accept connections within " +
                               std::to_string(opts_.start_timeout.count()) + " ms; " +
                               log_file().string() + ":\n" + read_tail(log_file()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the server, not timing
  }
}

void pg_cluster::stop() {
  if (!shut_down()) {
    throw std::runtime_error(
        "postgres did not shut down within " + std::to_string(opts_.stop_timeout.count()) +
        " ms of SIGINT and was killed; " + log_file().string() + ":\n" + read_tail(log_file()));
  }
}

bool pg_cluster::shut_down() noexcept {
  if (!running()) {
    return true;
  }
  ::kill(pid_, SIGINT);
  if (wait_child(pid_, opts_.stop_timeout)) {
    pid_ = -1;
    return true;
  }
  kill9();
  return false;
}

void pg_cluster::kill9() noexcept {
  if (!running()) {
    return;
  }
  // Stopped, the postmaster cannot start another child between the listing and the kill.
  ::kill(pid_, SIGSTOP);
  const auto stopping = steady_clock::now() + std::chrono::seconds(5);
  while (proc_state(pid_) != 'T' && proc_state(pid_) != 0 && steady_clock::now() < stopping) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Every child is a session leader of its own (postgres calls setsid()): no group to signal.
  const auto children = children_of(pid_);
  ::kill(pid_, SIGKILL);
  for (const pid_t c : children) {
    ::kill(c, SIGKILL);
  }
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  // Until they are gone, their shared memory is attached and a new postmaster would refuse it.
  const auto deadline = steady_clock::now() + std::chrono::seconds(10);
  for (const pid_t c : children) {
    while (!is_gone(c) && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

void pg_cluster::remove_dead_segment() noexcept {
  // A killed postmaster leaves its pid file, whose 7th line holds the key and id of its System V
  // segment; a clean shutdown or a restart removes both. Only a detached segment of that key goes.
  std::ifstream in(data_dir() / "postmaster.pid");
  std::string line;
  for (int i = 0; i < 7 && std::getline(in, line); ++i) {
  }
  if (!in) {
    return;
  }
  std::istringstream fields(line);
  key_t key = 0;
  int id = -1;
  if (!(fields >> key >> id) || id < 0) {
    return;
  }
  shmid_ds ds{};
  if (::shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_nattch == 0 && ds.shm_perm.__key == key) {
    ::shmctl(id, IPC_RMID, nullptr);
  }
}

pg_rows pg_query(const std::string& uri, const std::string& sql) {
  std::unique_ptr<PGconn, decltype(&::PQfinish)> conn(::PQconnectdb(uri.c_str()), &::PQfinish);
  if (::PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("cannot connect to " + uri + ": " + ::PQerrorMessage(conn.get()));
  }
  std::unique_ptr<PGresult, decltype(&::PQclear)> res(::PQexec(conn.get(), sql.c_str()),
                                                      &::PQclear);
  const auto status = ::PQresultStatus(res.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    throw std::runtime_error(sql.substr(0, 200) + ": " + ::PQresultErrorMessage(res.get()));
  }
  pg_rows rows;
  for (int r = 0; r < ::PQntuples(res.get()); ++r) {
    auto& row = rows.emplace_back();
    for (int c = 0; c < ::PQnfields(res.get()); ++c) {
      if (::PQgetisnull(res.get(), r, c) != 0) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(::PQgetvalue(res.get(), r, c),
                                     static_cast<std::size_t>(::PQgetlength(res.get(), r, c))));
      }
    }
  }
  return rows;
}

}  // namespace dsr::test
