#pragma once
// systemd's notify protocol (Type=notify). A no-op when not started by systemd ($NOTIFY_SOCKET
// unset).

#include <chrono>
#include <optional>
#include <string_view>

namespace dsr::ops {

// Sends e.g. "READY=1", "STOPPING=1". Errors are ignored: notification is best effort.
void notify(std::string_view state);

// WatchdogSec= as systemd hands it to this process (WATCHDOG_USEC, WATCHDOG_PID): nullopt when
// no watchdog is asked for. WATCHDOG=1 must then come more often than this.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace dsr::ops
