#!/usr/bin/env bash
# Fulfilment of a backlog with and without bulk calls (issue 22): DELETES delete jobs (2,000) and
# COPIES copy jobs (500) already queued, as after an outage, against exponea-sim answering each
# call after LATENCY ms (20) and allowing LIMIT calls per 1-second window (200, no write delay);
# the daemon at max_requests_per_second = LIMIT and [jobs] concurrency = CONCURRENCY (64). Each
# round runs the same backlog twice, alternating: `[exponea] bulk_calls = false` (one call per job
# and step) then `true`, so that the two figures come from runs minutes apart.
#
# Timed from the first Exponea call to the last job's last call, on the simulator's receive times.
# The per-call ceiling for this mix is LIMIT ÷ 3.6 calls per job (4 per delete, 2 per copy). Each
# run checks, from the simulator's state and call log, that every job is correct: its audit event
# tracked exactly once, a deleted customer gone (and verified: the daemon says completed), a copied
# one still there, one acknowledged report per job; and counts the 429s and the fullest 1-second
# window (half-open, over receive times). Prints one JSON line per run (appended to
# <out-dir>/bulk.jsonl).
#   bench/bulk.sh [out-dir]
# Environment: DELETES, COPIES, LATENCY, LIMIT, CONCURRENCY, RUNS (3 rounds), BUILD (build),
# ENGINE (sqlite|postgresql), MODES ("false true": the bulk_calls values each round runs), KEEP (a
# directory: each run's simulator logs and daemon log are copied there).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/machine.sh"
. "$root/bench/common.sh"
out=${1:-$root/build/bench}
engine=${ENGINE:-sqlite}
case "$engine" in sqlite|postgresql) ;; *) echo "bulk.sh: ENGINE: sqlite or postgresql, not $engine" >&2; exit 2 ;; esac
deletes=${DELETES:-2000}
copies=${COPIES:-500}
latency=${LATENCY:-20}
limit=${LIMIT:-200}
concurrency=${CONCURRENCY:-64}
runs=${RUNS:-3}
modes=${MODES:-false true}
build=${BUILD:-build}
case "$build" in /*) bin=$build ;; *) bin=$root/$build ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/dsr-bench-bulk.XXXXXX")
mkdir -p "$out"
sim_pid=""; daemon_pid=""; pg_dir=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  [ -n "$pg_dir" ] && "$root/bench/pg-cluster.sh" stop "$pg_dir" || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$engine" = postgresql ]; then
  pg_dir=$("$root/bench/pg-cluster.sh" start)
  store_toml="engine = \"postgresql\"
url = \"$("$root/bench/pg-cluster.sh" uri "$pg_dir" dsr)\"
path = \"dsr.sqlite3\""
else
  store_toml='path = "dsr.sqlite3"'
fi
jobs=$((deletes + copies))

sql() {
  if [ "$engine" = postgresql ]; then
    "$root/bench/pg-cluster.sh" psql "$pg_dir" dsr -Atc "$1"
  else
    sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "$1"
  fi
}

seed "$jobs" "$latency" "$limit" > "$work/seed.json"

run() {  # round bulk_calls
  rm -rf "$work"/dsr.sqlite3* "$work"/*.log "$work/exports" "$work"/*.json.out
  if [ "$engine" = postgresql ]; then "$root/bench/pg-cluster.sh" reset "$pg_dir" dsr; fi
  "$bin/exponea-sim" --seed "$work/seed.json" --listen 127.0.0.1:0 2> "$work/sim.log" &
  sim_pid=$!
  wait_log "$work/sim.log" "listening on" "$sim_pid"
  local sim_port
  sim_port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\).*|\1|p' "$work/sim.log" | head -1)
  cat > "$work/dsr.toml" <<TOML
[server]
listen = "127.0.0.1:18380"
admin_listen = "127.0.0.1:18381"
[store]
$store_toml
[exponea]
base_url = "http://127.0.0.1:$sim_port"
max_requests_per_second = $limit
verify_timeout_seconds = 60
bulk_calls = $2
[jobs]
concurrency = $concurrency
[mineos]
api_base_url = "http://127.0.0.1:$sim_port"
max_requests_per_minute = 100000
[log]
level = "info"
$(credentials_toml)
TOML
  "$bin/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/daemon.log" &
  daemon_pid=$!
  wait_log "$work/daemon.log" "listening on" "$daemon_pid"
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
  local now_ms
  now_ms=$(( $(date +%s%N) / 1000000 ))
  if [ "$engine" = postgresql ]; then
    sql "
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, subject_form, state, next_attempt_at_ms)
SELECT 'req-' || i, 'trace-' || i, CASE WHEN i < $deletes THEN 'delete' ELSE 'copy' END, 'bench',
  'Form', CASE WHEN i < $deletes THEN 'delete' ELSE 'copy' END, $now_ms, $now_ms, $now_ms,
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
SELECT 'req-' || i, 'trace-' || i, CASE WHEN i < $deletes THEN 'delete' ELSE 'copy' END, 'bench',
  'Form', CASE WHEN i < $deletes THEN 'delete' ELSE 'copy' END, $now_ms, $now_ms, $now_ms,
  'subject' || i || '@example.com', 'queued', $now_ms FROM n;
INSERT INTO job_steps SELECT id, 1, received_at_ms, 'received', 'accepted' FROM jobs;" > /dev/null
  fi

  local mark
  mark=$(cpu_mark)
  "$bin/dsr-connector" serve --config "$work/dsr.toml" 2>> "$work/daemon.log" &
  daemon_pid=$!
  wait_log "$work/daemon.log" "listening on" "$daemon_pid"
  local acked=0
  while :; do
    done_jobs=$(sql "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('queued', 'running', 'retrying')")
    if [ "$done_jobs" -ge "$jobs" ]; then
      acked=$(curl -sS "http://127.0.0.1:$sim_port/_sim/mineos" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r.get("status") == 200))')
      [ "$acked" -ge "$jobs" ] && break
    fi
    kill -0 "$daemon_pid" 2>/dev/null || { tail "$work/daemon.log" >&2; return 1; }
    sleep 0.2
  done
  local machine
  machine=$(cpu_json "$mark")
  sql "SELECT request_id, state FROM jobs" > "$work/states.out"
  curl -sS "http://127.0.0.1:$sim_port/_sim/calls" > "$work/calls.json.out"
  curl -sS "http://127.0.0.1:$sim_port/_sim/state" > "$work/state.json.out"
  curl -sS "http://127.0.0.1:$sim_port/_sim/mineos" > "$work/mineos.json.out"
  # Where the flows' time went: waiting for the limiter (summed over calls), and in the calls.
  local metrics waited in_calls
  metrics=$(curl -sS "http://127.0.0.1:18381/metrics")
  waited=$(awk '/^dsr_rate_limit_wait_seconds_total/ { s += $NF } END { printf "%.3f", s }' <<< "$metrics")
  in_calls=$(awk '/^dsr_exponea_request_duration_seconds_sum/ { s += $NF } END { printf "%.3f", s }' <<< "$metrics")
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
  if [ -n "${KEEP:-}" ]; then  # the simulator's logs of this run, for a closer look
    mkdir -p "$KEEP/$1-$2" && cp "$work"/*.json.out "$work/daemon.log" "$KEEP/$1-$2/"
  fi
  kill -TERM "$sim_pid"; wait "$sim_pid" || true; sim_pid=""
  python3 - "$work" "$deletes" "$copies" "$limit" "$1" "$2" "$engine" "$concurrency" "$latency" "$machine" "$waited" "$in_calls" <<'PY' | tee -a "$out/bulk.jsonl"
import json, sys, collections
work, deletes, copies, limit, rnd, bulk, engine, conc, lat, machine, waited, in_calls = sys.argv[1:]
deletes, copies, limit = int(deletes), int(copies), int(limit)
calls = json.load(open(f"{work}/calls.json.out"))
state = json.load(open(f"{work}/state.json.out"))
reports = json.load(open(f"{work}/mineos.json.out"))
states = dict(l.split("|", 1) for l in open(f"{work}/states.out").read().split())
times = sorted(c["at_ms"] for c in calls)
by_endpoint = collections.Counter(c["endpoint"] for c in calls)
fullest, j = 0, 0
for i, t in enumerate(times):  # windows [t, t + 1000) starting at each call
    while j < len(times) and times[j] < t + 1000:
        j += 1
    fullest = max(fullest, j - i)
seconds = (times[-1] - times[0]) / 1000.0
events = collections.Counter()
holders = collections.Counter()
for c in state:
    reg = c.get("ids", {}).get("registered")
    if isinstance(reg, str):
        holders[reg] += 1
    for e in c.get("events", []):
        if e.get("type") == "privacy_request":
            events[e.get("properties", {}).get("request_id")] += 1
acked = collections.Counter(r.get("ticket_id") for r in reports if r.get("status") == 200)
acked_total = sum(acked.values())
wrong = []
for i in range(deletes + copies):
    rid = f"req-{i}"
    delete = i < deletes
    if states.get(rid) != "completed":
        wrong.append(f"{rid}: {states.get(rid)}")
    if events[rid] != 1:
        wrong.append(f"{rid}: {events[rid]} audit events")
    if holders[f"subject{i}@example.com"] != (0 if delete else 1):
        wrong.append(f"{rid}: {holders[f'subject{i}@example.com']} customers hold its ID")
    if acked[rid] != 1:
        wrong.append(f"{rid}: {acked[rid]} acknowledged reports")
n = deletes + copies
ceiling = limit / ((4 * deletes + 2 * copies) / n)
jps = n / seconds
print(json.dumps({"engine": engine, "bulk_calls": bulk == "true", "deletes": deletes,
                  "copies": copies, "seconds": round(seconds, 2), "jobs_per_s": round(jps, 2),
                  "per_call_ceiling": round(ceiling, 2), "ratio": round(jps / ceiling, 3),
                  "calls": len(times), "calls_by_endpoint": dict(by_endpoint),
                  "calls_429": by_endpoint.get("rate-limited", 0), "fullest_window": fullest,
                  "limit": limit, "acknowledged_reports": acked_total, "wrong": len(wrong),
                  "wrong_examples": wrong[:5], "concurrency": int(conc), "latency_ms": int(lat),
                  "flows_waiting_for_limiter": round(float(waited) / seconds, 1),
                  "flows_in_calls": round(float(in_calls) / seconds, 1),
                  "round": int(rnd), "machine": json.loads("{" + machine + "}")["machine"]}))
PY
}

for r in $(seq "$runs"); do
  for m in $modes; do run "$r" "$m"; done
done
