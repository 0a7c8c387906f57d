#pragma once
// The daemon's own HTTP server run in-process on 127.0.0.1:0 with any handler: a loopback peer
// for client tests and the listener tests themselves.

#include "dsr/http/server.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace dsr::test {

class running_server {
 public:
  running_server(http::server_options o, http::handler& h) {
    o.listen = endpoint{"127.0.0.1", 0};
    o.handle_signals = false;
    o.io_threads = 2;
    auto s = http::make_server(o, h);
    EXPECT_TRUE(s) << s.error().detail;
    server_ = std::move(*s);
    thread_ = std::thread([this] { server_->run(); });
  }
  running_server(const running_server&) = delete;
  running_server& operator=(const running_server&) = delete;
  ~running_server() { stop_and_join(); }

  std::uint16_t port() const { return server_->local_endpoint(http::listener::public_)->port; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  void stop() { server_->stop(); }
  http::server& get() { return *server_; }
  void stop_and_join() {
    if (thread_.joinable()) {
      server_->stop();
      thread_.join();
    }
  }

 private:
  std::unique_ptr<http::server> server_;
  std::thread thread_;
};

}  // namespace dsr::test
