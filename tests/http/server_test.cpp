#include "dsr/http/server.hpp"

#include "dsr/http/client.hpp"

#include "support/http_client.hpp"
#include "support/run_sync.hpp"
#include "support/temp_dir.hpp"
#include "support/test_pki.hpp"
#include "support/test_server.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace dsr::http {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Answers "METHOD TARGET BODY-SIZE"; requests to /hold wait until the test releases them.
class test_handler final : public handler {
 public:
  void handle(request req, responder done) override {
    if (req.target == "/throw") {
      throw std::runtime_error("a bug in a handler");
    }
    if (req.target == "/drop") {
      return;  // the responder is dropped without an answer (a store task that threw, say)
    }
    if (req.target == "/twice") {
      done(response{200, "text/plain", "first", {}});
      done(response{200, "text/plain", "second", {}});
      return;
    }
    if (req.target == "/hold") {
      const std::lock_guard lock(mutex_);
      held_.push_back(std::move(done));
      changed_.notify_all();
      return;
    }
    done(response{200,
                  "text/plain",
                  req.method + " " + req.target + " " + std::to_string(req.body.size()),
                  {}});
  }
  void wait_held(std::size_t n) {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(changed_.wait_for(lock, 10s, [&] { return held_.size() >= n; }));
  }
  void release_all() {
    std::vector<responder> held;
    {
      const std::lock_guard lock(mutex_);
      held.swap(held_);
    }
    for (auto& d : held) {
      d(response{200, "text/plain", "released", {}});
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<responder> held_;
};

using test::running_server;

server_options small_limits() {
  server_options o;
  o.max_body_bytes = 1024;
  o.read_timeout = 30s;  // long: a test passing within seconds proves the server did not wait
  o.idle_timeout = 30s;
  return o;
}

TEST(Server, AHandlerThatThrowsIsAnswered500AndTheServerKeepsServing) {
  test_handler h;
  running_server s(small_limits(), h);
  const auto r = test::request(s.port(), "GET", "/throw");
  EXPECT_EQ(r.status, 500);
  EXPECT_THAT(r.body, HasSubstr("internal error"));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("a bug in a handler")));  // no internals shown
  EXPECT_EQ(test::request(s.port(), "GET", "/after").status, 200);
}

TEST(Server, AHandlerThatDropsItsResponderIsAnswered500) {
  test_handler h;
  running_server s(small_limits(), h);
  EXPECT_EQ(test::request(s.port(), "GET", "/drop").status, 500);
  EXPECT_EQ(test::request(s.port(), "GET", "/after").status, 200);
}

TEST(Server, OnlyAHandlersFirstAnswerIsSent) {
  test_handler h;
  running_server s(small_limits(), h);
  test::connection c(s.port());
  ASSERT_TRUE(c.send(test::raw_request("GET", "/twice", "", {}, true)));
  const auto first = c.read_reply();
  EXPECT_EQ(first.body, "first");
  ASSERT_TRUE(c.send(test::raw_request("GET", "/next", "", {}, true)));
  EXPECT_EQ(c.read_reply().body, "GET /next 0");  // not "second"
}

TEST(Server, KeepAliveServesSeveralRequestsOnOneConnection) {
  test_handler h;
  running_server s(small_limits(), h);
  test::connection c(s.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(test::raw_request("POST", "/x", "abc", {}, true)));
    const auto r = c.read_reply();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "POST /x 3");
  }
}

TEST(Server, HeadersOver8KiBGet431) {
  test_handler h;
  running_server s(small_limits(), h);
  const auto r = test::request(s.port(), "GET", "/x", "", {{"X-Big", std::string(9000, 'a')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.header("content-type"), "application/problem+json");
  // Just under the limit passes.
  EXPECT_EQ(test::request(s.port(), "GET", "/x", "", {{"X-Big", std::string(7000, 'a')}}).status,
            200);
}

TEST(Server, DeclaredBodyOverTheLimitGets413WithoutBeingRead) {
  test_handler h;
  running_server s(small_limits(), h);
  test::connection c(s.port(), 5s);
  // Only the headers are sent: a server that tried to read 10 MiB first would never answer.
  ASSERT_TRUE(c.send("POST /x HTTP/1.1\r\nHost: l\r\nContent-Length: 10485760\r\n\r\n"));
  const auto r = c.read_reply();
  EXPECT_EQ(r.status, 413);
  EXPECT_THAT(r.body, HasSubstr("max_body_bytes"));
  EXPECT_TRUE(c.closed_by_peer(5s));
}

TEST(Server, ChunkedBodyCrossingTheLimitGets413) {
  test_handler h;
  running_server s(small_limits(), h);
  test::connection c(s.port(), 5s);
  std::string req = "POST /x HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    req += "200\r\n" + std::string(512, 'a') + "\r\n";
  }
  ASSERT_TRUE(c.send(req));
  EXPECT_EQ(c.read_reply().status, 413);
}

TEST(Server, BodyAtTheLimitIsDelivered) {
  test_handler h;
  running_server s(small_limits(), h);
  const auto r = test::request(s.port(), "POST", "/x", std::string(1024, 'b'));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /x 1024");
}

TEST(Server, ExpectContinueGets100BeforeTheBody) {
  test_handler h;
  running_server s(small_limits(), h);
  test::connection c(s.port(), 5s);
  ASSERT_TRUE(
      c.send("POST /x HTTP/1.1\r\nHost: l\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_THAT(c.read_some(5s), HasSubstr("HTTP/1.1 100 Continue"));
  ASSERT_TRUE(c.send("hi"));
  EXPECT_EQ(c.read_reply().body, "POST /x 2");
}

TEST(Server, MalformedRequestGets400) {
  test_handler h;
  running_server s(small_limits(), h);
  test::connection c(s.port(), 5s);
  ASSERT_TRUE(c.send("GARBAGE\x01 / NOTHTTP\r\n\r\n"));
  EXPECT_EQ(c.read_reply().status, 400);
}

TEST(Server, SlowClientIsDroppedWhileOthersAreServed) {
  test_handler h;
  auto o = small_limits();
  o.read_timeout = 1s;
  running_server s(o, h);
  std::atomic<bool> dropped{false};
  std::thread slow([&] {
    test::connection c(s.port());
    c.send("POST /x HTTP/1.1\r\nHo");
    // One byte every 300 ms; a server without a read deadline would wait forever.
    for (int i = 0; i < 40 && !dropped; ++i) {
      if (!c.send("s") || c.closed_by_peer(300ms)) {
        dropped = true;
      }
    }
  });
  int served = 0;
  for (int i = 0; i < 20 && !dropped; ++i) {
    served += test::request(s.port(), "GET", "/fast").status == 200 ? 1 : 0;
  }
  slow.join();
  EXPECT_TRUE(dropped);
  EXPECT_GT(served, 0);
}

// A freed connection slot is released asynchronously: the status of GET /x once it is (or the
// last one seen within 10 s).
int status_once_a_slot_frees(std::uint16_t port) {
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (status != 200 && std::chrono::steady_clock::now() < until) {
    status = test::request(port, "GET", "/x").status;
  }
  return status;
}

TEST(Server, ConnectionsBeyondTheLimitGet503) {
  test_handler h;
  auto o = small_limits();
  o.max_connections = 2;
  running_server s(o, h);
  test::connection a(s.port());
  test::connection b(s.port());
  for (auto* c : {&a, &b}) {
    ASSERT_TRUE(c->send(test::raw_request("GET", "/x", "", {}, true)));
    ASSERT_EQ(c->read_reply().status, 200);
  }
  const auto r = test::request(s.port(), "GET", "/x");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("retry-after"), "1");
  a.close();
  // Once a slot is free, new connections are served again (the slot frees asynchronously).
  EXPECT_EQ(status_once_a_slot_frees(s.port()), 200);
}

// A keep-alive connection that has been answered once: proof that the server holds it open.
test::connection served(std::uint16_t port, std::string_view from = "127.0.0.1") {
  test::connection c(port, 5s, from);
  EXPECT_TRUE(c.send(test::raw_request("GET", "/x", "", {}, true)));
  EXPECT_EQ(c.read_reply().status, 200);
  return c;
}

TEST(Server, PerClientCapRefusesTheNextConnectionFromThatAddressWhileOthersAreServed) {
  test_handler h;
  auto o = small_limits();
  o.max_connections_per_client = 2;
  running_server s(o, h);
  auto a = served(s.port());
  auto b = served(s.port());
  const auto refused = test::request(s.port(), "GET", "/x");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.header("retry-after"), "1");
  // Another address (Linux routes all of 127/8 to lo) still has its own room.
  auto other = served(s.port(), "127.0.0.2");
  a.close();
  // Once one of its connections closes, the address is served again (the count drops
  // asynchronously).
  EXPECT_EQ(status_once_a_slot_frees(s.port()), 200);
}

TEST(Server, NoPerClientCapLetsOneAddressUseTheWholeListener) {
  test_handler h;
  auto o = small_limits();
  o.max_connections = 4;
  o.max_connections_per_client = 0;  // behind a proxy: every connection comes from it
  running_server s(o, h);
  std::vector<test::connection> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(served(s.port()));
  }
  EXPECT_EQ(test::request(s.port(), "GET", "/x").status, 503);  // the listener's own limit
}

TEST(Server, TheAdminListenerKeepsItsOwnRoomWhenThePublicOneIsFull) {
  test_handler h;
  auto o = small_limits();
  o.max_connections = 2;
  o.max_connections_per_client = 0;
  o.admin_listen = endpoint{"127.0.0.1", 0};
  running_server s(o, h);
  const auto admin_port = s.get().local_endpoint(listener::admin)->port;
  auto a = served(s.port());
  auto b = served(s.port());
  EXPECT_EQ(test::request(s.port(), "GET", "/x").status, 503);
  auto c = served(admin_port);
  auto d = served(admin_port);
  // The admin listener's limit is its own too.
  EXPECT_EQ(test::request(admin_port, "GET", "/x").status, 503);
  // A full admin listener takes no room from the public one.
  a.close();
  EXPECT_EQ(status_once_a_slot_frees(s.port()), 200);
}

TEST(Server, ASilentConnectionIsClosedAfterTheFirstByteTimeoutButAKeepAliveOneWaitsIdleTimeout) {
  test_handler h;
  auto o = small_limits();  // idle_timeout 30 s
  o.first_byte_timeout = 1s;
  running_server s(o, h);
  auto established = served(s.port());
  test::connection silent(s.port());
  ASSERT_TRUE(silent.is_open());
  EXPECT_TRUE(silent.closed_by_peer(10s));
  // Idle for longer than first_byte_timeout by now, and twice as long again: still open.
  EXPECT_FALSE(established.closed_by_peer(2s));
  ASSERT_TRUE(established.send(test::raw_request("GET", "/again", "", {}, true)));
  EXPECT_EQ(established.read_reply().body, "GET /again 0");
}

TEST(Server, AStopDrainsBothListenersTogether) {
  test_handler h;
  auto o = small_limits();
  o.admin_listen = endpoint{"127.0.0.1", 0};
  running_server s(o, h);
  const auto admin_port = s.get().local_endpoint(listener::admin)->port;
  auto idle = served(s.port());
  test::connection silent(admin_port);
  test::connection busy(admin_port);
  ASSERT_TRUE(busy.send(test::raw_request("GET", "/hold", "", {}, true)));
  h.wait_held(1);

  s.stop();
  // Idle and silent connections on either listener close at once; the request in flight on the
  // admin listener keeps the stop waiting until it is answered.
  EXPECT_TRUE(idle.closed_by_peer(5s));
  EXPECT_TRUE(silent.closed_by_peer(5s));
  h.release_all();
  EXPECT_EQ(busy.read_reply().body, "released");
  s.stop_and_join();
}

TEST(Server, GracefulStopFinishesRequestsInFlightAndClosesIdleConnections) {
  test_handler h;
  running_server s(small_limits(), h);
  test::connection idle(s.port());
  ASSERT_TRUE(idle.send(test::raw_request("GET", "/x", "", {}, true)));
  ASSERT_EQ(idle.read_reply().status, 200);
  test::connection busy(s.port());
  ASSERT_TRUE(busy.send(test::raw_request("GET", "/hold", "", {}, true)));
  h.wait_held(1);

  s.stop();
  EXPECT_TRUE(idle.closed_by_peer(10s));
  test::connection late(s.port());
  EXPECT_FALSE(late.is_open() && late.send(test::raw_request("GET", "/x", "")) &&
               late.read_reply().status == 200);

  h.release_all();
  const auto r = busy.read_reply();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "released");
  EXPECT_EQ(r.header("connection"), "close");
  s.stop_and_join();  // returns: the drain completed
}

TEST(Server, EachConnectionHoldsTheDrainUntilItEnds) {
  // What a graceful stop waits for: the runtime counts these tokens (app::runtime::holder).
  test_handler h;
  auto o = small_limits();
  o.listen = endpoint{"127.0.0.1", 0};
  auto held = std::make_shared<std::atomic<int>>(0);
  o.hold = [held] {
    ++*held;
    return std::shared_ptr<void>(nullptr, [held](void*) { --*held; });
  };
  boost::asio::io_context ioc;
  auto s = make_server(ioc.get_executor(), o, h);
  ASSERT_TRUE(s) << s.error().detail;
  auto work = boost::asio::make_work_guard(ioc);
  std::thread loop([&ioc] { ioc.run(); });
  const auto port = (*s)->local_endpoint(listener::public_)->port;
  {
    auto a = served(port);
    auto b = served(port);
    EXPECT_EQ(held->load(), 2);
  }
  // Both closed: the tokens go as the server sees the connections end.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (held->load() != 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  EXPECT_EQ(held->load(), 0);
  ioc.stop();
  loop.join();
}

TEST(Server, BindErrorNamesTheAddress) {
  test_handler h;
  running_server first(small_limits(), h);
  server_options o = small_limits();
  o.listen = endpoint{"127.0.0.1", first.port()};
  boost::asio::io_context ioc;
  auto second = make_server(ioc.get_executor(), o, h);
  ASSERT_FALSE(second);
  EXPECT_THAT(second.error().detail, HasSubstr("127.0.0.1:" + std::to_string(first.port())));
}

// HTTPS on the public listener, with the test PKI (srv.pem names localhost and 127.0.0.1).
class ServerTls : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(test::make_test_pki(dir_.path())); }
  server_options tls_options(const std::string& cert = "srv") {
    auto o = small_limits();
    o.tls = tls_files{(dir_.path() / (cert + ".pem")).string(),
                      (dir_.path() / (cert + ".key")).string()};
    return o;
  }
  // A GET over HTTPS with the daemon's own client, verifying the certificate against the test
  // CA and the host name 127.0.0.1.
  result<client_response> get(std::uint16_t port) {
    boost::asio::io_context ioc;
    auto c = make_client(ioc.get_executor(), {"https://127.0.0.1:" + std::to_string(port), 5s,
                                              (dir_.path() / "ca.pem").string()});
    EXPECT_TRUE(c);
    return test::run_sync(ioc, (*c)->send({"GET", "/over-tls", {}, ""}));
  }
  test::temp_dir dir_;
  test_handler handler_;
};

TEST_F(ServerTls, ServesHttpsWithTheConfiguredCertificate) {
  running_server s(tls_options(), handler_);
  const auto r = get(s.port());
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /over-tls 0");
}

TEST_F(ServerTls, PlainHttpOnTheTlsPortGetsNoAnswer) {
  running_server s(tls_options(), handler_);
  test::connection c(s.port(), 3s);
  ASSERT_TRUE(c.is_open());
  c.send(test::raw_request("GET", "/plain", ""));
  const auto reply = c.read_reply();
  EXPECT_EQ(reply.status, 0);  // a TLS alert or a close, never an HTTP answer
}

TEST_F(ServerTls, AConnectionWithoutAClientHelloIsClosedAfterTheFirstByteTimeout) {
  auto o = tls_options();  // read_timeout 30 s: the handshake's own bound
  o.first_byte_timeout = 1s;
  running_server s(o, handler_);
  test::connection silent(s.port());
  ASSERT_TRUE(silent.is_open());
  EXPECT_TRUE(silent.closed_by_peer(10s));
  EXPECT_TRUE(get(s.port()));  // a client that speaks is still served
}

TEST_F(ServerTls, ConnectionsBeyondThePerClientCapAreClosed) {
  auto o = tls_options();
  o.max_connections_per_client = 1;
  running_server s(o, handler_);
  test::connection holder(s.port());  // holds the one slot until first_byte_timeout (5 s)
  ASSERT_TRUE(holder.is_open());
  // Refused without a handshake, so the daemon's client sees a failure, not an HTTP answer.
  const auto refused = get(s.port());
  ASSERT_FALSE(refused);
  holder.close();
  bool served_again = false;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!served_again && std::chrono::steady_clock::now() < until) {
    served_again = static_cast<bool>(get(s.port()));
  }
  EXPECT_TRUE(served_again);
}

TEST_F(ServerTls, ClientLimitedToTls11IsRefused) {
  running_server s(tls_options(), handler_);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(ctx, 0);  // the client would accept anything old
  SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(s.port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  EXPECT_NE(SSL_connect(ssl), 1);
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
}

TEST_F(ServerTls, KeyThatDoesNotMatchTheCertificateIsRefusedNamingBothFiles) {
  auto o = tls_options();
  o.tls->key_file = (dir_.path() / "other.key").string();
  boost::asio::io_context ioc;
  auto s = make_server(ioc.get_executor(), o, handler_);
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(errc::invalid_input));
  EXPECT_THAT(s.error().detail, HasSubstr("tls_key_file"));
  EXPECT_THAT(s.error().detail, HasSubstr("other.key"));
  EXPECT_THAT(s.error().detail, HasSubstr("srv.pem"));
}

TEST_F(ServerTls, MissingCertificateFileIsRefusedNamingIt) {
  auto o = tls_options();
  o.tls->cert_file = (dir_.path() / "absent.pem").string();
  boost::asio::io_context ioc;
  auto s = make_server(ioc.get_executor(), o, handler_);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().detail, HasSubstr("tls_cert_file"));
  EXPECT_THAT(s.error().detail, HasSubstr("absent.pem"));
}

TEST_F(ServerTls, ReloadServesARenewedCertificateToNewConnections) {
  // Start with a certificate for other.example: a client checking 127.0.0.1 refuses it.
  std::filesystem::copy_file(dir_.path() / "other.pem", dir_.path() / "live.pem");
  std::filesystem::copy_file(dir_.path() / "other.key", dir_.path() / "live.key");
  running_server s(tls_options("live"), handler_);
  const auto before = get(s.port());
  ASSERT_FALSE(before);
  EXPECT_TRUE(before.error().is(errc::upstream_tls)) << before.error().detail;

  const auto over = std::filesystem::copy_options::overwrite_existing;
  std::filesystem::copy_file(dir_.path() / "srv.pem", dir_.path() / "live.pem", over);
  std::filesystem::copy_file(dir_.path() / "srv.key", dir_.path() / "live.key", over);
  ASSERT_TRUE(s.get().reload_tls());
  const auto after = get(s.port());
  ASSERT_TRUE(after) << after.error().detail;
  EXPECT_EQ(after->status, 200);

  // A broken renewal leaves the working certificate in place.
  std::filesystem::resize_file(dir_.path() / "live.key", 10);
  EXPECT_FALSE(s.get().reload_tls());
  EXPECT_TRUE(get(s.port()));
}

}  // namespace
}  // namespace dsr::http
