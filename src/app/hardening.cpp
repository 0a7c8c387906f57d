#include "dsr/app/hardening.hpp"

#include <sys/prctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace dsr::app {

std::vector<std::string> harden_process() {
  std::vector<std::string> problems;
  ::umask(077);
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    problems.push_back(std::string("cannot make the process non-dumpable (prctl "
                                   "PR_SET_DUMPABLE): ") +
                       std::strerror(errno));
  }
  return problems;
}

}  // namespace dsr::app
