# The file length lint: no file under src/ (.cpp, .hpp, .h) holds more than 600 lines (issue 20),
# so that each reads as one subject; a longer one is split into cohesive files, with a private
# header beside them where they share a declaration (src/http/admission.hpp). Run by ctest
# (tests/lint/): it fails naming every file over the limit and its line count.
#
#   cmake -DDSR_LINT_ROOT=<tree holding src/> -P cmake/file_length_lint.cmake
#
# Lines are counted as `wc -l` counts them, plus an unterminated last line.
cmake_minimum_required(VERSION 3.25)

set(dsr_max_lines 600)

# The files still allowed over the limit: what is left to split, each named with why (none
# today). An entry whose file is at or under the limit (or gone) fails the lint too, so the list
# never outlives its debt: remove the entry in the change that splits the file.
set(dsr_long_files_allowed "")

if(NOT DEFINED DSR_LINT_ROOT)
  message(FATAL_ERROR "file length lint: pass -DDSR_LINT_ROOT=<source tree>")
endif()
get_filename_component(DSR_LINT_ROOT "${DSR_LINT_ROOT}" ABSOLUTE)
# Its own test (tests/lint/file_length_lint_test.cmake) passes a list of its own.
if(DEFINED DSR_LINT_ALLOWED)
  set(dsr_long_files_allowed "${DSR_LINT_ALLOWED}")
endif()

file(GLOB_RECURSE files RELATIVE "${DSR_LINT_ROOT}"
     "${DSR_LINT_ROOT}/src/*.cpp" "${DSR_LINT_ROOT}/src/*.hpp" "${DSR_LINT_ROOT}/src/*.h")
list(SORT files)

set(problems "")
foreach(f IN LISTS files)
  file(READ "${DSR_LINT_ROOT}/${f}" text)
  string(REGEX REPLACE "[^\n]" "" newlines "${text}")
  string(LENGTH "${newlines}" n)
  if(NOT text STREQUAL "" AND NOT text MATCHES "\n$")
    math(EXPR n "${n} + 1")
  endif()
  set(lines_${f} ${n})
  if(n GREATER dsr_max_lines AND NOT f IN_LIST dsr_long_files_allowed)
    string(CONCAT problem "${f}: ${n} lines, over the limit of ${dsr_max_lines}: split it into "
                          "cohesive files")
    list(APPEND problems "${problem}")
  endif()
endforeach()

foreach(f IN LISTS dsr_long_files_allowed)
  if(NOT DEFINED lines_${f})
    string(CONCAT problem "${f}: allowed over the limit in cmake/file_length_lint.cmake, but there "
                          "is no such file: remove it from the allowlist")
    list(APPEND problems "${problem}")
  elseif(NOT lines_${f} GREATER dsr_max_lines)
    string(CONCAT problem "${f}: ${lines_${f}} lines, within the limit now: remove it from the "
                          "allowlist in cmake/file_length_lint.cmake")
    list(APPEND problems "${problem}")
  endif()
endforeach()

if(problems)
  list(LENGTH problems n)
  string(REPLACE ";" "\n  " text "${problems}")
  message(FATAL_ERROR "file length lint: ${n} problem(s):\n  ${text}")
endif()
