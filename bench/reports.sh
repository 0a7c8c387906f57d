#!/usr/bin/env bash
# Reporting a backlog to MineOS (issue 22): REPORTS finished jobs (300) due to be reported at once,
# as after a MineOS outage, against exponea-sim's MineOS answering each status call after DELAY ms
# (100), the daemon at each [mineos] max_requests_per_minute of PACES ("600 6000"). Timed on the
# simulator's receive times from the first status call to the last; reports/s against the pace's
# ceiling (max_requests_per_minute ÷ 60), and the fullest 1-second and 60-second windows (half-open)
# against the limit, and the 429s of the simulator's MineOS, which allows MINEOS_LIMIT (800) status
# calls a minute. Checks that every job was acknowledged exactly once. One JSON line per run
# (appended to <out-dir>/reports.jsonl).
#   bench/reports.sh [out-dir]
# Environment: REPORTS, DELAY, PACES, RUNS (3 rounds), MINEOS_LIMIT, BUILD (build; another build directory
# measures another daemon binary, SIM_BUILD the simulator's, default BUILD).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/machine.sh"
. "$root/bench/common.sh"
out=${1:-$root/build/bench}
reports=${REPORTS:-300}
delay=${DELAY:-100}
paces=${PACES:-600 6000}
runs=${RUNS:-3}
build=${BUILD:-build}
case "$build" in /*) bin=$build ;; *) bin=$root/$build ;; esac
sim_bin=${SIM_BUILD:-$bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/dsr-bench-reports.XXXXXX")
mkdir -p "$out"
sim_pid=""; daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

seed 0 0 0 > "$work/seed.json"

run() {  # round per_minute
  rm -rf "$work"/dsr.sqlite3* "$work"/*.log "$work"/*.json.out
  "$sim_bin/exponea-sim" --seed "$work/seed.json" --listen 127.0.0.1:0 2> "$work/sim.log" &
  sim_pid=$!
  wait_log "$work/sim.log" "listening on" "$sim_pid"
  local sim_port
  sim_port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\).*|\1|p' "$work/sim.log" | head -1)
  curl -sS -o /dev/null -X POST "http://127.0.0.1:$sim_port/_sim/faults" \
    -d "{\"endpoint\":\"mineos\",\"delay_ms\":$delay,\"count\":$((reports * 2))}"
  curl -sS -o /dev/null -X POST "http://127.0.0.1:$sim_port/_sim/settings" \
    -d "{\"mineos_rate_limit_per_minute\":${MINEOS_LIMIT:-800}}"
  cat > "$work/dsr.toml" <<TOML
[server]
listen = "127.0.0.1:18390"
admin_listen = "127.0.0.1:18391"
[store]
path = "dsr.sqlite3"
[exponea]
base_url = "http://127.0.0.1:$sim_port"
[mineos]
api_base_url = "http://127.0.0.1:$sim_port"
max_requests_per_minute = $2
[log]
level = "info"
$(credentials_toml)
TOML
  # A first start makes the store; the finished jobs go in while the daemon is down.
  "$bin/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/daemon.log" &
  daemon_pid=$!
  wait_log "$work/daemon.log" "listening on" "$daemon_pid"
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
  local now_ms
  now_ms=$(( $(date +%s%N) / 1000000 ))
  sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $reports - 1)
INSERT INTO jobs (request_id, trace_id, operation, integration_id, source, request_type,
  created_at_ms, received_at_ms, updated_at_ms, subject, state, next_attempt_at_ms, outcome,
  outcome_message, report_next_at_ms)
SELECT 'req-' || i, 'trace-' || i, 'delete', 'bench', 'Form', 'delete', $now_ms, $now_ms, $now_ms,
  'subject' || i || '@example.com', 'user_not_found', $now_ms, 'UserNotFound',
  'no customer holds the e-mail in Bloomreach', $now_ms FROM n;" > /dev/null
  local mark
  mark=$(cpu_mark)
  "$bin/dsr-connector" serve --config "$work/dsr.toml" 2>> "$work/daemon.log" &
  daemon_pid=$!
  while :; do
    left=$(sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "SELECT COUNT(*) FROM jobs WHERE reported = 0")
    [ "$left" -eq 0 ] && break
    kill -0 "$daemon_pid" 2>/dev/null || { tail "$work/daemon.log" >&2; return 1; }
    sleep 0.2
  done
  local machine
  machine=$(cpu_json "$mark")
  curl -sS "http://127.0.0.1:$sim_port/_sim/mineos" > "$work/mineos.json.out"
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
  kill -TERM "$sim_pid"; wait "$sim_pid" || true; sim_pid=""
  python3 - "$work" "$reports" "$1" "$2" "$delay" "$bin" "$machine" <<'PY' | tee -a "$out/reports.jsonl"
import json, sys, collections
work, n, rnd, per_minute, delay, binary, machine = sys.argv[1:]
n, per_minute = int(n), int(per_minute)
calls = json.load(open(f"{work}/mineos.json.out"))
times = sorted(c["at_ms"] for c in calls)
def fullest(width):
    most, j = 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + width:
            j += 1
        most = max(most, j - i)
    return most
acked = collections.Counter(c["ticket_id"] for c in calls if c["status"] == 200)
wrong = [f"req-{i}: {acked[f'req-{i}']} acknowledged" for i in range(n) if acked[f"req-{i}"] != 1]
seconds = (times[-1] - times[0]) / 1000.0
rate = (len(times) - 1) / seconds if seconds > 0 else 0.0
print(json.dumps({
    "bench": "reports", "round": int(rnd), "binary": binary, "reports": n,
    "mineos_delay_ms": int(delay), "max_requests_per_minute": per_minute,
    "seconds": round(seconds, 2), "reports_per_second": round(rate, 2),
    "pace_ceiling_per_second": round(per_minute / 60.0, 2),
    "ratio_to_pace": round(rate / (per_minute / 60.0), 3),
    "fullest_1s": fullest(1000), "fullest_60s": fullest(60000), "calls": len(times),
    "calls_429": sum(1 for c in calls if c["status"] == 429),
    "wrong": wrong[:5], "wrong_count": len(wrong), **json.loads("{" + machine + "}")}))
PY
}

for round in $(seq "$runs"); do
  for pace in $paces; do
    run "$round" "$pace"
  done
done
