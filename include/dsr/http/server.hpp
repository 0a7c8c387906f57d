#pragma once
// The daemon's HTTP/1.1 listener(s): Boost.Beast over Asio coroutines, one coroutine and one
// strand per connection, keep-alive, bounded reads, and a graceful stop. It only accepts and
// serves: the threads, the signals and the wait for the drain belong to the process runtime
// (app::runtime) whose executor it is given.
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
// Stop (stop(), which the runtime calls when its stop begins): the acceptors close, idle
// connections close, requests in flight are read, handled and answered (with Connection: close).
// Each connection holds a token of `hold` while it is served, so that the runtime's stop waits
// for it. When nothing is in flight the event loop may end before the acceptors are closed: they
// close when the server is destroyed.

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
  // Held by each connection while it is served, so that a graceful stop waits for it
  // (app::runtime::holder). Empty: nothing waits.
  std::function<std::shared_ptr<void>()> hold;
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
  // Begins a graceful stop: no new connection, idle ones closed, the others answered with
  // Connection: close and ended. Thread-safe, idempotent.
  virtual void stop() = 0;
};

// Binds the listener(s) now, so that errors (address in use, permission) surface before the
// runtime runs, and accepts on `executor` from then on (once its io_context runs). `h` must
// outlive the server; the server must be destroyed before the executor's io_context.
result<std::unique_ptr<server>> make_server(boost::asio::any_io_executor executor,
                                            const server_options& options, handler& h);

}  // namespace dsr::http
