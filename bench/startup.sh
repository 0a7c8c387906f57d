#!/usr/bin/env bash
# Start-up with a large store: time from exec to "listening" with N jobs queued (default 100000).
#   bench/startup.sh [jobs] [build-dir]
# Builds the store once with the daemon's own schema (a first start), fills it with the sqlite3
# CLI, then starts the daemon 3 times and prints each time to READY (the "listening" log line).
set -euo pipefail
jobs=${1:-100000}
build=${2:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e "s|path = \"../build/run/dsr.sqlite3\"|path = \"$work/dsr.sqlite3\"|" \
    -e 's|127.0.0.1:8080|127.0.0.1:0|' -e 's|127.0.0.1:8081|127.0.0.1:0|' \
    -e '/^\[mineos\]/,/^$/d' "$root/config/dev.toml" > "$work/dsr.toml"
start() {
  local t0 t1
  t0=$(date +%s%N)
  "$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/log" &
  local pid=$!
  until grep -q "listening on" "$work/log"; do
    kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.002
  done
  t1=$(date +%s%N)
  kill -TERM $pid; wait $pid || true
  echo $(( (t1 - t0) / 1000000 ))
}
start > /dev/null  # creates the schema
sqlite3 "$work/dsr.sqlite3" "PRAGMA journal_mode=WAL;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $jobs)
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'int-42', 'Form', 'delete', 4102444800000,
  4102444800000, 4102444800000, 'user' || i || '@example.com', 'queued', 4102444800000 FROM n;
INSERT INTO job_steps SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;" > /dev/null
echo "store: $jobs jobs, $(du -h "$work/dsr.sqlite3" | cut -f1)"
for run in 1 2 3; do
  echo "run $run: ready after $(start) ms"
done
