#pragma once
// A throwaway PostgreSQL cluster for tests: initdb into a private directory this process creates,
// one `postgres` started on it with its unix socket in that directory and no TCP listener (unless
// options::tcp asks for one on 127.0.0.1), and everything stopped and removed when the object goes
// away. It never reads, starts or connects to a system cluster, and changes nothing outside its
// own directory.
//
// The server binaries: `options::bindir`, else $DSR_PG_BINDIR, else /usr/lib/postgresql/15/bin,
// else `pg_config --bindir` (`scripts/install-deps` installs Debian's postgresql-15). Missing
// binaries are an error, never a skipped test.
//
// Users: initdb and postgres refuse to run as root. When this process is root, the cluster runs as
// `nobody`:`nogroup` (the child drops its groups and ids before exec) and the private directory is
// chowned to them; otherwise it runs as this process's user. The private directory goes under the
// first of $TMPDIR, /var/tmp, /dev/shm and /tmp that this process can write and that user can
// reach, checked ancestor by ancestor: no existing directory's mode is ever changed.
//
// Processes: the postmaster is this process's child, in its own session, and is stopped by its own
// pid: SIGINT (fast shutdown) with a bounded wait, then SIGKILL for it and its children. If this
// process dies first, the kernel sends the postmaster SIGQUIT (immediate shutdown, through
// PR_SET_PDEATHSIG), so no server outlives a crashed test binary (its directory then stays). That
// signal follows the *thread* that started the server: start it from a thread that outlives it
// (the main thread, as GoogleTest runs tests there).
//
// Thread safety: none; one thread drives an instance. Errors: std::runtime_error naming what
// failed and, for the server, the end of its log.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

namespace dsr::test {

class pg_cluster {
 public:
  struct options {
    // fsync=on is what crash-durability tests need; off makes a cluster doing many commits faster
    // where power loss is not the question. synchronous_commit is on either way.
    bool fsync = true;
    // Also listen on 127.0.0.1:port(), trusting every connection from there, for tests that put
    // something between a client and the server (a tcp_proxy). Off: the unix socket only.
    bool tcp = false;
    // The directory holding initdb and postgres; empty: looked up as the header says.
    std::filesystem::path bindir;
    // Until the server accepts connections (crash recovery after kill9() included).
    std::chrono::milliseconds start_timeout = std::chrono::seconds(60);
    // For the fast shutdown of stop(), before SIGKILL.
    std::chrono::milliseconds stop_timeout = std::chrono::seconds(30);
  };

  // Creates the private directory, runs initdb (trust authentication, UTF8, locale C, superuser
  // superuser()) and starts the server. Throws if a step fails; nothing stays behind then.
  pg_cluster() : pg_cluster(options{}) {}
  explicit pg_cluster(options opts);
  pg_cluster(const pg_cluster&) = delete;
  pg_cluster& operator=(const pg_cluster&) = delete;
  // Stops the server (as stop()), removes what a killed server leaves in the kernel (its System V
  // shared memory segment) and removes the private directory. Never throws. Does nothing in a
  // forked child of the process that made the cluster.
  ~pg_cluster();

  // The cluster of this test binary: started on first use with default options, shared by its
  // tests (each with its own database, see create_database), started again here if a test left
  // it stopped, stopped and removed at exit. Note that ctest runs each discovered test in a
  // process of its own, so under ctest each such test starts one.
  static pg_cluster& shared();

  // A libpq connection URI for `database`:
  // postgresql:///<database>?host=<dir>&port=<port>&user=<superuser>.
  std::string uri(std::string_view database = "postgres") const;
  // A libpq connection URI over TCP: postgresql://<superuser>@127.0.0.1:<port>/<database>. `port`
  // is port() to reach the server itself, or that of something forwarding to it. Only a cluster
  // made with options::tcp listens there.
  std::string tcp_uri(std::string_view database, std::uint16_t port) const;
  // Creates an empty database `name` (any name; it is quoted) and returns its uri(). Throws if it
  // exists. Needs a running server.
  std::string create_database(std::string_view name);
  // Drops `name` if it exists, disconnecting its sessions first. Needs a running server.
  void drop_database(std::string_view name);

  // Fast shutdown (SIGINT: sessions ended, open transactions rolled back, a checkpoint), waited
  // for up to options::stop_timeout, then SIGKILL as kill9(). No-op when not running.
  void stop();
  // Starts the server again on the same data directory and port and waits until it accepts
  // connections (after kill9(), once it has recovered). No-op when running. Throws as the
  // constructor.
  void start();
  // A crash: SIGKILL to the postmaster and every process it started, at once, then waits until
  // they are gone. Committed transactions survive it (fsync or not: the page cache stays).
  // No-op when not running.
  void kill9() noexcept;

  bool running() const { return pid_ > 0; }
  // The postmaster's pid while running, else -1.
  pid_t pid() const { return pid_; }
  std::uint16_t port() const { return port_; }
  // The private directory: the data directory `data/`, the socket, and the logs.
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path data_dir() const { return dir_ / "data"; }
  // The server's log (stderr of every start, appended).
  std::filesystem::path log_file() const { return dir_ / "postgres.log"; }
  // The uid the server runs as.
  uid_t run_uid() const { return run_uid_; }
  static constexpr std::string_view superuser() { return "postgres"; }

 private:
  // Adds the pg_hba.conf line of options::tcp.
  void allow_loopback_tcp();
  void wait_ready();
  void remove_dead_segment() noexcept;
  // stop() without the exception: false when it came to SIGKILL.
  bool shut_down() noexcept;

  options opts_;
  std::filesystem::path bindir_;
  std::filesystem::path dir_;
  uid_t run_uid_ = 0;
  gid_t run_gid_ = 0;
  bool drop_privileges_ = false;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  pid_t owner_ = ::getpid();
};

// One row per result row, one value per column, nullopt for SQL NULL.
using pg_rows = std::vector<std::vector<std::optional<std::string>>>;

// Connects to `uri`, runs `sql` (several statements allowed; the last one's rows are returned) and
// disconnects. Throws std::runtime_error with the server's message on failure.
pg_rows pg_query(const std::string& uri, const std::string& sql);

}  // namespace dsr::test
