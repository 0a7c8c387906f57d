#include "admission.hpp"

#include "dsr/common/log.hpp"

#include <spdlog/spdlog.h>

namespace dsr::http::detail {

std::optional<admission::seat> admission::admit(
    listener which, const std::optional<boost::asio::ip::address>& peer) {
  const auto slot = static_cast<std::size_t>(which);
  if (per_listener_[slot].load() >= max_connections_) {
    note_refusal(which, refusal::listener_full);
    return std::nullopt;
  }
  seat s{which, std::nullopt};
  if (peer && which == listener::public_ && max_per_client_ > 0) {
    bool full = false;
    {
      const std::lock_guard lock(mutex_);
      auto& open = per_client_[*peer];
      full = open >= max_per_client_;
      if (!full) {
        ++open;
      }
    }
    if (full) {
      note_refusal(which, refusal::client_full);
      return std::nullopt;
    }
    s.client = peer;
  }
  ++per_listener_[slot];
  return s;
}

void admission::release(const seat& s) {
  if (s.client) {
    const std::lock_guard lock(mutex_);
    const auto it = per_client_.find(*s.client);
    if (it != per_client_.end() && --it->second == 0) {
      per_client_.erase(it);
    }
  }
  --per_listener_[static_cast<std::size_t>(s.on)];
}

void admission::note_refusal(listener which, refusal why) {
  auto& state = refusals_[static_cast<std::size_t>(which)][static_cast<std::size_t>(why)];
  ++state.count;
  const auto now = std::chrono::steady_clock::now();
  if (state.warned && now - *state.warned < std::chrono::minutes(1)) {
    return;
  }
  static const auto log = subsystem_logger("http");
  const char* key = which == listener::public_ ? "listen" : "admin_listen";
  if (why == refusal::listener_full) {
    log->warn(
        "{} connection(s) on {} refused since the last warning: it holds max_connections ({}) "
        "open connections; raise [server] max_connections if this is real load",
        state.count, key, max_connections_);
  } else {
    log->warn(
        "{} connection(s) on {} refused since the last warning: one client address holds "
        "max_connections_per_client ({}) open connections; set [server] "
        "max_connections_per_client = 0 if a load balancer or proxy connects for every client",
        state.count, key, max_per_client_);
  }
  state.count = 0;
  state.warned = now;
}

}  // namespace dsr::http::detail
