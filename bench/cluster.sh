#!/usr/bin/env bash
# Several daemons on one PostgreSQL database (issue 21, docs/contract.md §8), three measures:
#   intake      the same webhook load (wrk with bench/intake.lua and pre-signed delete webhooks of
#               bench/make-bodies.py, as bench/intake.sh) against one daemon, then split over two
#               daemons on the same database (two wrk processes at once, half the connections
#               each); accepted requests/s of each and their ratio (goal: two ≥ 1.6 × one). One
#               run of each after the other at every connection count, so that the ratio compares
#               runs seconds apart. Each run starts with an empty database; afterwards it must
#               hold at least as many jobs as 202s were counted.
#   takeover    two daemons, [jobs] lease_seconds = 5, [exponea] timeout_seconds = 2; a delete
#               made slow (the simulator's fault: export-one answers after 3 s, once) is posted
#               to dsr-a; once its view says "state":"running" with "worker":"dsr-a", dsr-a is
#               killed with SIGKILL; the time from the kill until the view (asked of dsr-b) says
#               "worker":"dsr-b" with state running or completed, and until completed. Then dsr-a
#               is started again (a new worker) for the next round. Should the job land on dsr-b
#               first, dsr-b is the one killed (the JSON line says so).
#   fulfilment  three daemons, exponea-sim allowing LIMIT calls per 1-second window and every
#               daemon's max_requests_per_second = LIMIT (the limit holds for all together); JOBS
#               delete webhooks posted round-robin to the three (customers seeded in the
#               simulator); from the simulator's call log (GET /_sim/calls, at_ms per call): calls
#               per second over the busy period (first to last call) ÷ LIMIT (goal ≥ 0.9; the
#               pacing interval of 1.08 / R makes the ceiling ≈ 0.926), the busiest 1-second
#               window (must be ≤ LIMIT) and the 429s (must be 0).
#   bench/cluster.sh [out-dir]      (default build/bench)
# Environment: BUILD (build): the directory holding dsr-connector and exponea-sim, relative to
# the repository (or absolute); PARTS ("intake takeover fulfilment"); intake: CONNS ("16 64"),
# RUNS (3), DURATION (10 s); takeover: TAKEOVERS (5); fulfilment: JOBS (600), LIMIT (50),
# LATENCY (20 ms per call), CONCURRENCY (8 per daemon), FULFIL_RUNS (1).
# Scratch lives in a private mktemp -d directory (under TMPDIR, default /tmp), the database in a
# throwaway cluster of bench/pg-cluster.sh; both, and every process started here, are removed on
# exit. Appends one JSON line per run to <out-dir>/cluster.jsonl (tagged with what else the
# machine did meanwhile, bench/machine.sh) and writes the summary to <out-dir>/cluster-summary.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/machine.sh"
. "$root/bench/common.sh"
out=${1:-$root/build/bench}
build=${BUILD:-build}
case "$build" in /*) bin=$build ;; *) bin=$root/$build ;; esac
parts=${PARTS:-intake takeover fulfilment}
conns=${CONNS:-16 64}
runs=${RUNS:-3}
duration=${DURATION:-10}
takeovers=${TAKEOVERS:-5}
jobs=${JOBS:-600}
limit=${LIMIT:-50}
latency=${LATENCY:-20}
concurrency=${CONCURRENCY:-8}
fulfil_runs=${FULFIL_RUNS:-1}
for p in $parts; do
  case "$p" in intake|takeover|fulfilment) ;; *) echo "cluster.sh: PARTS: intake, takeover or fulfilment, not $p" >&2; exit 2 ;; esac
done
for b in dsr-connector exponea-sim; do
  [ -x "$bin/$b" ] || { echo "cluster.sh: no $bin/$b: build it, or set BUILD" >&2; exit 2; }
done
for t in wrk curl jq python3 openssl; do
  command -v "$t" > /dev/null || { echo "cluster.sh: $t is missing (scripts/install-deps bench)" >&2; exit 2; }
done
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/dsr-bench-cluster.XXXXXX")
pg_dir=""
started=()  # every process started here, by pid

# A process of this run still alive: its pid, checked against its command line (the scratch
# directory is in every one's arguments), so a reused pid is never signalled.
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$work"; }
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d " " || true; }
cleanup() {
  local status=$? pid c
  for pid in "${started[@]}"; do
    # /usr/bin/time's child (wrk) first, then the process itself.
    for c in $(children "$pid"); do ours "$c" && kill -KILL "$c" 2>/dev/null || true; done
    ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "$pg_dir" ] && "$root/bench/pg-cluster.sh" stop "$pg_dir" || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_dir=$("$root/bench/pg-cluster.sh" start)
pg() { "$root/bench/pg-cluster.sh" psql "$pg_dir" "$1" -Atc "$2"; }

secret=bench-webhook-secret
admin_token=bench-admin-token-0123456789abcdef
# Three daemons' ports (webhooks, operator endpoints), free now.
read -r -a ports <<< "$(python3 -c '
import socket
s = [socket.socket() for _ in range(6)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
declare -A port=([dsr-a]=${ports[0]} [dsr-b]=${ports[2]} [dsr-c]=${ports[4]})
declare -A admin=([dsr-a]=${ports[1]} [dsr-b]=${ports[3]} [dsr-c]=${ports[5]})
declare -A pid=()
starts=0

log() { echo "cluster: $*" >&2; }

wait_port() {  # until something answers on 127.0.0.1:$1
  for _ in $(seq 1000); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.01
  done
  echo "cluster.sh: nothing listens on port $1" >&2; return 1
}

# Daemon NAME's configuration: configure NAME DB EXPONEA_URL RATE CONCURRENCY LEASE TIMEOUT.
configure() {
  local name=$1
  mkdir -p "$work/$name"
  cat > "$work/$name/dsr.toml" <<TOML
[server]
listen = "127.0.0.1:${port[$name]}"
admin_listen = "127.0.0.1:${admin[$name]}"
[store]
engine = "postgresql"
url = "$("$root/bench/pg-cluster.sh" uri "$pg_dir" "$2")"
path = "$work/$name/dsr.sqlite3"
[exponea]
base_url = "$3"
max_requests_per_second = $4
timeout_seconds = $7
verify_timeout_seconds = 60
[retry]
initial_backoff_ms = 200
[jobs]
concurrency = $5
lease_seconds = $6
worker_name = "$name"
[mineos]
api_base_url = "$3"
[log]
level = "info"
$(credentials_toml "$secret" "$admin_token")
TOML
}

start_daemon() {  # NAME: started, listening on both ports
  local name=$1 logf
  logf="$work/$name-$(( ++starts )).log"
  "$bin/dsr-connector" serve --config "$work/$name/dsr.toml" 2> "$logf" &
  pid[$name]=$!
  started+=("$!")
  wait_log "$logf" "for operator endpoints" "${pid[$name]}"
  wait_port "${port[$name]}"
}

stop_daemon() {  # NAME [signal]
  local name=$1 p=${pid[$1]:-}
  [ -n "$p" ] || return 0
  kill "-${2:-TERM}" "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  pid[$name]=""
}

stop_all() { local n; for n in dsr-a dsr-b dsr-c; do stop_daemon "$n"; done; }

start_sim() {  # SEED → sim_port
  "$bin/exponea-sim" --seed "$1" --listen 127.0.0.1:0 2> "$work/sim.log" &
  sim_pid=$!
  started+=("$!")
  wait_log "$work/sim.log" "listening on" "$sim_pid"
  sim_port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\).*|\1|p' "$work/sim.log" | head -1)
}
stop_sim() { kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; sim_pid=""; }

# CPU time: snapshot PIDS... prints "pid ticks" (utime + stime); spent BEFORE AFTER prints the
# seconds spent between the two snapshots by the processes of AFTER.
snapshot() {
  local p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && awk -v p="$p" '{ sub(/^.*\) /, ""); print p, $12 + $13 }' "/proc/$p/stat" 2>/dev/null || true
  done
}
spent() {
  awk -v hz="$(getconf CLK_TCK)" 'NR == FNR { b[$1] = $2; next } { s += $2 - b[$1] } END { printf "%.2f", s / hz }' \
    <(echo "$1") <(echo "$2")
}
pg_pids() {  # the postmaster and its children (backends, walwriter, checkpointer, ...)
  local pm
  pm=$(cat "$pg_dir/postmaster.pid")
  echo "$pm"; children "$pm"
}

snapshot_pg() { local p; mapfile -t p < <(pg_pids); snapshot "${p[@]}"; }

post_delete() {  # PORT ID EMAIL: prints the HTTP status
  local body sig
  body=$(printf '{"traceId":"trace-%s","integrationId":"bench","isTest":false,"request":{"id":"%s","type":"delete","source":"Form","domain":"example.com","createdAt":"2026-12-01T10:00:00.000Z","requestType":{"id":"delete","name":"delete"}},"userInfo":{"name":"Bench Subject","email":"%s","isVerified":true,"customFields":{}}}' "$2" "$2" "$3")
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -binary | base64)
  curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H "X-Mine-Signature: $sig" --data-binary "$body" "http://127.0.0.1:$1/v1/mineos/delete"
}

job_view() {  # NAME ID: "<state> <worker>" as that daemon's admin API shows the job
  curl -sS -m 5 -H "Authorization: Bearer $admin_token" \
    "http://127.0.0.1:${admin[$1]}/v1/requests/$2" | jq -r '"\(.state // "-") \(.worker // "-")"' 2>/dev/null ||
    echo "- -"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

metric() {  # NAME REGEX: the sum of the samples of that daemon's /metrics lines matching REGEX
  curl -sS -m 5 "http://127.0.0.1:${admin[$1]}/metrics" |
    awk -v re="$2" '$0 ~ re && !/^#/ { s += $NF } END { printf "%d", s }'
}

intake() {
  # Distinct ids: bodies-0 and -1 for the one daemon's wrk (2 threads); for two daemons, a's wrk
  # reads bodies-0, b's wrk (in its own directory) another file renamed bodies-0.
  local per_file=$(( 10000 * duration + 1000 ))
  mkdir -p "$work/bodies-a" "$work/bodies-b"
  python3 "$root/bench/make-bodies.py" "$per_file" 3 "$secret" "$work/bodies-a"
  mv "$work/bodies-a/bodies-2.txt" "$work/bodies-b/bodies-0.txt"
  local n
  for n in dsr-a dsr-b; do configure "$n" dsr http://127.0.0.1:9 1 1 30 10; done
  local c r daemons
  for c in $conns; do
    for r in $(seq "$runs"); do
      for daemons in 1 2; do intake_run "$c" "$r" "$daemons"; done
    done
  done
}

wrk_at() {  # NAME THREADS CONNECTIONS BODIES-DIR RESULT-FILE: wrk in the background (timed)
  /usr/bin/time -f '%U %S' -o "$5.cpu" wrk -t"$2" -c"$3" -d"${duration}s" --timeout 10s \
    -s "$root/bench/intake.lua" "http://127.0.0.1:${port[$1]}" -- "$4" > "$5" 2> "$5.err" &
  started+=("$!")
  wrk_pids+=("$!")
}

intake_run() {  # CONNECTIONS RUN DAEMONS
  local c=$1 r=$2 daemons=$3
  "$root/bench/pg-cluster.sh" reset "$pg_dir" dsr
  start_daemon dsr-a
  [ "$daemons" -eq 2 ] && start_daemon dsr-b
  local mark d0 p0 procs
  procs=("${pid[dsr-a]}"); [ "$daemons" -eq 2 ] && procs+=("${pid[dsr-b]}")
  mark=$(cpu_mark); d0=$(snapshot "${procs[@]}"); p0=$(snapshot_pg)
  wrk_pids=()
  if [ "$daemons" -eq 1 ]; then
    wrk_at dsr-a 2 "$c" "$work/bodies-a" "$work/wrk-a.json"
  else
    wrk_at dsr-a 1 $(( c / 2 )) "$work/bodies-a" "$work/wrk-a.json"
    wrk_at dsr-b 1 $(( c - c / 2 )) "$work/bodies-b" "$work/wrk-b.json"
  fi
  local w
  for w in "${wrk_pids[@]}"; do wait "$w" || { cat "$work"/wrk-*.err >&2; return 1; }; done
  local machine daemon_cpu pg_cpu wrk_cpu
  daemon_cpu=$(spent "$d0" "$(snapshot "${procs[@]}")")
  pg_cpu=$(spent "$p0" "$(snapshot_pg)")
  machine=$(cpu_json "$mark")
  wrk_cpu=$(cat "$work"/wrk-*.json.cpu | awk '{ s += $1 + $2 } END { printf "%.2f", s }')
  stop_all
  # Transactions committed in the run's database (its statistics start afresh with it; the
  # backends report theirs as they exit): how many jobs one commit carried.
  local stored commits
  stored=$(pg dsr "SELECT COUNT(*) FROM jobs")
  sleep 0.5
  commits=$(pg dsr "SELECT xact_commit FROM pg_stat_database WHERE datname = 'dsr'")
  local a b="null"
  a=$(tail -n 1 "$work/wrk-a.json")
  [ "$daemons" -eq 2 ] && b=$(tail -n 1 "$work/wrk-b.json")
  rm -f "$work"/wrk-*.json*
  local line
  line=$(jq -cn --argjson a "$a" --argjson b "$b" --argjson c "$c" --argjson r "$r" \
    --argjson d "$daemons" --argjson stored "$stored" --argjson dc "$daemon_cpu" \
    --argjson pc "$pg_cpu" --argjson wc "$wrk_cpu" --argjson dur "$duration" --argjson m "{$machine}" \
    --argjson commits "$commits" --argjson cores "$(nproc)" '
    ([$a, $b] | map(select(. != null))) as $w |
    {part: "intake", daemons: $d, connections: $c, run: $r,
     accepted_per_s: ($w | map(.accepted / .seconds) | add * 10 | round / 10),
     accepted: ($w | map(.accepted) | add), other_status: ($w | map(.other_status) | add),
     socket_errors: ($w | map(.socket_errors) | add), stored: $stored, commits: $commits,
     jobs_per_commit: ($stored / ([$commits, 1] | max) * 10 | round / 10),
     ids_repeated: ($w | map(.ids_repeated) | any),
     cpu_seconds: {daemons: $dc, postgres: $pc, wrk: $wc}, duration_s: $dur, cores: $cores,
     cpu_us_per_accepted: {daemons: ($dc * 1e6 / ([$w | map(.accepted) | add, 1] | max) | round),
                           postgres: ($pc * 1e6 / ([$w | map(.accepted) | add, 1] | max) | round)},
     benchmark_share_pct: (($dc + $pc + $wc) * 100 / ($cores * $dur) | round),
     wrk: $w} + $m')
  echo "$line" >> "$out/cluster.jsonl"
  log "intake, $daemons daemon(s), c=$c run $r: $(jq -r '"\(.accepted_per_s) accepted/s (\(.accepted) 202s, \(.other_status) other, stored \(.stored), \(.jobs_per_commit) per commit); CPU s: daemons \(.cpu_seconds.daemons), postgres \(.cpu_seconds.postgres), wrk \(.cpu_seconds.wrk); busy \(.machine.busy_pct)%, the benchmark \(.benchmark_share_pct)%"' <<< "$line")"
  if [ "$stored" -lt "$(jq .accepted <<< "$line")" ]; then
    log "intake: FEWER JOBS STORED ($stored) THAN 202s COUNTED"; return 1
  fi
}

takeover() {
  "$root/bench/pg-cluster.sh" reset "$pg_dir" takeover
  seed $(( takeovers + 10 )) 0 0 > "$work/seed-takeover.json"
  start_sim "$work/seed-takeover.json"
  local n
  for n in dsr-a dsr-b; do configure "$n" takeover "http://127.0.0.1:$sim_port" 50 4 5 2; done
  start_daemon dsr-a
  start_daemon dsr-b
  local i
  for i in $(seq "$takeovers"); do takeover_run "$i"; done
  stop_all
  stop_sim
}

takeover_run() {  # ROUND
  local id="takeover-$1" st state worker victim survivor
  curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data '{"endpoint":"export-one","delay_ms":3000,"count":1}' "http://127.0.0.1:$sim_port/_sim/faults"
  st=$(post_delete "${port[dsr-a]}" "$id" "subject$1@example.com")
  [ "$st" = 202 ] || { log "takeover: webhook answered $st"; return 1; }
  local until=$(( $(now_ms) + 20000 ))
  while :; do
    read -r state worker <<< "$(job_view dsr-a "$id")"
    [ "$state" = running ] && [ "$worker" != - ] && break
    [ "$(now_ms)" -lt "$until" ] || { log "takeover: $id never ran ($state $worker)"; return 1; }
    sleep 0.01
  done
  victim=$worker
  case "$victim" in dsr-a) survivor=dsr-b ;; dsr-b) survivor=dsr-a ;; *) log "takeover: worker $victim?"; return 1 ;; esac
  local mark t_kill t_taken="" t_done="" seen="" now
  mark=$(cpu_mark)
  t_kill=$(now_ms)
  stop_daemon "$victim" KILL
  until=$(( t_kill + 60000 ))
  while :; do
    read -r state worker <<< "$(job_view "$survivor" "$id")"
    now=$(now_ms)
    seen="$state $worker"
    if [ -z "$t_taken" ] && [ "$worker" = "$survivor" ] && { [ "$state" = running ] || [ "$state" = completed ]; }; then
      t_taken=$now
    fi
    if [ -n "$t_taken" ] && [ "$state" = completed ]; then t_done=$now; break; fi
    [ "$now" -lt "$until" ] || break
    sleep 0.02
  done
  local machine
  machine=$(cpu_json "$mark")
  local line
  line=$(jq -cn --arg v "$victim" --arg s "$survivor" --argjson r "$1" --arg seen "$seen" \
    --arg tk "$t_kill" --arg tt "$t_taken" --arg td "$t_done" --argjson m "{$machine}" '
    {part: "takeover", run: $r, killed: $v, survivor: $s, lease_seconds: 5, timeout_seconds: 2,
     sweep_interval_s: 1.25,
     takeover_s: (if $tt == "" then null else (($tt | tonumber) - ($tk | tonumber)) / 1000 end),
     completed_s: (if $td == "" then null else (($td | tonumber) - ($tk | tonumber)) / 1000 end),
     last_view: $seen} + $m')
  echo "$line" >> "$out/cluster.jsonl"
  log "takeover $1: $victim killed; $(jq -r '"\(.survivor) running it after \(.takeover_s) s, completed after \(.completed_s) s"' <<< "$line")"
  [ -n "$t_taken" ] || { log "takeover: $survivor never took $id over (last: $seen)"; return 1; }
  start_daemon "$victim"  # a new worker under the same name
}

fulfilment() {
  mkdir -p "$work/bodies-f"
  python3 "$root/bench/make-bodies.py" "$jobs" 1 "$secret" "$work/bodies-f"
  seed "$jobs" "$latency" "$limit" > "$work/seed-fulfilment.json"
  local r
  for r in $(seq "$fulfil_runs"); do fulfilment_run "$r"; done
}

fulfilment_run() {  # RUN
  "$root/bench/pg-cluster.sh" reset "$pg_dir" fulfil
  start_sim "$work/seed-fulfilment.json"
  local n
  for n in dsr-a dsr-b dsr-c; do
    configure "$n" fulfil "http://127.0.0.1:$sim_port" "$limit" "$concurrency" 30 10
  done
  for n in dsr-a dsr-b dsr-c; do start_daemon "$n"; done
  local mark t0 posted
  mark=$(cpu_mark)
  t0=$(now_ms)
  # Round-robin over the three daemons, one keep-alive connection to each.
  posted=$(python3 - "$work/bodies-f/bodies-0.txt" "${port[dsr-a]}" "${port[dsr-b]}" "${port[dsr-c]}" <<'PY'
import http.client, json, sys, time
ports = [int(p) for p in sys.argv[2:]]
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports]
codes, t0 = {}, time.monotonic()
with open(sys.argv[1]) as f:
    for i, line in enumerate(f):
        sig, body = line.rstrip("\n").split("\t", 1)
        c = conns[i % len(conns)]
        c.request("POST", "/v1/mineos/delete", body=body,
                  headers={"Content-Type": "application/json", "X-Mine-Signature": sig})
        r = c.getresponse()
        r.read()
        codes[str(r.status)] = codes.get(str(r.status), 0) + 1
print(json.dumps({"statuses": codes, "seconds": round(time.monotonic() - t0, 3)}))
PY
)
  log "fulfilment: posted $jobs deletes: $posted"
  local done_jobs until=$(( t0 + (jobs * 4 * 3 / limit + 180) * 1000 ))
  while :; do
    done_jobs=$(pg fulfil "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('queued', 'running', 'retrying')")
    [ "$done_jobs" -ge "$jobs" ] && break
    [ "$(now_ms)" -lt "$until" ] || { log "fulfilment: only $done_jobs of $jobs done in time"; break; }
    sleep 0.2
  done
  local t1 machine
  t1=$(now_ms)
  machine=$(cpu_json "$mark")
  local completed per_daemon=""
  completed=$(pg fulfil "SELECT COUNT(*) FROM jobs WHERE state = 'completed'")
  for n in dsr-a dsr-b dsr-c; do
    per_daemon+="\"$n\":{\"exponea_calls\":$(metric "$n" '^dsr_exponea_requests_total[{]'),\"calls_429\":$(metric "$n" '^dsr_exponea_requests_total[{].*code="429"'),\"workers_seen\":$(metric "$n" '^dsr_workers ')},"
  done
  curl -sS -m 30 "http://127.0.0.1:$sim_port/_sim/calls" > "$work/calls.json"
  stop_all
  stop_sim
  local line
  line=$(python3 - "$work/calls.json" <<PY
import json, sys
calls = json.load(open(sys.argv[1]))
at = sorted(c["at_ms"] for c in calls)
n, limit = len(at), $limit
throttled = sum(1 for c in calls if c["status"] == 429)
span = (at[-1] - at[0]) / 1000 if n > 1 else 0
rate = (n - 1) / span if span > 0 else 0
most, i = 0, 0
for j in range(n):
    while at[j] - at[i] >= 1000:
        i += 1
    most = max(most, j - i + 1)
lo, hi = n // 10, n * 9 // 10  # the middle 80 % of the calls, without ramp-up and tail
mid = (hi - lo) / ((at[hi] - at[lo]) / 1000) if n > 10 and at[hi] > at[lo] else 0
by_endpoint = {}
for c in calls:
    by_endpoint[c["endpoint"]] = by_endpoint.get(c["endpoint"], 0) + 1
print(json.dumps({"part": "fulfilment", "run": $1, "daemons": 3, "jobs": $jobs, "completed": $completed,
  "limit": limit, "latency_ms": $latency, "concurrency_per_daemon": $concurrency,
  "calls": n, "calls_429": throttled, "busy_s": round(span, 3), "calls_per_s": round(rate, 2),
  "ratio": round(rate / limit, 3), "ceiling_ratio": round(1 / 1.08, 3),
  "middle_80pct_calls_per_s": round(mid, 2), "middle_80pct_ratio": round(mid / limit, 3),
  "busiest_1s_window": most, "calls_by_endpoint": by_endpoint,
  "first_call_after_first_post_s": round((at[0] - $t0) / 1000, 3) if n else None,
  "all_done_after_first_post_s": round(($t1 - $t0) / 1000, 2),
  "posted": $posted, "per_daemon": {${per_daemon%,}}, $machine}))
PY
)
  echo "$line" >> "$out/cluster.jsonl"
  log "fulfilment $1: $(jq -r '"\(.completed)/\(.jobs) completed; \(.calls) calls in \(.busy_s) s = \(.calls_per_s)/s, ratio \(.ratio) (middle 80 %: \(.middle_80pct_ratio)); busiest 1-s window \(.busiest_1s_window) (R = \(.limit)); 429s \(.calls_429); per daemon calls \([.per_daemon[] | .exponea_calls] | join(" / "))"' <<< "$line")"
}

first_line=$(( $( [ -f "$out/cluster.jsonl" ] && wc -l < "$out/cluster.jsonl" || echo 0) + 1 ))
log "machine: $(nproc) cores, $(uptime)"
log "binaries: $bin; PostgreSQL cluster $pg_dir; scratch $work; out $out"
for p in $parts; do
  log "part: $p"
  "$p"
done
log "machine: $(uptime)"

# The summary of this run's lines of cluster.jsonl.
tail -n +"$first_line" "$out/cluster.jsonl" > "$work/this-run.jsonl"
python3 - "$work/this-run.jsonl" "$(date -u +%FT%TZ)" > "$out/cluster-summary.md" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs):
    xs = [x for x in xs if x is not None]
    return (statistics.median(xs), min(xs), max(xs)) if xs else (None, None, None)
def fmt(t, d=0):
    m, lo, hi = t
    if m is None:
        return "—"
    f = f"{{:,.{d}f}}"
    return f"{f.format(m)} ({f.format(lo)}–{f.format(hi)})"
print(f"# bench/cluster.sh summary ({sys.argv[2]})\n")
intake = [l for l in lines if l["part"] == "intake"]
if intake:
    print("## Intake: one daemon against two on the same database\n")
    print("| connections | one daemon, accepted/s | two daemons, accepted/s | two / one (per run) | two / one (medians) | CPU µs per 202, daemons + postgres (one; two) | jobs per commit (one; two) | the benchmark's share of the machine, % (one; two) | machine busy % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in sorted({l["connections"] for l in intake}):
        one = [l for l in intake if l["connections"] == c and l["daemons"] == 1]
        two = [l for l in intake if l["connections"] == c and l["daemons"] == 2]
        ratios = [t["accepted_per_s"] / o["accepted_per_s"] for o in one for t in two if t["run"] == o["run"]]
        m1, m2 = med([l["accepted_per_s"] for l in one]), med([l["accepted_per_s"] for l in two])
        us = lambda ls, k: statistics.median(l["cpu_us_per_accepted"][k] for l in ls if "cpu_us_per_accepted" in l)
        pc = lambda ls: statistics.median(l["jobs_per_commit"] for l in ls if "jobs_per_commit" in l)
        sh = lambda ls: statistics.median(l["benchmark_share_pct"] for l in ls if "benchmark_share_pct" in l)
        print(f"| {c} | {fmt(m1)} | {fmt(m2)} | {fmt(med(ratios), 2)} | **{m2[0] / m1[0]:.2f}** | "
              f"{us(one, 'daemons')} + {us(one, 'postgres')}; {us(two, 'daemons')} + {us(two, 'postgres')} | "
              f"{pc(one)}; {pc(two)} | {sh(one)}; {sh(two)} | "
              f"{fmt(med([l['machine']['busy_pct'] for l in one + two]))} |")
    print("\nGoal: two daemons ≥ 1.6 × one. Every 202 was a stored job: "
          + ("yes" if all(l["stored"] >= l["accepted"] for l in intake) else "**NO**")
          + ("; bodies ran out (ids repeated) in some run" if any(l["ids_repeated"] for l in intake) else "") + ".\n")
take = [l for l in lines if l["part"] == "takeover"]
if take:
    t = med([l["takeover_s"] for l in take]); d = med([l["completed_s"] for l in take])
    print("## Takeover after kill -9 (lease_seconds = 5, sweep every 1.25 s)\n")
    print(f"{len(take)} rounds; killed: {', '.join(l['killed'] for l in take)}.\n")
    print("| from the kill until | min | median | max |\n|---|---|---|---|")
    print(f"| the survivor runs the job | {t[1]:.2f} s | **{t[0]:.2f} s** | {t[2]:.2f} s |")
    if d[0] is not None:
        print(f"| the job is completed | {d[1]:.2f} s | {d[0]:.2f} s | {d[2]:.2f} s |")
    print(f"\nEach round's takeover, s: {', '.join(str(l['takeover_s']) for l in take)}.\n")
ful = [l for l in lines if l["part"] == "fulfilment"]
if ful:
    print("## Fulfilment with three daemons sharing one rate limit\n")
    print("| run | jobs completed | calls | busy s | calls/s | ratio to R (goal ≥ 0.9, ceiling 0.926) | middle 80 % | busiest 1-s window (≤ R) | 429s (0) | calls per daemon | busy % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for l in ful:
        print(f"| {l['run']} | {l['completed']}/{l['jobs']} | {l['calls']} | {l['busy_s']} | {l['calls_per_s']} | "
              f"**{l['ratio']}** | {l['middle_80pct_ratio']} | {l['busiest_1s_window']} (R = {l['limit']}) | "
              f"{l['calls_429']} | {' / '.join(str(v['exponea_calls']) for v in l['per_daemon'].values())} | "
              f"{l['machine']['busy_pct']} |")
PY
cat "$out/cluster-summary.md"
