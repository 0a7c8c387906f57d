#include "dsr/http/auth_throttle.hpp"

#include "dsr/common/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

namespace dsr::http {
namespace {

std::shared_ptr<spdlog::logger> log() {
  static const auto logger = subsystem_logger("auth");
  return logger;
}

}  // namespace

void refuse(auth_throttle* throttle, std::string_view remote, std::string_view what, response res,
            responder done) {
  if (throttle != nullptr) {
    throttle->refuse(remote, what, std::move(res), std::move(done));
    return;
  }
  log()->warn("{} from {}", what, remote);
  done(std::move(res));
}

std::string_view address_of(std::string_view remote) {
  const auto colon = remote.rfind(':');
  return colon == std::string_view::npos ? remote : remote.substr(0, colon);
}

auth_throttle::auth_throttle(std::shared_ptr<clock> clock, scheduler schedule,
                             auth_throttle_options o)
    : clock_(std::move(clock)), schedule_(std::move(schedule)), options_(o) {}

std::chrono::milliseconds auth_throttle::delay_after(unsigned failures) const {
  if (failures <= options_.free_failures) {
    return std::chrono::milliseconds(0);
  }
  const unsigned doublings = std::min(failures - options_.free_failures - 1, 20u);
  const std::chrono::milliseconds grown = options_.first_delay * (std::int64_t{1} << doublings);
  return std::min(options_.max_delay, grown);
}

void auth_throttle::evict_stalest() {
  const auto now = clock_->now();
  std::erase_if(by_address_,
                [&](const auto& kv) { return now - kv.second.last >= options_.forget_after; });
  if (by_address_.size() < options_.max_addresses) {
    return;
  }
  const auto stalest =
      std::min_element(by_address_.begin(), by_address_.end(),
                       [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
  by_address_.erase(stalest);
}

void auth_throttle::refuse(std::string_view remote, std::string_view what, response res,
                           responder done) {
  const std::string address(address_of(remote));
  unsigned failures = 0;
  {
    const std::lock_guard lock(mutex_);
    ++total_;
    const auto now = clock_->now();
    auto it = by_address_.find(address);
    if (it == by_address_.end()) {
      if (by_address_.size() >= options_.max_addresses) {
        evict_stalest();
      }
      it = by_address_.emplace(address, entry{}).first;
    } else if (now - it->second.last >= options_.forget_after) {
      it->second.failures = 0;
    }
    failures = ++it->second.failures;
    it->second.last = now;
  }
  const auto delay = delay_after(failures);
  // Every failure up to the free ones, then only at powers of two: a flood does not flood the log.
  if (failures <= options_.free_failures || std::has_single_bit(failures)) {
    if (delay.count() > 0) {
      log()->warn("{} from {} ({} failures from {}; answering after {} ms)", what, remote, failures,
                  address, delay.count());
    } else {
      log()->warn("{} from {}", what, remote);
    }
  }
  if (delay.count() == 0) {
    done(std::move(res));
    return;
  }
  schedule_(delay,
            [res = std::move(res), done = std::move(done)]() mutable { done(std::move(res)); });
}

std::chrono::milliseconds auth_throttle::delay_for(std::string_view remote) const {
  const std::lock_guard lock(mutex_);
  const auto it = by_address_.find(std::string(address_of(remote)));
  if (it == by_address_.end() || clock_->now() - it->second.last >= options_.forget_after) {
    return delay_after(1);
  }
  return delay_after(it->second.failures + 1);
}

std::uint64_t auth_throttle::failures_total() const {
  const std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace dsr::http
