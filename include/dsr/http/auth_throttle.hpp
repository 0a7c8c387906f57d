#pragma once
// Failed authentication, counted per source address and answered ever more slowly.
//
// Every refused webhook signature or admin token goes through refuse(): it is logged (source
// address, never the body or the presented value), counted, and its 401 is sent after a delay
// that grows with the failures from that address in the last `forget_after`: none for the first
// `free_failures`, then `first_delay` doubling up to `max_delay`. Successful requests never go
// through here, so they are never slowed, even when they share the failing address (a TLS proxy
// in front makes every request come from one address). An address with no failure for
// `forget_after` starts over; at most `max_addresses` are remembered (the stalest go first).

#include "dsr/common/clock.hpp"
#include "dsr/http/message.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dsr::http {

struct auth_throttle_options {
  unsigned free_failures = 5;
  std::chrono::milliseconds first_delay{250};
  std::chrono::milliseconds max_delay{8000};
  std::chrono::milliseconds forget_after{std::chrono::minutes(15)};
  std::size_t max_addresses = 10000;
};

class auth_throttle {
 public:
  // Runs `fn` after `delay` (the daemon: an Asio timer; tests: right away, noting the delay).
  using scheduler = std::function<void(std::chrono::milliseconds delay, std::function<void()> fn)>;

  auth_throttle(std::shared_ptr<clock> clock, scheduler schedule, auth_throttle_options o = {});

  // Counts one failure from `remote` ("address:port"), logs `what` with the address, and answers
  // `res` through `done` after the address's delay.
  void refuse(std::string_view remote, std::string_view what, response res, responder done);

  // The delay the next failure from this address would get (for tests and the status page).
  std::chrono::milliseconds delay_for(std::string_view remote) const;
  // Failures since start, all addresses.
  std::uint64_t failures_total() const;

 private:
  struct entry {
    unsigned failures = 0;
    time_point last{};
  };
  std::chrono::milliseconds delay_after(unsigned failures) const;
  void evict_stalest();

  std::shared_ptr<clock> clock_;
  scheduler schedule_;
  auth_throttle_options options_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> by_address_;
  std::uint64_t total_ = 0;
};

// Through `throttle` when there is one, else logged and answered at once.
void refuse(auth_throttle* throttle, std::string_view remote, std::string_view what, response res,
            responder done);

// The address part of "address:port" (IPv4 or IPv6).
std::string_view address_of(std::string_view remote);

}  // namespace dsr::http
