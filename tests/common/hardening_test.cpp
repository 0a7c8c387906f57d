#include "dsr/app/hardening.hpp"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace dsr::app {
namespace {

// In a child process, so that the test runner stays as it was: after harden_process, no core
// dump (not dumpable) and files created private whatever umask came before.
TEST(Hardening, TheProcessIsNotDumpableAndCreatesPrivateFiles) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::umask(022);
    if (::prctl(PR_GET_DUMPABLE) != 1) {
      ::_exit(10);  // the premise: a process starts dumpable
    }
    if (!harden_process().empty()) {
      ::_exit(11);
    }
    if (::prctl(PR_GET_DUMPABLE) != 0) {
      ::_exit(12);
    }
    const mode_t was = ::umask(0);
    ::_exit(was == 077 ? 0 : 13);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: started non-dumpable, 11: harden_process failed, "
                                       "12: still dumpable, 13: umask not 077";
}

}  // namespace
}  // namespace dsr::app
