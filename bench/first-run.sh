#!/usr/bin/env bash
# The first run as a new user has it: a fresh clone of this repository's HEAD in a private
# directory, then `make run`, timed until the daemon logs "listening" (READY). Then Ctrl-C (SIGINT
# to make's process group) and a check that nothing test-only was compiled.
#
#   bench/first-run.sh [out-dir]
#
# Prints the seconds to listening, the CPU seconds the build took (user + system of every
# compiler), and the build type. `MAKE_ARGS` passes variables to make (e.g. RUN_BUILD_TYPE=
# RelWithDebInfo to compare). Needs ports 8080, 8081 and 8090 free (config/dev.toml). The
# packages must already be installed for the "dependencies installed" figure; on a bare machine
# the same script includes `scripts/install-deps run`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out=${1:-${OUT:-}}
work=$(mktemp -d)
pgid=
cleanup() {
  if [ -n "$pgid" ]; then kill -INT -- "-$pgid" 2>/dev/null || true; sleep 1; kill -KILL -- "-$pgid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

git clone -q "$repo" "$work/src"
cd "$work/src"
log="$work/make-run.log"
start=$(date +%s.%N)
# Time the whole make (its children's CPU is counted when it exits: read from /proc below).
setsid bash -c "exec make run ${MAKE_ARGS:-} > '$log' 2>&1" &
pgid=$!
ready=
for _ in $(seq 36000); do
  if grep -q "listening on http://127.0.0.1:8080" "$log" 2>/dev/null; then
    ready=$(date +%s.%N)
    break
  fi
  if ! kill -0 "$pgid" 2>/dev/null; then
    cat "$log" >&2
    echo "first-run: make run ended before the daemon listened" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$ready" ] || { echo "first-run: not listening after an hour" >&2; exit 1; }
seconds=$(echo "$ready - $start" | bc)
build_type=$(grep -oP '^CMAKE_BUILD_TYPE:STRING=\K.*' build/CMakeCache.txt)
test_objects=$(find build -path '*/tests/*' -name '*.o' | wc -l)
bench_objects=$(find build -path '*/bench/*' -name '*.o' | wc -l)
kill -INT -- "-$pgid" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$pgid" 2>/dev/null || break; sleep 0.1; done
pgid=
echo "first-run: listening after ${seconds} s (build type ${build_type}; test objects ${test_objects}, bench objects ${bench_objects}; $(nproc) cores)"
if [ "$test_objects" -ne 0 ] || [ "$bench_objects" -ne 0 ]; then
  echo "first-run: make run compiled test or benchmark code" >&2
  exit 1
fi
if [ -n "$out" ]; then
  mkdir -p "$out"
  printf '{"script":"first-run","seconds":%s,"build_type":"%s","cores":%s}\n' \
    "$seconds" "$build_type" "$(nproc)" >> "$out/first-run.jsonl"
fi
