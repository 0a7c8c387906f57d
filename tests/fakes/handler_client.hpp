#pragma once
// An http::client that hands each request to an in-process handler (usually the Exponea
// simulator) and returns its answer: the real API code over a fake transport, no socket. A
// handler answer with status 0 (dropped connection) becomes errc::upstream_unreachable. Streamed
// request bodies and answers saved to a file behave as over a socket.

#include "dsr/http/client.hpp"
#include "support/drain.hpp"

#include <fstream>

namespace dsr::test {

class handler_client final : public http::client {
 public:
  explicit handler_client(http::handler& h) : handler_(h) {}

  boost::asio::awaitable<result<http::client_response>> send(http::client_request req) override {
    http::request r;
    r.method = req.method;
    r.target = req.target;
    r.headers = req.headers;
    r.body = req.body;
    if (req.body_stream) {
      auto body = drain(*req.body_stream);
      if (!body) {
        co_return body.error();
      }
      r.body = std::move(*body);
    }
    r.remote = "127.0.0.1:1";
    std::optional<http::response> answer;
    handler_.handle(std::move(r), [&](http::response res) { answer = std::move(res); });
    if (!answer || answer->status == 0) {
      co_return make_failure(errc::upstream_unreachable, "connection dropped by the peer");
    }
    http::client_response out;
    out.status = answer->status;
    out.headers = answer->headers;
    out.body = answer->body;
    if (out.status >= 200 && out.status < 300 && !req.response_file.empty()) {
      if (req.max_file_bytes != 0 && out.body.size() > req.max_file_bytes) {
        co_return make_failure(errc::upstream_too_large, "answer larger than the limit");
      }
      std::ofstream file(req.response_file, std::ios::binary | std::ios::trunc);
      file << out.body;
      out.body.clear();
      out.body_in_file = true;
    }
    co_return out;
  }
  boost::asio::awaitable<result<void>> probe() override { co_return result<void>{}; }
  const std::string& host() const override { return host_; }

 private:
  http::handler& handler_;
  std::string host_ = "in-process";
};

}  // namespace dsr::test
