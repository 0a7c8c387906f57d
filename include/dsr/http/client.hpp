#pragma once
// An HTTP/1.1 client for the daemon's two peers (Exponea, MineOS): one base URL per client,
// keep-alive connections reused from a small pool, a deadline per call covering resolve, connect,
// TLS handshake, write and read, and a cap on the answer's size.
//
// TLS: https:// URLs get SNI, TLS 1.2 or newer, peer verification against the system CA store
// (or `ca_file`) and host-name verification. Plain http:// is refused unless the host is
// loopback (the configuration enforces the same rule).
//
// A pooled connection is checked for a peer close before it is reused.
//
// Thread safety: `send` may be called concurrently from any coroutine on the client's executor.

#include "dsr/common/error.hpp"
#include "dsr/http/body_source.hpp"
#include "dsr/http/message.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace dsr::http {

struct client_request {
  std::string method = "GET";
  std::string target;  // path and query, appended to the base URL's path
  std::vector<header_field> headers;
  std::string body;
  // Instead of `body`: a body read in pieces as it is sent (Content-Length = its size).
  std::shared_ptr<body_source> body_stream;
  // When set, a 2xx answer's body is written to this file (created mode 0600, truncated) instead
  // of `client_response::body`, up to `max_file_bytes` (0 = no limit): beyond it the call fails
  // with errc::upstream_too_large and the file is removed. Other answers are read into memory.
  std::filesystem::path response_file;
  std::uint64_t max_file_bytes = 0;
  // With a key (32 bytes): the file is written sealed (sealed_file.hpp, file id = the file's
  // name), so the answer is never on disk in the clear; read it with sealed_file_source.
  std::string response_key;
  // Safe to send twice (a read). Only such a request is re-sent on a fresh connection when a
  // reused one fails before any answer: for a write, that failure may follow a write that took
  // effect, and the caller must decide (journal, dedupe).
  bool idempotent = false;
};

struct client_response {
  unsigned status = 0;
  std::vector<header_field> headers;
  std::string body;  // empty when the body went to `response_file`
  bool body_in_file = false;

  std::optional<std::string_view> header(std::string_view name) const;
};

struct client_options {
  std::string base_url;  // scheme://host[:port][/path]
  std::chrono::milliseconds timeout{30000};
  std::string ca_file;  // "" = the system store
  std::size_t max_response_bytes = 64 * 1024 * 1024;
  std::size_t max_idle_connections = 16;
};

class client {
 public:
  virtual ~client() = default;
  // One request. A transport failure is a failure with errc::upstream_* (timeout, unreachable,
  // tls, protocol, too_large); any HTTP status is a response.
  virtual boost::asio::awaitable<result<client_response>> send(client_request req) = 0;
  // Connects (and completes the TLS handshake, verifying the certificate) without sending a
  // request: proves the URL is reachable and trusted, writes nothing.
  virtual boost::asio::awaitable<result<void>> probe() = 0;
  // The base URL's host, for messages.
  virtual const std::string& host() const = 0;
};

// Fails (errc::invalid_input / io_error) when the URL is not usable or the CA file cannot be read.
result<std::unique_ptr<client>> make_client(boost::asio::any_io_executor executor,
                                            const client_options& options);

}  // namespace dsr::http
