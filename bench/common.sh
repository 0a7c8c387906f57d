# Sourced by the benchmark scripts: what several of them need.
#   wait_log FILE PATTERN PID   waits (up to 30 s) until FILE holds PATTERN; fails, printing FILE,
#                               when process PID ends first
#   seed N LATENCY LIMIT        prints an exponea-sim seed with customers subject0..subject<N-1>
#                               @example.com (a few properties, one event each), answering after
#                               LATENCY ms and allowing LIMIT calls per 1-second window
wait_log() {
  for _ in $(seq 3000); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.01
  done
  echo "$(basename "$0"): timed out waiting for '$2' in $1" >&2; return 1
}

seed() {
  awk -v n="$1" -v latency="$2" -v limit="$3" 'BEGIN {
    printf "{\"project_token\":\"p\",\"private_keys\":[{\"key\":\"k\",\"secret\":\"s\",";
    printf "\"permissions\":[\"export\",\"anonymize\"]}],";
    printf "\"public_tokens\":[{\"token\":\"t\",\"events\":[\"privacy_request\"]}],";
    printf "\"personal_properties\":[\"email\",\"first_name\"],";
    printf "\"latency_ms\":%d,\"write_delay_ms\":0,\"rate_limit_per_second\":%d,\"customers\":[", latency, limit;
    for (i = 0; i < n; i++) {
      printf "%s{\"ids\":{\"registered\":\"subject%d@example.com\"},\"properties\":{\"email\":\"subject%d@example.com\",\"first_name\":\"S%d\",\"city\":\"Brno\"},", (i ? "," : ""), i, i, i;
      printf "\"events\":[{\"type\":\"session_start\",\"timestamp\":%d,\"properties\":{\"browser\":\"Firefox\"}}]}", 1764230000 + i;
    }
    printf "]}";
  }'
}
