#!/usr/bin/env python3
"""Reads the JSON lines bench/*.sh appended to <out-dir> and writes <out-dir>/results.md (the
results table: median of the runs, min–max) and <out-dir>/intake.dat (for bench/intake.gp).

    bench/summarize.py <out-dir>
"""
import json
import os
import statistics
import sys

out = sys.argv[1]


def lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def fig(values, fmt="{:.0f}"):
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


md = ["| measure | result: median (min–max) | target |", "|---|---|---|"]
intake = lines("intake.jsonl")
by = {}
for r in intake:
    by.setdefault((r["target"], r["connections"]), []).append(r)
conns = sorted({c for _, c in by})
dat = ["# connections daemon_rps daemon_p99_ms nginx_rps nginx_p99_ms"]
problems = []
for c in conns:
    d, n = by.get(("daemon", c), []), by.get(("nginx", c), [])
    for r in d:
        if r["stored"] < r["wrk"]["accepted"]:
            problems.append(f"c={c} run {r['run']}: {r['wrk']['accepted']} answered 202 but "
                            f"{r['stored']} jobs stored")
        if r["wrk"]["ids_repeated"]:
            problems.append(f"c={c} run {r['run']}: request ids repeated (more bodies needed)")
    med = lambda rs, k: statistics.median(x["wrk"][k] for x in rs) if rs else float("nan")
    dat.append(f"{c} {med(d, 'rps'):.1f} {med(d, 'p99_ms'):.3f} {med(n, 'rps'):.1f} "
               f"{med(n, 'p99_ms'):.3f}")
    if d and n:
        ratios = [a["wrk"]["rps"] / b["wrk"]["rps"] for a, b in zip(d, n)]
        md.append(f"| intake, {c} connections: daemon requests/s | {fig([x['wrk']['rps'] for x in d])} | |")
        md.append(f"| intake, {c} connections: nginx requests/s | {fig([x['wrk']['rps'] for x in n])} | |")
        md.append(f"| intake, {c} connections: daemon p50 / p99 ms | "
                  f"{fig([x['wrk']['p50_ms'] for x in d], '{:.2f}')} / "
                  f"{fig([x['wrk']['p99_ms'] for x in d], '{:.2f}')} | |")
        md.append(f"| intake, {c} connections: nginx p50 / p99 ms | "
                  f"{fig([x['wrk']['p50_ms'] for x in n], '{:.2f}')} / "
                  f"{fig([x['wrk']['p99_ms'] for x in n], '{:.2f}')} | |")
        md.append(f"| intake, {c} connections: ratio daemon / nginx | {fig(ratios, '{:.2f}')} | "
                  f"{'≥ 0.4' if c == 64 else ''} |")
        md.append(f"| intake, {c} connections: every 202 stored | "
                  f"{all(x['stored'] >= x['wrk']['accepted'] for x in d)} "
                  f"({sum(x['wrk']['accepted'] for x in d)} accepted, "
                  f"{sum(x['stored'] for x in d)} stored) | yes |")
fsync = [r["fsync_ms"] for r in intake if "fsync_ms" in r]
if fsync:
    md.append(f"| disk: one synchronous 4 KiB write (O_DSYNC), ms | {fig(fsync, '{:.2f}')} | |")

ful = lines("fulfilment.jsonl")
if ful:
    md.append(f"| fulfilment, {ful[0]['jobs']} deletes, {ful[0]['latency_ms']} ms/call, "
              f"R = {ful[0]['limit']}/s: jobs/s | {fig([r['jobs_per_s'] for r in ful], '{:.1f}')} | |")
    md.append(f"| fulfilment: ratio to the ceiling R / 4 = {ful[0]['ceiling']:.0f} jobs/s | "
              f"{fig([r['ratio'] for r in ful], '{:.3f}')} | ≥ 0.9 |")
    md.append(f"| fulfilment: 429s received | {fig([r['calls_429'] for r in ful])} | 0 |")
    for r in ful:
        if r["completed"] != r["jobs"]:
            problems.append(f"fulfilment run {r['run']}: {r['completed']} of {r['jobs']} completed")

start = lines("startup.jsonl")
for jobs, label, target in ((0, "idle", "≤ 16 MiB"), (100000, "100,000 queued jobs", "≤ 64 MiB")):
    rs = [r for r in start if r["jobs"] == jobs]
    if rs:
        md.append(f"| peak RSS, {label}, MiB | {fig([r['peak_rss_mib'] for r in rs], '{:.1f}')} | {target} |")
        if jobs:
            md.append(f"| start-up to READY with {label}, ms | "
                      f"{fig([r['ready_ms'] for r in rs])} | ≤ 1000 |")
copy = lines("copy-memory.jsonl")
if copy:
    md.append(f"| peak RSS, copy of a customer with {copy[0]['events']:,} events, MiB | "
              f"{fig([r['peak_rss_mib'] for r in copy], '{:.1f}')} | ≤ 64 MiB |")
    md.append(f"| that copy: 202 to acknowledged report, s | "
              f"{fig([r['reported_ms'] / 1000 for r in copy], '{:.1f}')} | |")

for r in lines("micro.jsonl"):
    md.append(f"| micro: {r['measure']}, µs | {r['us']:.2f} ({r['min']:.2f}–{r['max']:.2f}) | |")

if problems:
    md.append("")
    md.append("Problems:")
    md.extend(f"- {p}" for p in problems)
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(md) + "\n")
with open(os.path.join(out, "intake.dat"), "w") as f:
    f.write("\n".join(dat) + "\n")
print("\n".join(md))
sys.exit(1 if problems else 0)
