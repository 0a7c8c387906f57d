#pragma once
// What every dsr-connector process does first (contract: nothing leaked, nothing changed outside
// its own directories):
//  - umask(077): the store, its WAL and SHM, exports and scratch files are created 0600 and
//    folders 0700 whatever umask the shell or service manager left (outside systemd it is often
//    022, which made the store 0644);
//  - prctl(PR_SET_DUMPABLE, 0): no core file and no ptrace attach by the same user, so the secrets
//    and personal data in memory never land on disk in a crash. (The unit's LimitCORE=0 adds the
//    same for the service; a core-size limit alone can be raised by the process.)
// Returns the problems it met, each naming what could not be set (empty when all went well).

#include <string>
#include <vector>

namespace dsr::app {

std::vector<std::string> harden_process();

}  // namespace dsr::app
