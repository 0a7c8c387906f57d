# ctest: the file length lint (cmake/file_length_lint.cmake) refuses a file under src/ over 600
# lines, naming it and its line count, holds its allowlist to the files still over the limit, and
# passes a tree that keeps to it.
#   cmake -DDSR_LINT=<cmake/file_length_lint.cmake> -DDSR_WORK=<scratch dir>
#         -P file_length_lint_test.cmake
cmake_minimum_required(VERSION 3.25)

# The text of a file of `n` lines, every third one empty (empty lines count too), the others
# holding what CMake lists trip on (semicolons, brackets, quotes).
function(text_of out n)
  set(text "")
  foreach(i RANGE 1 ${n})
    math(EXPR r "${i} % 3")
    if(r EQUAL 0)
      string(APPEND text "\n")
    else()
      string(APPEND text "int line_${i}[2] = {0}; // \"quoted\" ;\n")
    endif()
  endforeach()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

function(tree name)  # tree(<name> <path> <line count>...)
  set(root "${DSR_WORK}/${name}")
  file(REMOVE_RECURSE "${root}")
  file(MAKE_DIRECTORY "${root}/src")
  set(args ${ARGN})
  while(args)
    list(POP_FRONT args path n)
    text_of(text ${n})
    file(WRITE "${root}/${path}" "${text}")
  endwhile()
endfunction()

function(lint name allowed out_rc out_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DDSR_LINT_ROOT=${DSR_WORK}/${name}
                          "-DDSR_LINT_ALLOWED=${allowed}" -P ${DSR_LINT}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_rc} "${rc}" PARENT_SCOPE)
  set(${out_text} "${out}${err}" PARENT_SCOPE)
endfunction()

function(expect_passed name allowed)
  lint(${name} "${allowed}" rc text)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: the lint refused a tree it must pass:\n${text}")
  endif()
endfunction()

function(expect_refused name allowed)  # expect_refused(<name> <allowed> <text that must appear>...)
  lint(${name} "${allowed}" rc text)
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

# 600 lines is the limit, not over it; include/ and tests/ are not held to it.
tree(good "src/jobs/dispatcher.cpp" 600 "src/http/admission.hpp" 12 "include/dsr/jobs/store.hpp" 900
          "tests/jobs/dispatcher_test.cpp" 1500)
expect_passed(good "")

# One line over, in a .cpp and in a private header: each named with its count.
tree(long "src/jobs/dispatcher.cpp" 601 "src/http/admission.hpp" 1241 "src/sim/main.cpp" 91)
expect_refused(long ""
  "src/jobs/dispatcher.cpp: 601 lines, over the limit of 600"
  "src/http/admission.hpp: 1241 lines, over the limit of 600"
  "2 problem(s)")

# An unterminated last line counts.
tree(unterminated)
text_of(text 600)
file(WRITE "${DSR_WORK}/unterminated/src/app/daemon.cpp" "${text}int last = 0;")
expect_refused(unterminated "" "src/app/daemon.cpp: 601 lines")

# The allowlist lets its files be long, and only them.
tree(allowed "src/jobs/sqlite_engine.cpp" 956 "src/config/config.cpp" 672)
expect_refused(allowed "src/jobs/sqlite_engine.cpp" "src/config/config.cpp: 672 lines")
tree(allowed_only "src/jobs/sqlite_engine.cpp" 956)
expect_passed(allowed_only "src/jobs/sqlite_engine.cpp")

# An entry whose file was split, or is gone, must leave the list.
tree(split "src/jobs/sqlite_engine.cpp" 420)
expect_refused(split "src/jobs/sqlite_engine.cpp"
  "src/jobs/sqlite_engine.cpp: 420 lines, within the limit now: remove it from the allowlist")
tree(gone "src/jobs/job.cpp" 10)
expect_refused(gone "src/jobs/sqlite_engine.cpp"
  "src/jobs/sqlite_engine.cpp: allowed over the limit" "there is no such file")

message(STATUS "file length lint: refuses what it must, passes what it may")
