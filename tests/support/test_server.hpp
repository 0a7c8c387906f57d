#pragma once
// The daemon's own HTTP server run in-process on 127.0.0.1:0 with any handler, on a runtime of
// its own (two threads, no signals): a loopback peer for client tests and the listener tests
// themselves.

#include "dsr/app/runtime.hpp"
#include "dsr/http/server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace dsr::test {

class running_server {
 public:
  running_server(http::server_options o, http::handler& h,
                 std::chrono::milliseconds shutdown_grace = std::chrono::seconds(10))
      : runtime_(app::runtime_options{2, shutdown_grace, false, false}) {
    o.listen = endpoint{"127.0.0.1", 0};
    o.hold = runtime_.holder("connection");
    auto s = http::make_server(runtime_.executor(), o, h);
    EXPECT_TRUE(s) << s.error().detail;
    server_ = std::move(*s);
    runtime_.on_stop([s = server_.get()] { s->stop(); });
    thread_ = std::thread([this] { runtime_.run(); });
  }
  running_server(const running_server&) = delete;
  running_server& operator=(const running_server&) = delete;
  ~running_server() { stop_and_join(); }

  std::uint16_t port() const { return server_->local_endpoint(http::listener::public_)->port; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  // Begins the graceful stop, as SIGTERM would.
  void stop() { runtime_.stop(); }
  http::server& get() { return *server_; }
  void stop_and_join() {
    if (thread_.joinable()) {
      runtime_.stop();
      thread_.join();
    }
  }

 private:
  app::runtime runtime_;
  std::unique_ptr<http::server> server_;
  std::thread thread_;
};

}  // namespace dsr::test
