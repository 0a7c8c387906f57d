#!/usr/bin/env bash
# Fulfilment throughput: N delete jobs (default 10,000) against exponea-sim answering each call
# after LATENCY ms (20) and allowing LIMIT calls per 1-second window (200); the daemon's
# max_requests_per_second is LIMIT and [jobs] concurrency CONCURRENCY (32). A delete is 4 calls
# (export, track, anonymize, verify), so the ceiling is LIMIT / 4 jobs per second. The jobs are
# written to the store before the daemon starts; the time runs from its start to the last job
# completed. Prints (and appends to <out-dir>/fulfilment.jsonl) jobs/s, the ratio to the ceiling
# and the 429s the daemon received.
#   bench/fulfilment.sh [out-dir]
# Environment: JOBS, LATENCY, LIMIT, CONCURRENCY, RUNS (3), BUILD (build), ENGINE (sqlite): the
# store engine, sqlite or postgresql (a throwaway cluster of bench/pg-cluster.sh, its database
# made anew for each run). Each JSON line is tagged with the engine and with what else the machine
# did meanwhile (bench/machine.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/machine.sh"
. "$root/bench/common.sh"
out=${1:-$root/build/bench}
engine=${ENGINE:-sqlite}
case "$engine" in sqlite|postgresql) ;; *) echo "fulfilment.sh: ENGINE: sqlite or postgresql, not $engine" >&2; exit 2 ;; esac
jobs=${JOBS:-10000}
latency=${LATENCY:-20}
limit=${LIMIT:-200}
concurrency=${CONCURRENCY:-32}
runs=${RUNS:-3}
build=${BUILD:-build}
work="$root/$build/bench-work/fulfilment"
rm -rf "$work"; mkdir -p "$work" "$out"
sim_pid=""; daemon_pid=""; pg_dir=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  [ -n "$pg_dir" ] && "$root/bench/pg-cluster.sh" stop "$pg_dir" || true
}
trap cleanup EXIT
if [ "$engine" = postgresql ]; then
  pg_dir=$("$root/bench/pg-cluster.sh" start)
  # Copy exports still live beside path, in this run's directory.
  store_toml="engine = \"postgresql\"
url = \"$("$root/bench/pg-cluster.sh" uri "$pg_dir" dsr)\"
path = \"dsr.sqlite3\""
else
  store_toml='path = "dsr.sqlite3"'
fi

sql() {  # one statement or script on the store, its rows printed unaligned
  if [ "$engine" = postgresql ]; then
    "$root/bench/pg-cluster.sh" psql "$pg_dir" dsr -Atc "$1"
  else
    sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "$1"
  fi
}

# N customers, each with a few properties and two events.
seed "$jobs" "$latency" "$limit" 2 > "$work/seed.json"

metric() {  # the sum of the samples of a metric family whose line matches $1, printed as $2 (%d)
  curl -sS "http://127.0.0.1:$admin_port/metrics" |
    awk -v re="$1" -v fmt="${2:-%d}" '$0 ~ re && !/^#/ { s += $NF } END { printf fmt, s }'
}

run() {
  rm -rf "$work"/dsr.sqlite3* "$work"/sim.log "$work"/daemon.log "$work/exports"
  if [ "$engine" = postgresql ]; then "$root/bench/pg-cluster.sh" reset "$pg_dir" dsr; fi
  "$root/$build/exponea-sim" --seed "$work/seed.json" --listen 127.0.0.1:0 2> "$work/sim.log" &
  sim_pid=$!
  wait_log "$work/sim.log" "listening on" "$sim_pid"
  local sim_port
  sim_port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\).*|\1|p' "$work/sim.log" | head -1)
  cat > "$work/dsr.toml" <<TOML
[server]
listen = "127.0.0.1:18280"
admin_listen = "127.0.0.1:18281"
[store]
$store_toml
[exponea]
base_url = "http://127.0.0.1:$sim_port"
max_requests_per_second = $limit
verify_timeout_seconds = 60
[jobs]
concurrency = $concurrency
[mineos]
api_base_url = "http://127.0.0.1:$sim_port"
[log]
level = "info"
$(credentials_toml)
TOML
  admin_port=18281
  # A first start creates the schema; then the jobs are written, all due now.
  "$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/daemon.log" &
  daemon_pid=$!
  wait_log "$work/daemon.log" "listening on" "$daemon_pid"
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
  local now_ms
  now_ms=$(( $(date +%s%N) / 1000000 ))
  if [ "$engine" = postgresql ]; then
    # The subject in the clear (subject_form 0), as the SQLite rows below; ANALYZE as autovacuum
    # would soon after such an insert.
    sql "
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, subject_form, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'bench', 'Form', 'delete', $now_ms, $now_ms, $now_ms,
  convert_to('subject' || i || '@example.com', 'UTF8'), 0, 'queued', $now_ms
FROM generate_series(0, $jobs - 1) AS i;
INSERT INTO job_steps (job_id, seq, at_ms, step, result)
SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;
ANALYZE jobs; ANALYZE job_steps;" > /dev/null
  else
    sql "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $jobs - 1)
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'bench', 'Form', 'delete', $now_ms, $now_ms, $now_ms,
  'subject' || i || '@example.com', 'queued', $now_ms FROM n;
INSERT INTO job_steps SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;" > /dev/null
  fi

  local t0 t1 done_jobs=0 mark
  mark=$(cpu_mark)
  t0=$(date +%s%N)
  "$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2>> "$work/daemon.log" &
  daemon_pid=$!
  wait_log "$work/daemon.log" "listening on" "$daemon_pid"
  while :; do
    done_jobs=$(sql "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('queued', 'running', 'retrying')")
    [ "$done_jobs" -ge "$jobs" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || { tail "$work/daemon.log" >&2; return 1; }
    sleep 0.1
  done
  t1=$(date +%s%N)
  local machine
  machine=$(cpu_json "$mark")
  local completed throttled calls
  completed=$(sql "SELECT COUNT(*) FROM jobs WHERE state = 'completed'")
  throttled=$(metric 'dsr_exponea_requests_total\\{.*code="429"')
  calls=$(metric 'dsr_exponea_requests_total\\{')
  # Where the flows' time went: waiting for the limiter (summed over calls), and in the calls.
  waited=$(metric '^dsr_rate_limit_wait_seconds_total' %.3f)
  in_calls=$(metric '^dsr_exponea_request_duration_seconds_sum' %.3f)
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
  kill -TERM "$sim_pid"; wait "$sim_pid" || true; sim_pid=""
  awk -v n="$jobs" -v c="$completed" -v ns=$(( t1 - t0 )) -v limit="$limit" -v r429="$throttled" \
      -v calls="$calls" -v run="$1" -v lat="$latency" -v conc="$concurrency" \
      -v waited="$waited" -v in_calls="$in_calls" -v engine="$engine" -v machine="$machine" 'BEGIN {
    s = ns / 1e9; jps = n / s; ceiling = limit / 4;
    printf "{\"engine\":\"%s\",\"jobs\":%d,\"completed\":%d,\"seconds\":%.2f,\"jobs_per_s\":%.2f,\"ceiling\":%.2f,\"ratio\":%.3f,\"calls\":%d,\"calls_429\":%d,\"latency_ms\":%d,\"limit\":%d,\"concurrency\":%d,\"flows_waiting_for_limiter\":%.1f,\"flows_in_calls\":%.1f,\"run\":%d,%s}\n",
      engine, n, c, s, jps, ceiling, jps / ceiling, calls, r429, lat, limit, conc, waited / s, in_calls / s, run, machine }' | tee -a "$out/fulfilment.jsonl"
}

for r in $(seq "$runs"); do run "$r"; done
