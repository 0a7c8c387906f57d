# Sourced by the benchmark scripts: what several of them need.
#   wait_log FILE PATTERN PID   waits (up to 30 s) until FILE holds PATTERN; fails, printing FILE,
#                               when process PID ends first
#   seed N LATENCY LIMIT [EVENTS]
#                               prints an exponea-sim seed with customers subject0..subject<N-1>
#                               @example.com (a few properties; EVENTS events each, 1 or 2,
#                               default 1), answering after LATENCY ms and allowing LIMIT calls per
#                               1-second window
#   credentials_toml [SECRET] [ADMIN]
#                               prints the [credentials] section the simulator's seed accepts,
#                               with that webhook secret and admin token
wait_log() {
  for _ in $(seq 3000); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.01
  done
  echo "$(basename "$0"): timed out waiting for '$2' in $1" >&2; return 1
}

seed() {
  awk -v n="$1" -v latency="$2" -v limit="$3" -v events="${4:-1}" 'BEGIN {
    printf "{\"project_token\":\"p\",\"private_keys\":[{\"key\":\"k\",\"secret\":\"s\",";
    printf "\"permissions\":[\"export\",\"anonymize\"]}],";
    printf "\"public_tokens\":[{\"token\":\"t\",\"events\":[\"privacy_request\"]}],";
    printf "\"personal_properties\":[\"email\",\"first_name\"],";
    printf "\"latency_ms\":%d,\"write_delay_ms\":0,\"rate_limit_per_second\":%d,\"customers\":[", latency, limit;
    for (i = 0; i < n; i++) {
      printf "%s{\"ids\":{\"registered\":\"subject%d@example.com\"},\"properties\":{\"email\":\"subject%d@example.com\",\"first_name\":\"S%d\",\"city\":\"Brno\"},", (i ? "," : ""), i, i, i;
      printf "\"events\":[{\"type\":\"session_start\",\"timestamp\":%d,\"properties\":{\"browser\":\"Firefox\"}}", 1764230000 + i;
      if (events > 1) printf ",{\"type\":\"purchase\",\"timestamp\":%d,\"properties\":{\"total_price\":10}}", 1764233000 + i;
      printf "]}";
    }
    printf "]}";
  }'
}

credentials_toml() {
  cat <<TOML
[credentials]
exponea_api_key = "k"
exponea_api_secret = "s"
exponea_project_token = "p"
exponea_api_token = "t"
mineos_webhook_secret = "${1:-bench-webhook-secret}"
admin_token = "${2:-bench-admin-token-0123456789abcdef}"
mineos_api_key = "bench"
store_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
TOML
}
