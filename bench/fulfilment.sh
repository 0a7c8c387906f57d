#!/usr/bin/env bash
# Fulfilment throughput: N delete jobs (default 10,000) against exponea-sim answering each call
# after LATENCY ms (20) and allowing LIMIT calls per 1-second window (200); the daemon's
# max_requests_per_second is LIMIT and [jobs] concurrency CONCURRENCY (32). A delete is 4 calls
# (export, track, anonymize, verify), so the ceiling is LIMIT / 4 jobs per second. The jobs are
# written to the store before the daemon starts; the time runs from its start to the last job
# completed. Prints (and appends to <out-dir>/fulfilment.jsonl) jobs/s, the ratio to the ceiling
# and the 429s the daemon received.
#   bench/fulfilment.sh [out-dir]
# Environment: JOBS, LATENCY, LIMIT, CONCURRENCY, RUNS (3), BUILD (build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/bench}
jobs=${JOBS:-10000}
latency=${LATENCY:-20}
limit=${LIMIT:-200}
concurrency=${CONCURRENCY:-32}
runs=${RUNS:-3}
build=${BUILD:-build}
work="$root/$build/bench-work/fulfilment"
rm -rf "$work"; mkdir -p "$work" "$out"
sim_pid=""; daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
}
trap cleanup EXIT

# N customers, each with a few properties and two events.
awk -v n="$jobs" -v latency="$latency" -v limit="$limit" 'BEGIN {
  printf "{\"project_token\":\"p\",\"private_keys\":[{\"key\":\"k\",\"secret\":\"s\",";
  printf "\"permissions\":[\"export\",\"anonymize\"]}],";
  printf "\"public_tokens\":[{\"token\":\"t\",\"events\":[\"privacy_request\"]}],";
  printf "\"personal_properties\":[\"email\",\"first_name\"],";
  printf "\"latency_ms\":%d,\"write_delay_ms\":0,\"rate_limit_per_second\":%d,\"customers\":[", latency, limit;
  for (i = 0; i < n; i++) {
    printf "%s{\"ids\":{\"registered\":\"subject%d@example.com\"},\"properties\":{\"email\":\"subject%d@example.com\",\"first_name\":\"S%d\",\"city\":\"Brno\"},", (i ? "," : ""), i, i, i;
    printf "\"events\":[{\"type\":\"session_start\",\"timestamp\":%d,\"properties\":{\"browser\":\"Firefox\"}},{\"type\":\"purchase\",\"timestamp\":%d,\"properties\":{\"total_price\":10}}]}", 1764230000 + i, 1764233000 + i;
  }
  printf "]}";
}' > "$work/seed.json"

wait_log() {  # file pattern pid
  for _ in $(seq 3000); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.01
  done
  echo "fulfilment.sh: timed out waiting for '$2' in $1" >&2; return 1
}

metric() {  # the sum of the samples of a metric family whose line matches $1, printed as $2 (%d)
  curl -sS "http://127.0.0.1:$admin_port/metrics" |
    awk -v re="$1" -v fmt="${2:-%d}" '$0 ~ re && !/^#/ { s += $NF } END { printf fmt, s }'
}

run() {
  rm -f "$work"/dsr.sqlite3* "$work"/sim.log "$work"/daemon.log
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
path = "dsr.sqlite3"
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
[credentials]
exponea_api_key = "k"
exponea_api_secret = "s"
exponea_project_token = "p"
exponea_api_token = "t"
mineos_webhook_secret = "bench-webhook-secret"
admin_token = "bench-admin-token-0123456789abcdef"
mineos_api_key = "bench"
store_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
TOML
  admin_port=18281
  # A first start creates the schema; then the jobs are written, all due now.
  "$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/daemon.log" &
  daemon_pid=$!
  wait_log "$work/daemon.log" "listening on" "$daemon_pid"
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
  local now_ms
  now_ms=$(( $(date +%s%N) / 1000000 ))
  sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $jobs - 1)
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'bench', 'Form', 'delete', $now_ms, $now_ms, $now_ms,
  'subject' || i || '@example.com', 'queued', $now_ms FROM n;
INSERT INTO job_steps SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;" > /dev/null

  local t0 t1 done_jobs=0
  t0=$(date +%s%N)
  "$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2>> "$work/daemon.log" &
  daemon_pid=$!
  wait_log "$work/daemon.log" "listening on" "$daemon_pid"
  while :; do
    done_jobs=$(sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('queued', 'running', 'retrying')")
    [ "$done_jobs" -ge "$jobs" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || { tail "$work/daemon.log" >&2; return 1; }
    sleep 0.1
  done
  t1=$(date +%s%N)
  local completed throttled calls
  completed=$(sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "SELECT COUNT(*) FROM jobs WHERE state = 'completed'")
  throttled=$(metric 'dsr_exponea_requests_total\\{.*code="429"')
  calls=$(metric 'dsr_exponea_requests_total\\{')
  # Where the flows' time went: waiting for the limiter (summed over calls), and in the calls.
  waited=$(metric '^dsr_rate_limit_wait_seconds_total' %.3f)
  in_calls=$(metric '^dsr_exponea_request_duration_seconds_sum' %.3f)
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
  kill -TERM "$sim_pid"; wait "$sim_pid" || true; sim_pid=""
  awk -v n="$jobs" -v c="$completed" -v ns=$(( t1 - t0 )) -v limit="$limit" -v r429="$throttled" \
      -v calls="$calls" -v run="$1" -v lat="$latency" -v conc="$concurrency" \
      -v waited="$waited" -v in_calls="$in_calls" 'BEGIN {
    s = ns / 1e9; jps = n / s; ceiling = limit / 4;
    printf "{\"jobs\":%d,\"completed\":%d,\"seconds\":%.2f,\"jobs_per_s\":%.2f,\"ceiling\":%.2f,\"ratio\":%.3f,\"calls\":%d,\"calls_429\":%d,\"latency_ms\":%d,\"limit\":%d,\"concurrency\":%d,\"flows_waiting_for_limiter\":%.1f,\"flows_in_calls\":%.1f,\"run\":%d}\n",
      n, c, s, jps, ceiling, jps / ceiling, calls, r429, lat, limit, conc, waited / s, in_calls / s, run }' | tee -a "$out/fulfilment.jsonl"
}

for r in $(seq "$runs"); do run "$r"; done
