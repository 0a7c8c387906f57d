# The include lint: every `#include "dsr/<component>/..."` under src/ and include/dsr/ must go to
# the file's own component or to one its row below allows. Run by the build (the `include_lint`
# target, which dsr_core waits for) and by ctest (tests/lint/). A file the table does not place,
# or an include of a component it does not know, is refused too, so a new directory gets a row.
#
#   cmake -DDSR_LINT_ROOT=<tree holding src/ and include/> -P cmake/include_lint.cmake
#
# Components, lowest first; a row may name only rows above it, so the table is the layering and
# it has no cycle. `main` is src/main.cpp. Namespaces follow the subject, directories the layer:
# ops/probe.hpp (checks against Exponea and MineOS) keeps namespace dsr::exponea, and
# config/request_types.hpp (a right's route through [requests]) namespace dsr::mineos.
cmake_minimum_required(VERSION 3.25)

set(dsr_layers
  "common:"
  "config: common"
  "credentials: common config"
  "http: common config"
  "exponea: common config credentials http"
  "jobs: common config exponea"
  "mineos: common config credentials http exponea jobs"
  "ops: common config credentials http exponea jobs mineos"
  "app: common config credentials http exponea jobs mineos ops"
  "sim: common config http ops app"
  "main: app common config")

if(NOT DEFINED DSR_LINT_ROOT)
  message(FATAL_ERROR "include lint: pass -DDSR_LINT_ROOT=<source tree>")
endif()

set(known "")
foreach(row IN LISTS dsr_layers)
  string(REGEX MATCH "^([a-z_]+):(.*)$" _ "${row}")
  set(name "${CMAKE_MATCH_1}")
  string(STRIP "${CMAKE_MATCH_2}" deps)
  separate_arguments(deps UNIX_COMMAND "${deps}")
  foreach(d IN LISTS deps)
    if(NOT d IN_LIST known)
      message(FATAL_ERROR "include lint: the table's row `${name}` names `${d}`, which is not a "
                          "row above it; the layers must be listed lowest first")
    endif()
  endforeach()
  list(APPEND known "${name}")
  set(allowed_${name} "${deps}")
endforeach()

file(GLOB_RECURSE files RELATIVE "${DSR_LINT_ROOT}"
     "${DSR_LINT_ROOT}/src/*.cpp" "${DSR_LINT_ROOT}/src/*.hpp" "${DSR_LINT_ROOT}/src/*.h"
     "${DSR_LINT_ROOT}/include/dsr/*.hpp" "${DSR_LINT_ROOT}/include/dsr/*.h")
list(SORT files)

set(problems "")
foreach(f IN LISTS files)
  if(f MATCHES "^src/([^/]+)/")
    set(comp "${CMAKE_MATCH_1}")
  elseif(f MATCHES "^include/dsr/([^/]+)/")
    set(comp "${CMAKE_MATCH_1}")
  elseif(f MATCHES "^src/main\\.cpp$")
    set(comp "main")
  else()
    string(CONCAT problem "${f}: not in any component: put it under src/<component>/ or "
                          "include/dsr/<component>/")
    list(APPEND problems "${problem}")
    continue()
  endif()
  if(NOT comp IN_LIST known)
    string(CONCAT problem "${f}: component `${comp}` has no row in the layer table of "
                          "cmake/include_lint.cmake: add one, below what it uses")
    list(APPEND problems "${problem}")
    continue()
  endif()
  file(STRINGS "${DSR_LINT_ROOT}/${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]dsr/")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "[<\"]dsr/([^/\">]+)/[^\">]*[\">]")
      list(APPEND problems "${f}: `${line}` does not name dsr/<component>/<header>")
      continue()
    endif()
    set(to "${CMAKE_MATCH_1}")
    string(STRIP "${line}" shown)
    if(to STREQUAL comp)
      continue()
    endif()
    if(NOT to IN_LIST known)
      list(APPEND problems "${f}: `${shown}`: no component `${to}` in the layer table")
    elseif(NOT to IN_LIST allowed_${comp})
      list(JOIN allowed_${comp} ", " may)
      if(may STREQUAL "")
        set(may "nothing")
      endif()
      string(CONCAT problem "${f}: `${shown}`: ${comp} may not include ${to} (${comp} uses only "
                            "${may}: the layer table in cmake/include_lint.cmake)")
      list(APPEND problems "${problem}")
    endif()
  endforeach()
endforeach()

if(problems)
  list(LENGTH problems n)
  string(REPLACE ";" "\n  " text "${problems}")
  message(FATAL_ERROR "include lint: ${n} include(s) against the layering:\n  ${text}")
endif()
