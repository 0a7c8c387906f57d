#!/usr/bin/env bash
# make bench: every benchmark of bench/README.md in one go, then the results table and the plot.
#   bench/run-all.sh [out-dir]     (default build/bench)
# Both store engines in the same run: intake alternates SQLite, PostgreSQL and nginx run by run;
# fulfilment and start-up run each engine in turn (PostgreSQL: a throwaway cluster of
# bench/pg-cluster.sh per script). ENGINES ("sqlite postgresql") chooses; CONNS, RUNS, DURATION
# and JOBS reduce the matrix (see each script); STORES_ONLY=1 leaves out the SQLite-only parts
# (the copy's memory, the micro-benchmark).
# Writes <out-dir>/results.md, <out-dir>/intake.png and the raw JSON lines of each run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/bench}
rm -rf "$out"; mkdir -p "$out"
export OUT="$out"
start=$(date +%s)
step() { echo "bench: $* ($(( $(date +%s) - start )) s)" >&2; }
engines=${ENGINES:-sqlite postgresql}
step "machine: $(uptime)"
step "intake ($engines): daemon and nginx at ${CONNS:-8 16 32 64 128} connections, ${RUNS:-3} runs of ${DURATION:-10} s each"
ENGINE="$engines" "$root/bench/intake.sh" "$out"
for engine in $engines; do
  step "fulfilment ($engine): ${JOBS:-10000} deletes, ${RUNS:-3} runs"
  ENGINE=$engine "$root/bench/fulfilment.sh" "$out"
done
for engine in $engines; do
  step "start-up and memory ($engine): idle, then 100,000 queued jobs"
  ENGINE=$engine "$root/bench/startup.sh" 0 "${BUILD:-build}" > /dev/null
  ENGINE=$engine "$root/bench/startup.sh" 100000 "${BUILD:-build}" > /dev/null
done
if [ -z "${STORES_ONLY:-}" ]; then
  step "memory: a copy of a customer with 1,000,000 events, 3 runs"
  for _ in 1 2 3; do "$root/bench/copy-memory.sh" 1000000 "${BUILD:-build}" > /dev/null; done
  step "micro: per-request costs of the intake path on one thread"
  "$root/${BUILD:-build}/dsr-micro-bench" > "$out/micro.jsonl"
fi
step "results"
status=0
python3 "$root/bench/summarize.py" "$out" || status=$?
gnuplot -e "dat='$out/intake.dat'; png='$out/intake.png'" "$root/bench/intake.gp"
step "machine: $(uptime)"
step "done: $out/results.md, $out/intake.png"
exit $status
