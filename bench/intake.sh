#!/usr/bin/env bash
# Intake throughput: wrk with pre-signed delete webhooks (bench/intake.lua) against the daemon with
# its real durable store, and the same load against nginx answering every POST with a fixed 202 —
# the ceiling for HTTP handling on this machine. Each daemon run starts with an empty store; after
# it, every 202 must be a committed job. Also measures this disk's synchronous-write latency.
#   bench/intake.sh [out-dir]
# Environment: CONNS ("8 16 32 64 128"), RUNS (3), DURATION (10 s), BUILD (build), THREADS (2),
# LOG_LEVEL (info: the daemon's [log] level; warn leaves out the line per accepted request),
# ENGINE (sqlite): the store engine, sqlite or postgresql (a throwaway cluster of
# bench/pg-cluster.sh, its database made anew for each run), or "sqlite postgresql" for both,
# one run of each after the other, then nginx's, at every connection count.
# Appends one JSON line per run to <out-dir>/intake.jsonl (default build/bench), tagged with the
# engine and with what else the machine did meanwhile (bench/machine.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/machine.sh"
out=${1:-$root/build/bench}
engines=${ENGINE:-sqlite}
for e in $engines; do
  case "$e" in sqlite|postgresql) ;; *) echo "intake.sh: ENGINE: sqlite or postgresql, not $e" >&2; exit 2 ;; esac
done
conns=${CONNS:-8 16 32 64 128}
runs=${RUNS:-3}
duration=${DURATION:-10}
build=${BUILD:-build}
threads=${THREADS:-2}
port=18180
work="$root/$build/bench-work/intake"  # on the same disk as a real store, not a tmpfs
rm -rf "$work"; mkdir -p "$work" "$out"
daemon_pid=""; nginx_pid=""; pg_dir=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  [ -n "$pg_dir" ] && "$root/bench/pg-cluster.sh" stop "$pg_dir" || true
}
trap cleanup EXIT
if [[ " $engines " == *" postgresql "* ]]; then
  pg_dir=$("$root/bench/pg-cluster.sh" start)
fi

secret=bench-webhook-secret
# Enough distinct bodies for the fastest run: 40,000 requests/s for DURATION seconds.
per_thread=$(( 40000 * duration / threads + 1000 ))
python3 "$root/bench/make-bodies.py" "$per_thread" "$threads" "$secret" "$work"

for engine in $engines; do
  if [ "$engine" = postgresql ]; then
    # Copy exports still live beside path, in this run's directory.
    store="engine = \"postgresql\"
url = \"$("$root/bench/pg-cluster.sh" uri "$pg_dir" dsr)\"
path = \"dsr.sqlite3\""
  else
    store='path = "dsr.sqlite3"'
  fi
  cat > "$work/dsr-$engine.toml" <<TOML
# Intake only: the dispatcher may make one call per second (to a closed port), so the store and
# the HTTP server carry the whole load.
[server]
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$((port + 1))"
[store]
$store
[exponea]
base_url = "http://127.0.0.1:9"
max_requests_per_second = 1
[jobs]
concurrency = 1
[mineos]
api_base_url = "http://127.0.0.1:9"
[log]
level = "${LOG_LEVEL:-info}"
[credentials]
exponea_api_key = "bench"
exponea_api_secret = "bench"
exponea_project_token = "bench"
exponea_api_token = "bench"
mineos_webhook_secret = "$secret"
admin_token = "bench-admin-token-0123456789abcdef"
mineos_api_key = "bench"
store_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
TOML
done

mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  client_body_buffer_size 64k;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$((port + 2));
    location / {
      default_type application/json;
      return 202 '{"requestId":"bench","status":"accepted"}';
    }
  }
}
NGINX

wait_port() {  # until something answers on 127.0.0.1:$1
  for _ in $(seq 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.01
  done
  echo "intake.sh: nothing listens on port $1" >&2; return 1
}

# Synchronous 4 KiB writes (O_DSYNC), as a commit's fsync: the mean latency of one, in ms.
fsync_ms() {
  local t
  t=$( { dd if=/dev/zero of="$work/fsync.bin" bs=4k count=200 oflag=dsync 2>&1 >/dev/null; } |
       sed -n 's/.*copied, \([0-9.]*\) s.*/\1/p')
  rm -f "$work/fsync.bin"
  awk -v t="$t" 'BEGIN { printf "%.3f", t * 1000 / 200 }'
}

stored_jobs() {  # engine
  if [ "$1" = postgresql ]; then
    "$root/bench/pg-cluster.sh" psql "$pg_dir" dsr -Atc "SELECT COUNT(*) FROM jobs"
  else
    sqlite3 -cmd ".timeout 10000" "$work/dsr.sqlite3" "SELECT COUNT(*) FROM jobs"
  fi
}

# The CPU time process $1 has used (user + system, from /proc/PID/stat), in microseconds.
cpu_us() {
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%d", ($12 + $13) * 1000000 / tck }' "/proc/$1/stat"
}

run_daemon() {  # engine connections run
  local engine=$1
  shift
  rm -rf "$work"/dsr.sqlite3* "$work/exports"
  if [ "$engine" = postgresql ]; then "$root/bench/pg-cluster.sh" reset "$pg_dir" dsr; fi
  "$root/$build/dsr-connector" serve --config "$work/dsr-$engine.toml" 2> "$work/daemon-$engine.log" &
  daemon_pid=$!
  wait_port "$port"
  local line mark used
  mark=$(cpu_mark)
  used=$(cpu_us "$daemon_pid")
  line=$(wrk -t"$threads" -c"$1" -d"${duration}s" --timeout 10s -s "$root/bench/intake.lua" \
         "http://127.0.0.1:$port" -- "$work" | tail -n 1)
  used=$(( $(cpu_us "$daemon_pid") - used ))
  local machine accepted
  machine=$(cpu_json "$mark")
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
  # The daemon's CPU per accepted request (its own user + system time over the run).
  accepted=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' <<< "$line")
  local cpu_per
  cpu_per=$(awk -v u="$used" -v a="${accepted:-0}" 'BEGIN { printf "%.1f", (a > 0 ? u / a : 0) }')
  local stored
  stored=$(stored_jobs "$engine")
  echo "{\"target\":\"daemon\",\"engine\":\"$engine\",\"connections\":$1,\"run\":$2,\"stored\":$stored,\"cpu_us_per_accepted\":$cpu_per,\"fsync_ms\":$(fsync_ms),\"wrk\":$line,$machine}" >> "$out/intake.jsonl"
  echo "daemon  $engine c=$1 run $2: $line; stored $stored; CPU/accepted ${cpu_per} µs; {$machine}" >&2
}

run_nginx() {
  nginx -c "$work/nginx/nginx.conf" &
  nginx_pid=$!
  wait_port $((port + 2))
  local line mark
  mark=$(cpu_mark)
  line=$(wrk -t"$threads" -c"$1" -d"${duration}s" --timeout 10s -s "$root/bench/intake.lua" \
         "http://127.0.0.1:$((port + 2))" -- "$work" | tail -n 1)
  local machine
  machine=$(cpu_json "$mark")
  kill -QUIT "$nginx_pid"; wait "$nginx_pid" || true; nginx_pid=""
  echo "{\"target\":\"nginx\",\"connections\":$1,\"run\":$2,\"wrk\":$line,$machine}" >> "$out/intake.jsonl"
  echo "nginx   c=$1 run $2: $line; {$machine}" >&2
}

for c in $conns; do
  for r in $(seq "$runs"); do
    for engine in $engines; do
      run_daemon "$engine" "$c" "$r"
    done
    run_nginx "$c" "$r"
  done
done
