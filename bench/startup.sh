#!/usr/bin/env bash
# Start-up and memory with a large store: time from exec to "listening" (READY) with N jobs queued
# (default 100000; 0 = the idle daemon), and the daemon's peak RSS (VmHWM) once it has answered a
# /metrics scrape and a list of 1,000 jobs.
#   bench/startup.sh [jobs] [build-dir]
# Builds the store once with the daemon's own schema (a first start), fills it with the sqlite3
# CLI, then starts the daemon 3 times and prints each run. With OUT set, appends one JSON line per
# run to $OUT/startup.jsonl.
set -euo pipefail
jobs=${1:-100000}
build=${2:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e "s|path = \"../build/run/dsr.sqlite3\"|path = \"$work/dsr.sqlite3\"|" \
    -e 's|127.0.0.1:8080|127.0.0.1:18380|' -e 's|127.0.0.1:8081|127.0.0.1:18381|' \
    -e '/^\[mineos\]/,/^$/d' "$root/config/dev.toml" > "$work/dsr.toml"
start() {
  local t0 t1
  t0=$(date +%s%N)
  "$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/log" &
  local pid=$!
  # READY: both listeners bound (the operator one is logged last).
  until grep -q "for operator endpoints" "$work/log"; do
    kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.002
  done
  t1=$(date +%s%N)
  # A failed scrape stops the daemon too: left running, it would hold this function's output
  # pipe open and the caller's read would wait for ever.
  if ! curl -sS -o /dev/null http://127.0.0.1:18381/metrics ||
     ! curl -sS -o /dev/null -H 'Authorization: Bearer demo-admin-token-0123456789abcdef' \
       'http://127.0.0.1:18381/v1/requests?limit=1000'; then
    kill -KILL $pid; exit 1
  fi
  local hwm
  hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  kill -TERM $pid; wait $pid || true
  echo "$(( (t1 - t0) / 1000000 )) $hwm"
}
start > /dev/null  # creates the schema
[ "$jobs" -gt 0 ] && sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "PRAGMA journal_mode=WAL;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $jobs)
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'int-42', 'Form', 'delete', 4102444800000,
  4102444800000, 4102444800000, 'user' || i || '@example.com', 'queued', 4102444800000 FROM n;
INSERT INTO job_steps SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;" > /dev/null
echo "store: $jobs jobs, $(du -h "$work/dsr.sqlite3" | cut -f1)"
for run in 1 2 3; do
  read -r ms mib < <(start)
  echo "run $run: ready after $ms ms; peak RSS $mib MiB"
  if [ -n "${OUT:-}" ]; then
    echo "{\"jobs\":$jobs,\"run\":$run,\"ready_ms\":$ms,\"peak_rss_mib\":$mib}" >> "$OUT/startup.jsonl"
  fi
done
