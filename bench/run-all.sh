#!/usr/bin/env bash
# make bench: every benchmark of bench/README.md in one go, then the results table and the plot.
#   bench/run-all.sh [out-dir]     (default build/bench; about 20 minutes on 2 cores)
# Writes <out-dir>/results.md, <out-dir>/intake.png and the raw JSON lines of each run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/bench}
rm -rf "$out"; mkdir -p "$out"
export OUT="$out"
start=$(date +%s)
step() { echo "bench: $* ($(( $(date +%s) - start )) s)" >&2; }
step "intake: daemon and nginx at 8, 16, 32, 64 and 128 connections, 3 runs of 10 s each"
"$root/bench/intake.sh" "$out"
step "fulfilment: 10,000 deletes, 3 runs"
"$root/bench/fulfilment.sh" "$out"
step "start-up and memory: idle, then 100,000 queued jobs"
"$root/bench/startup.sh" 0 "${BUILD:-build}" > /dev/null
"$root/bench/startup.sh" 100000 "${BUILD:-build}" > /dev/null
step "memory: a copy of a customer with 1,000,000 events, 3 runs"
for _ in 1 2 3; do "$root/bench/copy-memory.sh" 1000000 "${BUILD:-build}" > /dev/null; done
step "micro: per-request costs of the intake path on one thread"
"$root/${BUILD:-build}/dsr-micro-bench" > "$out/micro.jsonl"
step "results"
status=0
python3 "$root/bench/summarize.py" "$out" || status=$?
gnuplot -e "dat='$out/intake.dat'; png='$out/intake.png'" "$root/bench/intake.gp"
step "done: $out/results.md, $out/intake.png"
exit $status
