#include "dsr/http/client.hpp"

#include "dsr/http/body_source.hpp"

#include "support/drain.hpp"
#include "support/run_sync.hpp"
#include "support/temp_dir.hpp"
#include "support/test_pki.hpp"
#include "support/test_server.hpp"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

namespace dsr::http {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Echoes what it received; /hold never answers until released; /big answers 2 MiB; /file
// streams `serve_file`; /missing answers 404.
class echo_handler final : public handler {
 public:
  void handle(request req, responder done) override {
    if (req.target == "/api/hold") {
      const std::lock_guard lock(mutex_);
      held_.push_back(std::move(done));
      return;
    }
    if (req.target == "/api/big") {
      done(response{200, "text/plain", std::string(2 << 20, 'x'), {}});
      return;
    }
    if (req.target == "/api/file") {
      response r{200, "application/json", "", {}, file_source(serve_file).value()};
      done(std::move(r));
      return;
    }
    if (req.target == "/api/missing") {
      done(response{404, "text/plain", "no such thing", {}});
      return;
    }
    remotes_.push_back(req.remote);
    const auto auth = req.header("Authorization").value_or("");
    done(response{201,
                  "application/json",
                  req.method + " " + req.target + " " + req.body + " auth=" + std::string(auth),
                  {{"X-Echo", "1"}}});
  }
  void release() {
    std::vector<responder> held;
    {
      const std::lock_guard lock(mutex_);
      held.swap(held_);
    }
    for (auto& d : held) {
      d(response{200, "text/plain", "late", {}});
    }
  }
  std::vector<std::string> remotes_;
  std::filesystem::path serve_file;  // what /api/file answers, streamed

 private:
  std::mutex mutex_;
  std::vector<responder> held_;
};

class ClientTest : public ::testing::Test {
 protected:
  ~ClientTest() override { handler_.release(); }

  std::unique_ptr<client> make(std::string base, std::chrono::milliseconds timeout = 5s,
                               std::string ca = "") {
    auto c = make_client(ioc_.get_executor(), {std::move(base), timeout, std::move(ca), 1 << 20});
    EXPECT_TRUE(c) << c.error().detail;
    return std::move(*c);
  }
  result<client_response> send(client& c, client_request r) {
    return test::run_sync(ioc_, c.send(std::move(r)));
  }

  boost::asio::io_context ioc_;
  echo_handler handler_;
  test::running_server server_{server_options{}, handler_};
};

TEST_F(ClientTest, SendsToTheBasePathAndReadsTheAnswer) {
  auto c = make(server_.url() + "/api/");
  client_request req{"POST", "/x", {{"Authorization", "Token t"}}, "{}"};
  const auto r = send(*c, req);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->status, 201u);
  EXPECT_EQ(r->body, "POST /api/x {} auth=Token t");
  EXPECT_EQ(r->header("x-echo"), "1");
}

TEST_F(ClientTest, ReusesItsConnection) {
  auto c = make(server_.url() + "/api");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(send(*c, {"GET", "/x", {}, ""}));
  }
  ASSERT_EQ(handler_.remotes_.size(), 3u);
  EXPECT_EQ(handler_.remotes_[0], handler_.remotes_[2]);
}

TEST_F(ClientTest, HungCallTimesOut) {
  auto c = make(server_.url() + "/api", 300ms);
  const auto r = send(*c, {"GET", "/hold", {}, ""});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::upstream_timeout)) << r.error().detail;
}

TEST_F(ClientTest, OversizedAnswerIsRefused) {
  auto c = make(server_.url() + "/api");
  const auto r = send(*c, {"GET", "/big", {}, ""});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::upstream_too_large));
}

TEST_F(ClientTest, AnswerStreamsToAFileBeyondTheInMemoryLimit) {
  test::temp_dir dir;
  std::string content;
  for (int i = 0; content.size() < (3u << 20); ++i) {  // 3 MiB, over the 1 MiB memory limit
    content += std::to_string(i) + ",";
  }
  handler_.serve_file = dir.write("served.json", content);
  auto c = make(server_.url() + "/api");
  client_request req{"GET", "/file", {}, ""};
  req.response_file = dir.path() / "got.json";
  req.max_file_bytes = 4u << 20;
  const auto r = send(*c, req);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_TRUE(r->body_in_file);
  EXPECT_TRUE(r->body.empty());
  std::ifstream in(req.response_file, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), content);
  EXPECT_EQ(std::filesystem::status(req.response_file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // The connection is still good for the next call.
  ASSERT_TRUE(send(*c, {"GET", "/x", {}, ""}));
}

TEST_F(ClientTest, AnswerToAFileWithAKeyIsNeverOnDiskInTheClear) {
  test::temp_dir dir;
  // Over two sealed chunks, with a canary at both ends.
  const std::string content =
      "{\"email\":\"canary@example.com\",\"pad\":\"" + std::string(150000, 'p') + "canary\"}";
  handler_.serve_file = dir.write("served.json", content);
  auto c = make(server_.url() + "/api");
  client_request req{"GET", "/file", {}, ""};
  req.response_file = dir.path() / "export-one-7.part";
  req.response_key = std::string(32, 'k');
  const auto r = send(*c, req);
  ASSERT_TRUE(r) << r.error().detail;
  std::ifstream in(req.response_file, std::ios::binary);
  const std::string on_disk(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(on_disk.find("canary"), std::string::npos);
  EXPECT_EQ(on_disk.find("ppppppppp"), std::string::npos);
  // Sealed chunk by chunk with the file's name as its id: it opens to the answer.
  auto source = sealed_file_source(req.response_file, req.response_key, "export-one-7.part");
  ASSERT_TRUE(source) << source.error().detail;
  const auto plain = test::drain(**source);
  ASSERT_TRUE(plain) << plain.error().detail;
  EXPECT_EQ(*plain, content);
}

TEST_F(ClientTest, AnswerToAFileOverItsLimitIsRefusedAndRemoved) {
  test::temp_dir dir;
  handler_.serve_file = dir.write("served.json", std::string(5000, 'x'));
  auto c = make(server_.url() + "/api");
  client_request req{"GET", "/file", {}, ""};
  req.response_file = dir.path() / "got.json";
  req.max_file_bytes = 4999;
  const auto r = send(*c, req);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::upstream_too_large));
  EXPECT_FALSE(std::filesystem::exists(req.response_file));
}

TEST_F(ClientTest, ErrorAnswerStaysInMemoryWhenAFileWasAsked) {
  test::temp_dir dir;
  auto c = make(server_.url() + "/api");
  client_request req{"GET", "/missing", {}, ""};
  req.response_file = dir.path() / "got.json";
  const auto r = send(*c, req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404u);
  EXPECT_FALSE(r->body_in_file);
  EXPECT_EQ(r->body, "no such thing");
  EXPECT_FALSE(std::filesystem::exists(req.response_file));
}

TEST_F(ClientTest, RequestBodyStreamsFromASource) {
  test::temp_dir dir;
  auto c = make(server_.url() + "/api");
  client_request req{"POST", "/x", {}, ""};
  req.body_stream = file_source(dir.write("data.json", "[1,2]"), "{\"data\":", "}").value();
  const auto r = send(*c, req);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->body, "POST /api/x {\"data\":[1,2]} auth=");
}

TEST_F(ClientTest, RefusedConnectionIsUnreachable) {
  std::string url;
  {
    echo_handler h;
    test::running_server gone(server_options{}, h);
    url = gone.url();
  }
  auto c = make(url);
  const auto r = send(*c, {"GET", "/x", {}, ""});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::upstream_unreachable)) << r.error().detail;
  EXPECT_THAT(r.error().detail, HasSubstr("127.0.0.1"));
}

TEST(Client, RefusesPlainHttpToANonLoopbackHostAndBadUrls) {
  boost::asio::io_context ioc;
  EXPECT_FALSE(make_client(ioc.get_executor(), {"http://api.exponea.com"}));
  EXPECT_FALSE(make_client(ioc.get_executor(), {"ftp://127.0.0.1"}));
  EXPECT_FALSE(make_client(ioc.get_executor(), {"not a url"}));
  EXPECT_FALSE(make_client(ioc.get_executor(), {"https://x", 1s, "/nonexistent/ca.pem"}));
  EXPECT_TRUE(make_client(ioc.get_executor(), {"https://api.exponea.com"}));
}

// A server that answers one request per connection and then closes, although it says
// keep-alive: the client's second call meets a stale pooled connection.
TEST(Client, StaleKeepAliveConnectionIsReplacedTransparently) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::listen(listener, 4);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread peer([listener] {
    for (int i = 0; i < 2; ++i) {
      const int fd = ::accept(listener, nullptr, nullptr);
      char buf[4096];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
          break;
        }
        got.append(buf, static_cast<std::size_t>(n));
      }
      const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
    }
  });
  boost::asio::io_context ioc;
  auto c = *make_client(ioc.get_executor(),
                        {"http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), 5s});
  const auto first = test::run_sync(ioc, c->send({"GET", "/a", {}, ""}));
  ASSERT_TRUE(first) << first.error().detail;
  http::client_request read{"GET", "/b", {}, ""};
  read.idempotent = true;
  const auto second = test::run_sync(ioc, c->send(read));
  ASSERT_TRUE(second) << second.error().detail;
  EXPECT_EQ(second->body, "ok");
  peer.join();
  ::close(listener);
}

// TLS: a test CA, a server certificate for localhost/127.0.0.1, and a one-shot OpenSSL server.
class TlsClient : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto d = dir_.path().string();
    ASSERT_TRUE(test::make_test_pki(dir_.path()));
    ctx_ = SSL_CTX_new(TLS_server_method());
    const std::string cert = d + "/" + certificate() + ".pem";
    const std::string key = d + "/" + certificate() + ".key";
    ASSERT_EQ(SSL_CTX_use_certificate_file(ctx_, cert.c_str(), SSL_FILETYPE_PEM), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM), 1);
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listener_, 4);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    server_ = std::thread([this] {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) {
        return;  // the client never came: do not block the test's teardown
      }
      const int fd = ::accept(listener_, nullptr, nullptr);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        char buf[4096];
        std::string got;
        while (got.find("\r\n\r\n") == std::string::npos) {
          const int n = SSL_read(ssl, buf, sizeof buf);
          if (n <= 0) {
            break;
          }
          got.append(buf, static_cast<std::size_t>(n));
        }
        const std::string reply =
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nsecure";
        SSL_write(ssl, reply.data(), static_cast<int>(reply.size()));
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      ::close(fd);
    });
  }
  void TearDown() override {
    server_.join();
    ::close(listener_);
    SSL_CTX_free(ctx_);
  }
  result<client_response> get(const std::string& host, const std::string& ca) {
    boost::asio::io_context ioc;
    auto c =
        make_client(ioc.get_executor(), {"https://" + host + ":" + std::to_string(port_), 5s, ca});
    EXPECT_TRUE(c);
    return test::run_sync(ioc, (*c)->send({"GET", "/", {}, ""}));
  }
  std::string ca() const { return (dir_.path() / "ca.pem").string(); }
  // Which certificate the server presents: "srv" names localhost and 127.0.0.1.
  virtual std::string certificate() const { return "srv"; }

  test::temp_dir dir_;
  SSL_CTX* ctx_ = nullptr;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread server_;
};

TEST_F(TlsClient, TrustedCertificateForTheHostPasses) {
  const auto r = get("localhost", ca());
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->body, "secure");
}

TEST_F(TlsClient, IpAddressInTheCertificatePasses) {
  const auto r = get("127.0.0.1", ca());
  ASSERT_TRUE(r) << r.error().detail;
}

TEST_F(TlsClient, UntrustedCertificateFails) {
  const auto r = get("localhost", "");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::upstream_tls)) << r.error().detail;
}

class TlsClientOtherHost : public TlsClient {
  std::string certificate() const override { return "other"; }
};

TEST_F(TlsClientOtherHost, CertificateForAnotherHostFails) {
  // Trusted CA, valid certificate, but for other.example, not the host we connect to.
  const auto r = get("localhost", ca());
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::upstream_tls)) << r.error().detail;
}

}  // namespace
}  // namespace dsr::http
