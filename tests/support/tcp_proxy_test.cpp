#include "support/tcp_proxy.hpp"

#include "support/pg_cluster.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

namespace dsr::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using pg_connection = std::unique_ptr<PGconn, decltype(&::PQfinish)>;

// The bound on every wait here: a proxy that neither forwards nor closes fails a test, never hangs
// it. No assertion depends on how long anything took.
constexpr std::chrono::seconds patience(10);

// The cluster of these tests: the shared one has no TCP listener. Started on first use, on the
// main thread (see pg_cluster.hpp), removed at exit.
pg_cluster& tcp_cluster() {
  static pg_cluster cluster(pg_cluster::options{.tcp = true});
  cluster.start();
  return cluster;
}

// With connect_timeout, a connection that is neither forwarded nor closed fails as "timeout
// expired" instead of hanging.
pg_connection pg_connect(const std::string& uri) {
  const auto conninfo = uri + "?connect_timeout=" + std::to_string(patience.count());
  return pg_connection(::PQconnectdb(conninfo.c_str()), &::PQfinish);
}

// What became of a query: answered (libpq's error, empty on success), or still unanswered after
// `patience`.
struct outcome {
  bool answered = false;
  std::string error;
};

outcome query(PGconn* conn, const char* sql) {
  if (::PQsendQuery(conn, sql) == 0) {
    return {true, ::PQerrorMessage(conn)};
  }
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (::PQisBusy(conn) != 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return {false, "no answer within " + std::to_string(patience.count()) + " s"};
    }
    pollfd p{::PQsocket(conn), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      return {false, std::string("poll: ") + std::strerror(errno)};
    }
    if (::PQconsumeInput(conn) == 0) {
      return {true, ::PQerrorMessage(conn)};
    }
  }
  std::string error;
  while (PGresult* r = ::PQgetResult(conn)) {
    const auto status = ::PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && error.empty()) {
      error = ::PQresultErrorMessage(r);
    }
    ::PQclear(r);
  }
  return {true, error};
}

std::string value(const std::string& uri, const std::string& sql) {
  const auto rows = pg_query(uri, sql);
  if (rows.size() != 1 || rows[0].size() != 1 || !rows[0][0]) {
    throw std::runtime_error(sql + ": not one non-null value");
  }
  return *rows[0][0];
}

class unique_fd {
 public:
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Blocking reads and writes on `fd` give up after `patience` (EAGAIN).
void bound_waits(int fd) {
  const timeval tv{static_cast<time_t>(patience.count()), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A connected socket, or the errno of the failed connect.
std::pair<unique_fd, int> dial(std::uint16_t port) {
  unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) {
    throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  }
  bound_waits(s.get());
  const auto a = loopback(port);
  const int err =
      ::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
  return {std::move(s), err};
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// What a socket received until its peer's EOF (error 0) or until a read failed (its errno: EAGAIN
// once `patience` has passed, ECONNRESET on an RST).
struct received {
  std::string bytes;
  int error = 0;
};

received read_until(int fd, std::size_t limit = std::string::npos) {
  received r;
  char buffer[16384];
  while (r.bytes.size() < limit) {
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      r.error = errno;
      break;
    }
    if (n == 0) {
      break;
    }
    r.bytes.append(buffer, static_cast<std::size_t>(n));
  }
  return r;
}

// A loopback server that sends back what it receives, one connection at a time, until its client
// half-closes or the connection fails; then it closes it and records how it ended.
class echo_server {
 public:
  echo_server() : listener_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    auto a = loopback(0);
    socklen_t len = sizeof a;
    if (listener_.get() < 0 || ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(listener_.get(), 8) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error(std::string("echo server: ") + std::strerror(errno));
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  echo_server(const echo_server&) = delete;
  echo_server& operator=(const echo_server&) = delete;
  ~echo_server() {
    // Wakes the accept() of serve() (Linux answers EINVAL).
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
  }

  std::uint16_t port() const { return port_; }

  // How connection `i` (0: the first) ended: 0 on its client's EOF, else the errno of the read or
  // write that failed (EAGAIN: nothing came for `patience`); nullopt while it has not ended, after
  // waiting up to `patience`.
  std::optional<int> end_of(std::size_t i) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, patience, [&] { return endings_.size() > i; })) {
      return std::nullopt;
    }
    return endings_[i];
  }

 private:
  void serve() {
    for (;;) {
      const int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0 && errno == EINTR) {
        continue;
      }
      if (c < 0) {
        return;
      }
      unique_fd conn(c);
      bound_waits(conn.get());
      char buffer[16384];
      int ending = 0;
      for (;;) {
        const auto n = ::recv(conn.get(), buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n <= 0 ||
            !send_all(conn.get(), std::string_view(buffer, static_cast<std::size_t>(n)))) {
          ending = n == 0 ? 0 : errno;
          break;
        }
      }
      std::lock_guard lock(mutex_);
      endings_.push_back(ending);
      changed_.notify_all();
    }
  }

  unique_fd listener_;
  std::uint16_t port_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<int> endings_;
  std::thread thread_;
};

std::string payload(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    s[i] = static_cast<char>((i * 7 + i / 251) % 256);
  }
  return s;
}

TEST(TcpProxy, ForwardsBytesBothWaysAndPassesOnTheClientsHalfClose) {
  echo_server echo;
  tcp_proxy proxy("127.0.0.1", echo.port());
  auto [client, err] = dial(proxy.port());
  ASSERT_EQ(err, 0) << std::strerror(err);

  // More than the socket buffers hold: the proxy has to keep reading while it writes.
  const auto sent = payload(4 << 20);
  std::thread writer([&, fd = client.get()] {
    if (send_all(fd, sent)) {
      ::shutdown(fd, SHUT_WR);
    }
  });
  const auto got = read_until(client.get());
  writer.join();

  // The echo server closes only on the EOF the proxy passed on, the client sees EOF only when the
  // proxy passes that close back.
  EXPECT_EQ(got.error, 0) << std::strerror(got.error);
  EXPECT_EQ(got.bytes.size(), sent.size());
  EXPECT_TRUE(got.bytes == sent) << "the bytes came back altered";
  EXPECT_EQ(echo.end_of(0), 0) << "the echo server did not see the client's EOF";
  EXPECT_EQ(proxy.accepted(), 1u);
}

TEST(TcpProxy, CutResetsAnOpenConnectionOnBothSidesAtOnce) {
  echo_server echo;
  tcp_proxy proxy("127.0.0.1", echo.port());
  auto [client, err] = dial(proxy.port());
  ASSERT_EQ(err, 0) << std::strerror(err);
  ASSERT_TRUE(send_all(client.get(), "ping"));
  ASSERT_EQ(read_until(client.get(), 4).bytes, "ping");
  EXPECT_EQ(proxy.connections(), 1u);

  proxy.cut();

  EXPECT_EQ(proxy.connections(), 0u);
  // ECONNRESET, not EAGAIN: the proxy said so, neither side waited for it.
  const auto got = read_until(client.get());
  EXPECT_EQ(got.error, ECONNRESET) << std::strerror(got.error);
  EXPECT_EQ(echo.end_of(0), ECONNRESET) << "the target's side was not reset";
}

TEST(TcpProxy, ClosesEverythingWhenDestroyed) {
  echo_server echo;
  auto proxy = std::make_unique<tcp_proxy>("127.0.0.1", echo.port());
  const auto port = proxy->port();
  auto [client, err] = dial(port);
  ASSERT_EQ(err, 0) << std::strerror(err);
  ASSERT_TRUE(send_all(client.get(), "ping"));
  ASSERT_EQ(read_until(client.get(), 4).bytes, "ping");

  proxy.reset();

  const auto got = read_until(client.get());
  EXPECT_EQ(got.error, ECONNRESET) << std::strerror(got.error);
  EXPECT_EQ(echo.end_of(0), ECONNRESET);
  EXPECT_EQ(dial(port).second, ECONNREFUSED);
}

TEST(TcpProxy, CarriesAPostgresSessionOverTcp) {
  auto& c = tcp_cluster();
  tcp_proxy proxy("127.0.0.1", c.port());
  const auto conn = pg_connect(c.tcp_uri("postgres", proxy.port()));
  ASSERT_EQ(::PQstatus(conn.get()), CONNECTION_OK) << ::PQerrorMessage(conn.get());

  const auto answer = query(conn.get(), "SELECT 1");
  EXPECT_TRUE(answer.answered);
  EXPECT_EQ(answer.error, "");
  EXPECT_EQ(proxy.connections(), 1u);
  EXPECT_GE(proxy.accepted(), 1u);
  // The server sees the proxy's loopback connection, not the unix socket.
  EXPECT_EQ(value(c.tcp_uri("postgres", proxy.port()), "SELECT inet_client_addr()::text"),
            "127.0.0.1/32");
}

TEST(TcpProxy, CutFailsAnOpenSessionsNextQuery) {
  auto& c = tcp_cluster();
  tcp_proxy proxy("127.0.0.1", c.port());
  const auto conn = pg_connect(c.tcp_uri("postgres", proxy.port()));
  ASSERT_EQ(::PQstatus(conn.get()), CONNECTION_OK) << ::PQerrorMessage(conn.get());
  ASSERT_EQ(query(conn.get(), "SELECT 1").error, "");

  proxy.cut();

  const auto answer = query(conn.get(), "SELECT 1");
  EXPECT_TRUE(answer.answered) << answer.error << ": the cut left the session open";
  EXPECT_NE(answer.error, "");
  EXPECT_EQ(::PQstatus(conn.get()), CONNECTION_BAD);
}

TEST(TcpProxy, CutTurnsAwayNewSessionsUntilRestored) {
  auto& c = tcp_cluster();
  tcp_proxy proxy("127.0.0.1", c.port());
  const auto uri = c.tcp_uri("postgres", proxy.port());
  proxy.cut();

  const auto turned_away = pg_connect(uri);
  EXPECT_NE(::PQstatus(turned_away.get()), CONNECTION_OK);
  // Closed by the proxy, not left hanging until connect_timeout.
  EXPECT_THAT(::PQerrorMessage(turned_away.get()), Not(HasSubstr("timeout")));
  const auto after_cut = proxy.accepted();
  EXPECT_GE(after_cut, 1u) << "the connection never reached the proxy";
  EXPECT_EQ(proxy.connections(), 0u);

  proxy.restore();

  const auto conn = pg_connect(uri);
  ASSERT_EQ(::PQstatus(conn.get()), CONNECTION_OK) << ::PQerrorMessage(conn.get());
  EXPECT_EQ(query(conn.get(), "SELECT 1").error, "");
  EXPECT_GT(proxy.accepted(), after_cut);
  EXPECT_EQ(proxy.connections(), 1u);
}

TEST(PgClusterTcp, ListensOnLoopbackTcpOnlyWhenAsked) {
  auto& c = tcp_cluster();
  EXPECT_EQ(c.tcp_uri("a db", 5432), "postgresql://postgres@127.0.0.1:5432/a%20db");
  EXPECT_EQ(value(c.uri(), "SHOW listen_addresses"), "127.0.0.1");
  EXPECT_EQ(value(c.tcp_uri("postgres", c.port()), "SELECT inet_client_addr()::text"),
            "127.0.0.1/32");

  auto& plain = pg_cluster::shared();
  const auto refused = pg_connect(plain.tcp_uri("postgres", plain.port()));
  EXPECT_NE(::PQstatus(refused.get()), CONNECTION_OK);
  EXPECT_THAT(::PQerrorMessage(refused.get()), HasSubstr("Connection refused"));
}

}  // namespace
}  // namespace dsr::test
