#include "support/pg_cluster.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

namespace dsr::test {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A database named after the running test, so that the tests sharing the cluster never meet.
std::string own_database(std::string_view suffix = "") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return pg_cluster::shared().create_database(std::string(info->name()) + std::string(suffix));
}

std::string value(const std::string& uri, const std::string& sql) {
  const auto rows = pg_query(uri, sql);
  if (rows.size() != 1 || rows[0].size() != 1 || !rows[0][0]) {
    throw std::runtime_error(sql + ": not one non-null value");
  }
  return *rows[0][0];
}

uid_t uid_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("Uid:")) {
      std::istringstream fields(line.substr(4));
      uid_t real = 0;
      fields >> real;
      return real;
    }
  }
  return static_cast<uid_t>(-1);
}

// The processes whose parent is `parent`, read from /proc independently of the harness.
std::vector<pid_t> children(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::ifstream in(e.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto close = stat.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::istringstream fields(stat.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent) {
      out.push_back(std::stoi(name));
    }
  }
  return out;
}

// No such process, or only a zombie awaiting its new parent's wait (it holds nothing).
bool gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) {
    return true;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto close = stat.rfind(')');
  return close == std::string::npos || stat.substr(close + 2, 1) == "Z";
}

// The System V segment id the running postmaster recorded in its pid file.
int segment_of(const pg_cluster& c) {
  std::ifstream in(c.data_dir() / "postmaster.pid");
  std::string line;
  for (int i = 0; i < 7; ++i) {
    std::getline(in, line);
  }
  std::istringstream fields(line);
  long key = 0;
  int id = -1;
  fields >> key >> id;
  return id;
}

bool segment_exists(int id) {
  shmid_ds ds{};
  return ::shmctl(id, IPC_STAT, &ds) == 0;
}

TEST(PgCluster, RunsWithoutRootInAPrivateDirectoryWithOnlyAUnixSocket) {
  auto& c = pg_cluster::shared();
  ASSERT_TRUE(c.running());
  if (::geteuid() == 0) {
    const passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    EXPECT_EQ(c.run_uid(), nobody->pw_uid);
  } else {
    EXPECT_EQ(c.run_uid(), ::geteuid());
  }
  EXPECT_EQ(uid_of(c.pid()), c.run_uid());
  struct stat st {};
  ASSERT_EQ(::stat(c.dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, c.run_uid());

  const auto uri = c.uri();
  EXPECT_EQ(value(uri, "SHOW listen_addresses"), "");
  EXPECT_EQ(value(uri, "SHOW unix_socket_directories"), c.dir().string());
  EXPECT_EQ(value(uri, "SHOW port"), std::to_string(c.port()));
  EXPECT_EQ(value(uri, "SHOW data_directory"), c.data_dir().string());
  EXPECT_EQ(value(uri, "SHOW fsync"), "on");
  EXPECT_EQ(value(uri, "SHOW synchronous_commit"), "on");
  EXPECT_EQ(value(uri, "SHOW server_encoding"), "UTF8");
  EXPECT_THAT(value(uri, "SELECT version()"), HasSubstr("PostgreSQL 15."));
}

TEST(PgCluster, GivesEachFixtureItsOwnDatabase) {
  auto& c = pg_cluster::shared();
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const auto first = c.create_database(name + "_a");
  const auto second = c.create_database(name + "_b");
  pg_query(first,
           "CREATE TABLE jobs (id bigint PRIMARY KEY, state text NOT NULL);"
           "INSERT INTO jobs VALUES (1, 'due'), (2, 'done')");
  EXPECT_EQ(value(first, "SELECT string_agg(state, ',' ORDER BY id) FROM jobs"), "due,done");
  EXPECT_EQ(value(second, "SELECT to_regclass('jobs') IS NULL"), "t");
  EXPECT_THROW(c.create_database(name + "_a"), std::runtime_error);

  std::unique_ptr<PGconn, decltype(&::PQfinish)> open(::PQconnectdb(second.c_str()), &::PQfinish);
  ASSERT_EQ(::PQstatus(open.get()), CONNECTION_OK) << ::PQerrorMessage(open.get());
  c.drop_database(name + "_b");
  EXPECT_THROW(pg_query(second, "SELECT 1"), std::runtime_error);
  EXPECT_EQ(value(first, "SELECT count(*) FROM jobs"), "2");
}

TEST(PgCluster, KeepsCommittedDataAcrossStopAndStartUnderAnOpenTransaction) {
  auto& c = pg_cluster::shared();
  const auto db = own_database();
  pg_query(db, "CREATE TABLE t (v text); INSERT INTO t VALUES ('committed')");
  std::unique_ptr<PGconn, decltype(&::PQfinish)> open(::PQconnectdb(db.c_str()), &::PQfinish);
  ASSERT_EQ(::PQstatus(open.get()), CONNECTION_OK) << ::PQerrorMessage(open.get());
  ::PQclear(::PQexec(open.get(), "BEGIN; INSERT INTO t VALUES ('uncommitted')"));
  const pid_t old_pid = c.pid();

  c.stop();
  EXPECT_FALSE(c.running());
  EXPECT_TRUE(gone(old_pid));
  EXPECT_EQ(::PQping(db.c_str()), PQPING_NO_RESPONSE);

  c.start();
  EXPECT_TRUE(c.running());
  EXPECT_EQ(value(db, "SELECT string_agg(v, ',') FROM t"), "committed");
}

TEST(PgCluster, KeepsCommittedDataAcrossAKill9) {
  auto& c = pg_cluster::shared();
  const auto db = own_database();
  pg_query(db, "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 1000)");
  const pid_t old_pid = c.pid();
  const auto old_children = children(old_pid);
  ASSERT_FALSE(old_children.empty());

  c.kill9();
  EXPECT_FALSE(c.running());
  EXPECT_TRUE(gone(old_pid));
  for (const pid_t p : old_children) {
    EXPECT_TRUE(gone(p)) << p;
  }

  c.start();
  EXPECT_EQ(value(db, "SELECT count(*) FROM t"), "1000");
  // A crash, not a clean stop: the server had to recover.
  std::ifstream log(c.log_file());
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("automatic recovery in progress"));
}

TEST(PgCluster, LeavesNoProcessNoDirectoryAndNoSegmentWhenDestroyed) {
  pid_t postmaster = -1;
  std::vector<pid_t> others;
  fs::path dir;
  int segment = -1;
  std::unique_ptr<PGconn, decltype(&::PQfinish)> open(nullptr, &::PQfinish);
  {
    pg_cluster c(pg_cluster::options{.fsync = false});
    open.reset(::PQconnectdb(c.uri().c_str()));
    ASSERT_EQ(::PQstatus(open.get()), CONNECTION_OK) << ::PQerrorMessage(open.get());
    postmaster = c.pid();
    others = children(postmaster);
    dir = c.dir();
    segment = segment_of(c);
    ASSERT_TRUE(fs::exists(c.data_dir()));
    ASSERT_TRUE(segment_exists(segment));
  }
  EXPECT_TRUE(gone(postmaster));
  for (const pid_t p : others) {
    EXPECT_TRUE(gone(p)) << p;
  }
  EXPECT_FALSE(fs::exists(dir)) << dir;
  EXPECT_FALSE(segment_exists(segment));
}

TEST(PgCluster, LeavesNothingBehindWhenDestroyedAfterAKill9) {
  fs::path dir;
  int segment = -1;
  {
    pg_cluster c(pg_cluster::options{.fsync = false});
    dir = c.dir();
    segment = segment_of(c);
    c.kill9();
    // What a crash leaves: the pid file and the segment, which a new postmaster would clean up.
    ASSERT_TRUE(fs::exists(c.data_dir() / "postmaster.pid"));
    ASSERT_TRUE(segment_exists(segment));
  }
  EXPECT_FALSE(fs::exists(dir)) << dir;
  EXPECT_FALSE(segment_exists(segment));
}

TEST(PgCluster, SaysToRunInstallDepsWhenTheServerIsMissing) {
  try {
    pg_cluster c(pg_cluster::options{.bindir = "/nonexistent/postgresql/bin"});
    FAIL() << "started without binaries";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent/postgresql/bin"));
    EXPECT_THAT(e.what(), HasSubstr("scripts/install-deps"));
  }
}

}  // namespace
}  // namespace dsr::test
