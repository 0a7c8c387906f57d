#pragma once
// A userland TCP proxy for tests that cut a process off a server (a daemon off its PostgreSQL
// database) without touching the host's firewall: it listens on 127.0.0.1 on an ephemeral port and
// forwards every accepted connection to one target, bytes both ways, a half-close (EOF) passed on
// as a half-close.
//
// cut() is the network failing: every open connection is closed on both sides at once, abortively
// (an RST, data in flight is lost), so that both peers see an error on their next read or write
// instead of waiting for a TCP timeout; connections arriving until restore() are accepted and
// closed the same way, never forwarded, so a client's connect fails promptly too. restore() lets
// new connections through again; what cut() closed stays closed.
//
// Threading: one background thread runs every socket; the public calls may come from any other
// thread. cut() and restore() return once the proxy has acted on them (the closes done), so a test
// may assert on their effect right after. The destructor stops the thread and closes everything;
// it never throws.
//
// Errors: the constructor throws std::runtime_error naming what failed (resolving the target,
// opening the listener). A target that refuses or does not answer (10 s) only closes the
// connection that was being forwarded; nothing is reported but that close.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace dsr::test {

class tcp_proxy {
 public:
  // Resolves `target_host` (a name or an address) at once, then starts listening and forwarding.
  tcp_proxy(std::string target_host, std::uint16_t target_port);
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;
  ~tcp_proxy();

  // The port the proxy listens on, on 127.0.0.1.
  std::uint16_t port() const;

  // Closes every open connection, both sides, and turns away new ones until restore().
  void cut();
  // Forwards new connections again. No-op when not cut.
  void restore();

  // Connections open through the proxy now: accepted and forwarded (or still connecting to the
  // target), not yet closed. 0 right after cut().
  std::size_t connections() const;
  // Every connection accepted since construction, turned-away ones included.
  std::size_t accepted() const;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace dsr::test
