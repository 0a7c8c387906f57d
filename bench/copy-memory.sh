#!/usr/bin/env bash
# Peak memory of the daemon while it serves a copy of one customer with N events (default
# 1,000,000): the export is streamed to disk, scanned there, and the report to MineOS is
# streamed from the file. Prints the export's size, the time to acknowledgement and the daemon's
# peak RSS (VmHWM), idle and after the copy.
#   bench/copy-memory.sh [events] [build-dir]
# With OUT set, appends one JSON line to $OUT/copy-memory.jsonl.
set -euo pipefail
events=${1:-1000000}
build=${2:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
sim_pid=""
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A seed holding one customer with $events events (each with a few properties).
awk -v n="$events" 'BEGIN {
  printf "{\"project_token\":\"demo-project-token\",";
  printf "\"private_keys\":[{\"key\":\"demo-api-key\",\"secret\":\"demo-api-secret\",";
  printf "\"permissions\":[\"export\",\"anonymize\"]}],";
  printf "\"public_tokens\":[{\"token\":\"demo-api-token\",\"events\":[\"privacy_request\"]}],";
  printf "\"write_delay_ms\":0,\"customers\":[{\"ids\":{\"registered\":\"big@example.com\"},";
  printf "\"properties\":{\"first_name\":\"Big\",\"city\":\"Brno\"},\"events\":[";
  for (i = 0; i < n; i++) {
    printf "%s{\"type\":\"page_visit\",\"timestamp\":%d,\"properties\":{\"path\":\"/p/%d\",\"browser\":\"Firefox\"}}",
      (i ? "," : ""), 1700000000 + i, i;
  }
  printf "]}]}";
}' > "$work/seed.json"
echo "seed: $events events, $(du -h "$work/seed.json" | cut -f1)"

"$root/$build/exponea-sim" --seed "$work/seed.json" --listen 127.0.0.1:0 2> "$work/sim.log" &
sim_pid=$!
until grep -q "listening on" "$work/sim.log"; do
  kill -0 $sim_pid 2>/dev/null || { cat "$work/sim.log" >&2; exit 1; }
  sleep 0.1
done
sim_port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\).*|\1|p' "$work/sim.log" | head -1)

sed -e "s|path = \"../build/run/dsr.sqlite3\"|path = \"$work/dsr.sqlite3\"|" \
    -e 's|127.0.0.1:8080|127.0.0.1:0|' -e 's|admin_listen = "127.0.0.1:8081"||' \
    -e "s|127.0.0.1:8090|127.0.0.1:$sim_port|g" "$root/config/dev.toml" > "$work/dsr.toml"
"$root/$build/dsr-connector" serve --config "$work/dsr.toml" 2> "$work/daemon.log" &
daemon_pid=$!
until grep -q "listening on" "$work/daemon.log"; do
  kill -0 $daemon_pid 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.05
done
port=$(sed -n 's|.*listening on [^ ]*:\([0-9]*\).*|\1|p' "$work/daemon.log" | head -1)
hwm() { awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$daemon_pid/status"; }
echo "daemon idle: peak RSS $(hwm)"

body='{"traceId":"trace-big","integrationId":"bench","request":{"id":"req-big","type":"copy","createdAt":"2026-12-01T00:00:00Z"},"userInfo":{"email":"big@example.com"}}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac demo-webhook-secret -binary | base64)
t0=$(date +%s%N)
curl -sS -o /dev/null -w '%{http_code}\n' -X POST "http://127.0.0.1:$port/v1/mineos/copy" \
  -H 'Content-Type: application/json' -H "X-Mine-Signature: $sig" --data-binary "$body" |
  grep -q 202 || { echo "not accepted" >&2; exit 1; }
until curl -sS -H 'Authorization: Bearer demo-admin-token-0123456789abcdef' \
    "http://127.0.0.1:$port/v1/requests/req-big" | grep -q '"reported":true'; do
  kill -0 $daemon_pid 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.2
done
t1=$(date +%s%N)
echo "copy of $events events reported after $(( (t1 - t0) / 1000000 )) ms"
echo "daemon after the copy: peak RSS $(hwm)"
if [ -n "${OUT:-}" ]; then
  awk '/VmHWM/ {printf "%.1f\n", $2 / 1024}' "/proc/$daemon_pid/status" |
    { read -r mib; echo "{\"events\":$events,\"reported_ms\":$(( (t1 - t0) / 1000000 )),\"peak_rss_mib\":$mib,\"export_bytes\":$(stat -c %s "$work/seed.json")}"; } >> "$OUT/copy-memory.jsonl"
fi
