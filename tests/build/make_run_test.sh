#!/usr/bin/env bash
# MakeRun.BuildsOnlyTheDaemonAndTheSimulator: `make run` on a fresh clone installs only what the
# daemon and exponea-sim need and compiles nothing test-only. It configures a build folder the way
# `make run` does (in a private temp dir) and lists, without running them, the compile commands
# of what `make run` builds.
set -euo pipefail
src=${1:?usage: make_run_test.sh SOURCE_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

packages=$("$src/scripts/install-deps" run --list)
for p in libgtest-dev libgmock-dev clang-14 libfuzzer-14-dev libclang-rt-14-dev chromium \
         man-db wrk nginx-light postgresql-15; do
  if grep -qx "$p" <<<"$packages"; then fail "install-deps run would install $p, which only tests need"; fi
done
for p in libboost1.81-dev libssl-dev libsqlite3-dev libsystemd-dev libpq-dev; do
  grep -qx "$p" <<<"$packages" || fail "install-deps run does not install $p, which the daemon needs"
done

cd "$src"
# make -n prints each recipe line as written: join the backslash-continued ones.
plan=$(make -s -n run-build BUILD_DIR="$tmp/b" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
configure=$(grep -- '-DDSR_BUILD_TESTS' <<<"$plan") || fail "make run-build configures nothing: $plan"
build=$(grep -- '--build' <<<"$plan") || fail "make run-build builds nothing: $plan"
grep -q -- '-DDSR_BUILD_TESTS=OFF' <<<"$configure" || fail "make run configures the tests: $configure"
eval "$configure" || fail "configuring as make run does failed"
[ ! -e "$tmp/b/tests" ] || fail "make run's build folder has the tests configured"
# -k: with nothing built, the links of the dry run cannot find their libraries; go on.
eval "$build -- -n -k" > "$tmp/dry.txt" 2>&1 || true
compiled=$(grep -oE -- '-c [^ ]+\.cpp' "$tmp/dry.txt" | sed 's/^-c //' | sed "s|^$src/||" | sort -u)
grep -qx 'src/http/server.cpp' <<<"$compiled" || fail "make run does not build the daemon: $compiled"
grep -qx 'src/sim/main.cpp' <<<"$compiled" || fail "make run does not build exponea-sim: $compiled"
others=$(grep -v '^src/' <<<"$compiled" || true)
[ -z "$others" ] || fail "make run compiles test or benchmark code: $others"
echo "make run compiles $(wc -l <<<"$compiled") files, all under src/"
