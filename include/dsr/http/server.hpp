#pragma once
// The daemon's HTTP/1.1 listener(s): Boost.Beast over Asio coroutines, one coroutine and one
// strand per connection, keep-alive, bounded reads, and a graceful stop.
//
// Limits: headers over header_limit bytes get 431; a body over max_body_bytes gets 413 without
// being read (declared by Content-Length) or as soon as it crosses the limit (chunked); the whole
// request must arrive within read_timeout or the connection is dropped; a new connection that
// sends nothing within first_byte_timeout is closed, a keep-alive one idle between requests after
// idle_timeout.
//
// Refusals: each listener holds at most max_connections connections of its own, so a flood on
// one never leaves the other without room; the public listener also holds at most
// max_connections_per_client from one client address. A connection beyond either limit is
// answered 503 with Retry-After and closed (over TLS: closed, as a handshake is what an
// overloaded server cannot afford), and a warning says so at most once a minute per listener and
// reason, without the client's address.
//
// Stop (stop(), SIGTERM or SIGINT): the acceptors close, idle connections close, requests in
// flight are read, handled and answered (with Connection: close), then run() returns; after
// shutdown_grace whatever is left is abandoned. A second signal stops at once.

#include "dsr/common/error.hpp"
#include "dsr/config/config.hpp"
#include "dsr/http/message.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace dsr::http {

// HTTPS on the public listener: a PEM certificate chain (leaf first) and its private key.
struct tls_files {
  std::string cert_file;
  std::string key_file;
};

struct server_options {
  endpoint listen;
  // Set: the public listener speaks TLS 1.2+ only (ECDHE with AES-GCM or ChaCha20-Poly1305 for
  // 1.2; every TLS 1.3 suite). The admin listener stays plain HTTP (keep it on loopback).
  std::optional<tls_files> tls;
  std::optional<endpoint> admin_listen;
  std::uint64_t max_body_bytes = 1048576;
  std::uint64_t max_connections = 1024;  // per listener
  // On the public listener, from one address (IPv4, or one IPv6 address). 0: no cap (behind a
  // proxy every connection comes from the proxy's few addresses).
  std::uint64_t max_connections_per_client = 256;
  std::size_t header_limit = 8192;
  std::chrono::milliseconds first_byte_timeout{5000};  // a new connection, until it sends a byte
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds idle_timeout{30000};  // a keep-alive connection between requests
  std::chrono::milliseconds shutdown_grace{20000};
  unsigned io_threads = 0;  // 0: one per core
  bool handle_signals = true;
  std::function<void()> on_stopping;  // called once when a stop begins (systemd STOPPING=1)
  // With handle_signals: SIGHUP calls this (on the server's control strand), else it is ignored.
  std::function<void()> on_reload;
};

class server {
 public:
  virtual ~server() = default;
  // The bound address of a listener (useful with port 0). nullopt for an admin listener that is
  // not configured.
  virtual std::optional<endpoint> local_endpoint(listener which) const = 0;
  // Reads the TLS certificate and key again (a renewed certificate): new connections use them,
  // open ones keep theirs. On failure the old ones stay in use. No-op without TLS. Thread-safe.
  virtual result<void> reload_tls() = 0;
  // Serves until stopped and drained. Call once.
  virtual void run() = 0;
  // Begins a graceful stop. Thread-safe, idempotent.
  virtual void stop() = 0;
  // Work a graceful stop waits for (a running job), like a request in flight: the stop finishes
  // once every connection and every hold is gone, or when shutdown_grace is over. Release by
  // dropping the token. Thread-safe.
  virtual std::shared_ptr<void> hold() = 0;
  // The io_context the server runs: other components (the dispatcher, the Exponea client) run
  // their coroutines on the same threads.
  virtual boost::asio::any_io_executor executor() = 0;
};

// Binds the listener(s) now, so that errors (address in use, permission) surface before run().
// `h` must outlive the server.
result<std::unique_ptr<server>> make_server(const server_options& options, handler& h);

}  // namespace dsr::http
