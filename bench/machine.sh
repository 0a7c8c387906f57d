# Sourced by the benchmark scripts: what else the machine was doing during a figure.
#   cpu_mark            prints a snapshot of /proc/stat's cpu line, for cpu_json
#   cpu_json MARK       the CPU's time since MARK in percent, and the load averages, as JSON:
#                       "machine":{"busy_pct":..,"iowait_pct":..,"steal_pct":..,"load":[1,5,15]}
# The load averages are uptime's, read at the end of the figure (the 1-minute one includes the
# benchmark itself: on 2 cores a saturating run alone brings it towards 2-3).
cpu_mark() { head -n 1 /proc/stat; }
cpu_json() {
  { echo "$1"; head -n 1 /proc/stat; cat /proc/loadavg; } | awk '
    NR <= 2 { for (i = 2; i <= 9; i++) v[NR, i] = $i }
    NR == 3 { l1 = $1; l5 = $2; l15 = $3 }
    END {
      # user nice system idle iowait irq softirq steal
      for (i = 2; i <= 9; i++) { d[i] = v[2, i] - v[1, i]; t += d[i] }
      if (t <= 0) t = 1;
      printf "\"machine\":{\"busy_pct\":%.1f,\"iowait_pct\":%.1f,\"steal_pct\":%.1f,\"load\":[%s,%s,%s]}",
        100 * (d[2] + d[3] + d[4] + d[7] + d[8]) / t, 100 * d[6] / t, 100 * d[9] / t, l1, l5, l15 }'
}
