#include "dsr/http/server.hpp"

#include "support/http_client.hpp"
#include "support/test_server.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <thread>

namespace dsr::http {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Answers "METHOD TARGET BODY-SIZE"; requests to /hold wait until the test releases them.
class test_handler final : public handler {
 public:
  void handle(request req, responder done) override {
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
  o.shutdown_grace = 10s;
  return o;
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
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (status != 200 && std::chrono::steady_clock::now() < until) {
    status = test::request(s.port(), "GET", "/x").status;
  }
  EXPECT_EQ(status, 200);
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

TEST(Server, ASignalBetweenBindAndRunStopsGracefullyInsteadOfKilling) {
  // The daemon logs "listening" and sends READY=1 before run(): a SIGTERM (or SIGHUP) arriving
  // then must wait for run(), not take the default action and kill the process.
  test_handler h;
  auto o = small_limits();
  o.listen = endpoint{"127.0.0.1", 0};
  int reloads = 0;
  o.on_reload = [&reloads] { ++reloads; };
  auto s = make_server(o, h);
  ASSERT_TRUE(s) << s.error().detail;
  ::raise(SIGHUP);
  ::raise(SIGTERM);
  (*s)->run();  // returns: the SIGTERM began a graceful stop
  EXPECT_EQ(reloads, 1);
}

TEST(Server, BindErrorNamesTheAddress) {
  test_handler h;
  running_server first(small_limits(), h);
  server_options o = small_limits();
  o.listen = endpoint{"127.0.0.1", first.port()};
  auto second = make_server(o, h);
  ASSERT_FALSE(second);
  EXPECT_THAT(second.error().detail, HasSubstr("127.0.0.1:" + std::to_string(first.port())));
}

}  // namespace
}  // namespace dsr::http
