# ctest: the include lint (cmake/include_lint.cmake) refuses an include against the layering,
# naming the file and the rule, and passes a tree that keeps to it.
#   cmake -DDSR_LINT=<cmake/include_lint.cmake> -DDSR_WORK=<scratch dir> -P include_lint_test.cmake
cmake_minimum_required(VERSION 3.25)

function(tree name)  # tree(<name> <path> <content> [<path> <content>]...)
  set(root "${DSR_WORK}/${name}")
  file(REMOVE_RECURSE "${root}")
  set(args ${ARGN})
  while(args)
    list(POP_FRONT args path content)
    file(WRITE "${root}/${path}" "${content}\n")
  endwhile()
endfunction()

function(lint name out_rc out_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DDSR_LINT_ROOT=${DSR_WORK}/${name} -P ${DSR_LINT}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_rc} "${rc}" PARENT_SCOPE)
  set(${out_text} "${out}${err}" PARENT_SCOPE)
endfunction()

function(expect_refused name)  # expect_refused(<name> <text that must appear>...)
  lint(${name} rc text)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${name}: the lint passed a tree it must refuse")
  endif()
  foreach(want IN LISTS ARGN)
    string(FIND "${text}" "${want}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${name}: the lint's answer does not say \"${want}\":\n${text}")
    endif()
  endforeach()
endfunction()

# Downward and same-component includes pass.
tree(good
  "include/dsr/common/clock.hpp" "#pragma once"
  "include/dsr/jobs/job.hpp" "#include \"dsr/common/clock.hpp\""
  "src/jobs/job.cpp" "#include \"dsr/jobs/job.hpp\"\n#include <dsr/common/clock.hpp>"
  "include/dsr/ops/metrics.hpp" "#include \"dsr/jobs/job.hpp\""
  "src/main.cpp" "#include \"dsr/app/daemon.hpp\"")
lint(good rc text)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "good: the lint refused a layered tree:\n${text}")
endif()

# A lower layer reaching up (the jobs -> ops include this lint was written against).
tree(upward
  "include/dsr/common/clock.hpp" "#pragma once"
  "src/jobs/dispatcher.cpp"
  "#include \"dsr/common/clock.hpp\"\n#include \"dsr/ops/metrics.hpp\"")
expect_refused(upward "src/jobs/dispatcher.cpp" "#include \"dsr/ops/metrics.hpp\""
               "jobs may not include ops")

# The same in a header, with angle brackets.
tree(upward_header "include/dsr/config/config.hpp" "#include <dsr/mineos/webhook.hpp>")
expect_refused(upward_header "include/dsr/config/config.hpp" "config may not include mineos")

# Two siblings: the simulator is never part of the daemon.
tree(sibling "src/app/daemon.cpp" "#include \"dsr/sim/exponea_sim.hpp\"")
expect_refused(sibling "src/app/daemon.cpp" "app may not include sim")

# A component the table does not place, and an include of one.
tree(unknown
  "src/storage/pg.cpp" "#include \"dsr/jobs/store.hpp\""
  "src/jobs/store.cpp" "#include \"dsr/storage/pg.hpp\"")
expect_refused(unknown "src/storage/pg.cpp: component `storage` has no row"
               "src/jobs/store.cpp: `#include \"dsr/storage/pg.hpp\"`: no component `storage`")

message(STATUS "include lint: refuses what it must, passes what it may")
