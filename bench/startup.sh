#!/usr/bin/env bash
# Start-up and memory with a large store: time from exec to "listening" (READY) with N jobs queued
# (default 100000; 0 = the idle daemon), and the daemon's peak RSS (VmHWM) once it has answered a
# /metrics scrape and a list of 1,000 jobs.
#   bench/startup.sh [jobs] [build-dir]
# Builds the store once with the daemon's own schema (a first start), fills it with the sqlite3
# CLI (or psql), then starts the daemon 3 times and prints each run. With OUT set, appends one
# JSON line per run to $OUT/startup.jsonl, tagged with the engine and the load averages.
# Environment: ENGINE (sqlite): the store engine, sqlite or postgresql (a throwaway cluster of
# bench/pg-cluster.sh). With postgresql the daemon's RSS is its own: the server's backend serving
# its connection is a process of its own, whose peak RSS is reported beside it (backend_rss_mib:
# the shared buffers it touched count there too).
set -euo pipefail
jobs=${1:-100000}
build=${2:-build}
engine=${ENGINE:-sqlite}
case "$engine" in sqlite|postgresql) ;; *) echo "startup.sh: ENGINE: sqlite or postgresql, not $engine" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pg_dir=""
cleanup() {
  [ -n "$pg_dir" ] && "$root/bench/pg-cluster.sh" stop "$pg_dir" || true
  rm -rf "$work"
}
trap cleanup EXIT
store_sed=()
if [ "$engine" = postgresql ]; then
  pg_dir=$("$root/bench/pg-cluster.sh" start)
  "$root/bench/pg-cluster.sh" reset "$pg_dir" dsr
  # Copy exports still live beside path, in this run's directory.
  store_sed=(-e "/^\[store\]/a engine = \"postgresql\"\nurl = \"$("$root/bench/pg-cluster.sh" uri "$pg_dir" dsr)\"")
fi
sql() {  # a script on the store
  if [ "$engine" = postgresql ]; then
    "$root/bench/pg-cluster.sh" psql "$pg_dir" dsr -Atc "$1"
  else
    sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "$1"
  fi
}
sed -e "s|path = \"../build/run/dsr.sqlite3\"|path = \"$work/dsr.sqlite3\"|" "${store_sed[@]}" \
    -e 's|127.0.0.1:8080|127.0.0.1:18380|' -e 's|127.0.0.1:8081|127.0.0.1:18381|' \
    -e '/^\[mineos\]/,/^$/d' "$root/config/dev.toml" > "$work/dsr.toml"
start() {
  local t0 t1
  # The previous run's log goes first: the child truncates it only once it runs, and a loaded
  # machine let the loop below read the old "listening" line before that.
  rm -f "$work/log"
  t0=$(date +%s%N)
  "$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/log" &
  local pid=$!
  # READY: both listeners bound (the operator one is logged last).
  until grep -qs "for operator endpoints" "$work/log"; do
    kill -0 $pid 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.002
  done
  t1=$(date +%s%N)
  # A failed scrape stops the daemon too: left running, it would hold this function's output
  # pipe open and the caller's read would wait for ever.
  if ! curl -sS -o /dev/null http://127.0.0.1:18381/metrics ||
     ! curl -sS -o /dev/null -H 'Authorization: Bearer demo-admin-token-0123456789abcdef' \
       'http://127.0.0.1:18381/v1/requests?limit=1000'; then
    kill -KILL $pid; cat "$work/log" >&2; exit 1
  fi
  local hwm backend=null
  hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  if [ "$engine" = postgresql ]; then
    local bpid
    bpid=$(sql "SELECT pid FROM pg_stat_activity WHERE datname = 'dsr' AND pid <> pg_backend_pid()
                AND backend_type = 'client backend' LIMIT 1")
    [ -n "$bpid" ] && backend=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$bpid/status")
  fi
  kill -TERM $pid; wait $pid || true
  echo "$(( (t1 - t0) / 1000000 )) $hwm $backend"
}
start > /dev/null  # creates the schema
if [ "$jobs" -gt 0 ] && [ "$engine" = postgresql ]; then
  sql "INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, subject_form, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'int-42', 'Form', 'delete', 4102444800000,
  4102444800000, 4102444800000, convert_to('user' || i || '@example.com', 'UTF8'), 0, 'queued',
  4102444800000 FROM generate_series(1, $jobs) AS i;
INSERT INTO job_steps (job_id, seq, at_ms, step, result)
SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;
ANALYZE jobs; ANALYZE job_steps;" > /dev/null
  size=$(sql "SELECT pg_size_pretty(pg_database_size('dsr'))")
elif [ "$jobs" -gt 0 ]; then
  sql "PRAGMA journal_mode=WAL;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $jobs)
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'int-42', 'Form', 'delete', 4102444800000,
  4102444800000, 4102444800000, 'user' || i || '@example.com', 'queued', 4102444800000 FROM n;
INSERT INTO job_steps SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;" > /dev/null
  size=$(du -h "$work/dsr.sqlite3" | cut -f1)
else
  size=empty
fi
echo "store ($engine): $jobs jobs, $size"
for run in 1 2 3; do
  read -r ms mib backend < <(start)
  echo "run $run: ready after $ms ms; peak RSS $mib MiB$([ "$backend" = null ] || echo "; its server backend's $backend MiB")"
  if [ -n "${OUT:-}" ]; then
    load=$(awk '{ printf "[%s,%s,%s]", $1, $2, $3 }' /proc/loadavg)
    echo "{\"engine\":\"$engine\",\"jobs\":$jobs,\"run\":$run,\"ready_ms\":$ms,\"peak_rss_mib\":$mib,\"backend_rss_mib\":$backend,\"machine\":{\"load\":$load}}" >> "$OUT/startup.jsonl"
  fi
done
