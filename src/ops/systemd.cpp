#include "dsr/ops/systemd.hpp"

#include <systemd/sd-daemon.h>

#include <string>

namespace dsr::ops {

void notify(std::string_view state) {
  sd_notify(0, std::string(state).c_str());
}

}  // namespace dsr::ops
