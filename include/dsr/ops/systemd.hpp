#pragma once
// systemd's notify protocol (Type=notify). A no-op when not started by systemd ($NOTIFY_SOCKET
// unset).

#include <string_view>

namespace dsr::ops {

// Sends e.g. "READY=1", "STOPPING=1". Errors are ignored: notification is best effort.
void notify(std::string_view state);

}  // namespace dsr::ops
