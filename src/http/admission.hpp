#pragma once
// Which connections a listener takes: each listener holds at most max_connections of its own, so
// that a flood on one never leaves the other without room; the public listener also holds at most
// max_connections_per_client (0: no cap) from one client address. A refusal is counted, and a
// warning per listener and reason says so at most once a minute, with the number refused since
// the last one and never the client's address (it may be personal data). Internal to the server.
//
// Thread safety: admit() is called from one strand at a time (the accept loops' control strand);
// release() from any thread.

#include "dsr/http/message.hpp"

#include <boost/asio/ip/address.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

namespace dsr::http::detail {

class admission {
 public:
  // An admitted connection's place, given back by release() when it ends.
  struct seat {
    listener on;
    std::optional<boost::asio::ip::address> client;  // set: counted against its address's cap
  };

  admission(std::uint64_t max_connections, std::uint64_t max_connections_per_client)
      : max_connections_(max_connections), max_per_client_(max_connections_per_client) {}

  // A seat for a new connection on `which` from `peer` (nullopt: its address is unknown), or
  // nullopt when it is refused.
  std::optional<seat> admit(listener which, const std::optional<boost::asio::ip::address>& peer);
  void release(const seat& s);

 private:
  enum class refusal { listener_full, client_full };
  void note_refusal(listener which, refusal why);

  std::uint64_t max_connections_;
  std::uint64_t max_per_client_;
  std::array<std::atomic<std::uint64_t>, 2> per_listener_{};  // by listener (public_, admin)
  std::mutex mutex_;
  std::map<boost::asio::ip::address, std::uint64_t> per_client_;  // under mutex_; public listener
  struct refusal_state {
    std::uint64_t count = 0;
    std::optional<std::chrono::steady_clock::time_point> warned;
  };
  std::array<std::array<refusal_state, 2>, 2> refusals_{};  // [listener][refusal], in admit()
};

}  // namespace dsr::http::detail
