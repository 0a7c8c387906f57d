#!/usr/bin/env python3
"""Reads the JSON lines bench/*.sh appended to <out-dir> and writes <out-dir>/results.md (the
results tables: median of the runs, min–max; the store engines side by side) and
<out-dir>/intake.dat (for bench/intake.gp).

    bench/summarize.py <out-dir>

Lines without an "engine" (written before there were two) are SQLite's. Exits 1 when a check
fails (a 202 not stored, ids repeated, a fulfilment job not completed).
"""
import json
import os
import statistics
import sys

out = sys.argv[1]
ENGINES = ("sqlite", "postgresql")
NAME = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    for r in rows:
        if r.get("target", "daemon") == "daemon":
            r.setdefault("engine", "sqlite")
    return rows


def fig(values, fmt="{:.0f}"):
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def load(rows):
    """The 1-minute load averages at the end of the runs (min–max), and the steal if any."""
    ls = [r["machine"]["load"][0] for r in rows if "machine" in r]
    if not ls:
        return "—"
    text = f"{min(ls):.2f}–{max(ls):.2f}" if min(ls) != max(ls) else f"{ls[0]:.2f}"
    steal = [r["machine"].get("steal_pct") for r in rows if r.get("machine", {}).get("steal_pct")]
    if steal and max(steal) >= 1:
        text += f", steal {max(steal):.0f} %"
    return text


problems = []
md = []

# Intake: one row per engine (and nginx) and connection count.
intake = lines("intake.jsonl")
by = {}
for r in intake:
    key = r["engine"] if r["target"] == "daemon" else "nginx"
    by.setdefault((key, r["connections"]), []).append(r)
conns = sorted({c for _, c in by})
engines = [e for e in ENGINES if any((e, c) in by for c in conns)]
dat = ["# connections sqlite_rps sqlite_p99_ms nginx_rps nginx_p99_ms postgresql_rps "
       "postgresql_p99_ms"]
if intake:
    md += ["## Intake (wrk, pre-signed delete webhooks; every answer a 202 unless said)", "",
           "| connections | target | requests/s | ratio to nginx | p50 ms | p99 ms | "
           "every 202 stored | load (1 min) |",
           "|---|---|---|---|---|---|---|---|"]
for c in conns:
    n = by.get(("nginx", c), [])
    nginx_by_run = {x["run"]: x["wrk"]["rps"] for x in n}
    for key in engines + ["nginx"]:
        rs = by.get((key, c), [])
        if not rs:
            continue
        stored = "—"
        if key != "nginx":
            for r in rs:
                if r["stored"] < r["wrk"]["accepted"]:
                    problems.append(f"{key} c={c} run {r['run']}: {r['wrk']['accepted']} answered "
                                    f"202 but {r['stored']} jobs stored")
                if r["wrk"]["ids_repeated"]:
                    problems.append(f"{key} c={c} run {r['run']}: request ids repeated (more "
                                    f"bodies needed)")
                if r["wrk"]["other_status"] or r["wrk"]["socket_errors"]:
                    problems.append(f"{key} c={c} run {r['run']}: {r['wrk']['other_status']} "
                                    f"answers other than 202, {r['wrk']['socket_errors']} "
                                    f"socket errors")
            stored = (f"{'yes' if all(x['stored'] >= x['wrk']['accepted'] for x in rs) else 'NO'}"
                      f" ({sum(x['wrk']['accepted'] for x in rs):,} / "
                      f"{sum(x['stored'] for x in rs):,})")
        ratios = [x["wrk"]["rps"] / nginx_by_run[x["run"]] for x in rs
                  if key != "nginx" and x["run"] in nginx_by_run]
        md.append(f"| {c} | {NAME.get(key, key)} | {fig([x['wrk']['rps'] for x in rs], '{:,.0f}')} | "
                  f"{fig(ratios, '{:.2f}')} | {fig([x['wrk']['p50_ms'] for x in rs], '{:.2f}')} | "
                  f"{fig([x['wrk']['p99_ms'] for x in rs], '{:.2f}')} | {stored} | {load(rs)} |")

    def med(key, k):
        rs = by.get((key, c), [])
        return statistics.median(x["wrk"][k] for x in rs) if rs else float("nan")

    dat.append(f"{c} {med('sqlite', 'rps'):.1f} {med('sqlite', 'p99_ms'):.3f} "
               f"{med('nginx', 'rps'):.1f} {med('nginx', 'p99_ms'):.3f} "
               f"{med('postgresql', 'rps'):.1f} {med('postgresql', 'p99_ms'):.3f}")

# The goal: PostgreSQL's intake at least half SQLite's, on the same machine in the same
# run. Runs of the two engines alternate, so run i of one is compared with run i of the other.
pairs = [(c, by.get(("sqlite", c), []), by.get(("postgresql", c), [])) for c in conns]
pairs = [(c, s, p) for c, s, p in pairs if s and p]
if pairs:
    md += ["", "PostgreSQL against SQLite (run i of one against run i of the other; goal ≥ 0.5 "
           "for requests/s):", "",
           "| connections | requests/s, PostgreSQL / SQLite | p99, PostgreSQL / SQLite | goal |",
           "|---|---|---|---|"]
    for c, s, p in pairs:
        sr = {x["run"]: x["wrk"] for x in s}
        rps = [x["wrk"]["rps"] / sr[x["run"]]["rps"] for x in p if x["run"] in sr]
        p99 = [x["wrk"]["p99_ms"] / sr[x["run"]]["p99_ms"] for x in p if x["run"] in sr]
        ok = statistics.median(rps) >= 0.5 if rps else False
        md.append(f"| {c} | {fig(rps, '{:.2f}')} | {fig(p99, '{:.1f}')} | "
                  f"{'met' if ok else '**missed**'} |")

fsync = [r["fsync_ms"] for r in intake if "fsync_ms" in r]

# Everything else: one column per engine.
ful = lines("fulfilment.jsonl")
start = lines("startup.jsonl")
copy = lines("copy-memory.jsonl")
micro = lines("micro.jsonl")
# copy-memory.sh and the micro-benchmark know SQLite only.
cols = [e for e in ENGINES
        if any(r.get("engine") == e for r in ful + start) or (e == "sqlite" and (copy or micro))]
cols = cols or ["sqlite"]
rows = []


def row(measure, per_engine, target=""):
    rows.append(f"| {measure} | " + " | ".join(per_engine.get(e, "—") for e in cols) +
                f" | {target} |")


if fsync:
    row("disk: one synchronous 4 KiB write (O_DSYNC), ms",
        {cols[0]: fig(fsync, "{:.2f}")})
if ful:
    f0 = ful[0]
    fe = {e: [r for r in ful if r["engine"] == e] for e in cols}
    row(f"fulfilment, {f0['jobs']:,} deletes, {f0['latency_ms']} ms/call, R = {f0['limit']}/s: "
        f"jobs/s", {e: fig([r["jobs_per_s"] for r in rs], "{:.1f}") for e, rs in fe.items() if rs})
    row(f"fulfilment: ratio to the ceiling R / 4 = {f0['ceiling']:.0f} jobs/s",
        {e: fig([r["ratio"] for r in rs], "{:.3f}") for e, rs in fe.items() if rs}, "≥ 0.9")
    row("fulfilment: 429s received",
        {e: fig([r["calls_429"] for r in rs]) for e, rs in fe.items() if rs}, "0")
    row("fulfilment: flows waiting for the limiter / in calls (of the concurrency)",
        {e: f"{fig([r['flows_waiting_for_limiter'] for r in rs], '{:.1f}')} / "
            f"{fig([r['flows_in_calls'] for r in rs], '{:.1f}')} of {rs[0]['concurrency']}"
         for e, rs in fe.items() if rs})
    row("fulfilment: load (1 min)", {e: load(rs) for e, rs in fe.items() if rs})
    for r in ful:
        if r["completed"] != r["jobs"]:
            problems.append(f"fulfilment {r['engine']} run {r['run']}: {r['completed']} of "
                            f"{r['jobs']} completed")

for jobs, label, target in ((0, "idle", "≤ 16 MiB"), (100000, "100,000 queued jobs", "≤ 64 MiB")):
    se = {e: [r for r in start if r.get("engine", "sqlite") == e and r["jobs"] == jobs]
          for e in cols}
    if any(se.values()):
        row(f"peak RSS, {label}, MiB (the daemon)",
            {e: fig([r["peak_rss_mib"] for r in rs], "{:.1f}") for e, rs in se.items() if rs},
            target)
        backend = {e: fig([r["backend_rss_mib"] for r in rs if r.get("backend_rss_mib")],
                          "{:.1f}")
                   for e, rs in se.items() if any(r.get("backend_rss_mib") for r in rs)}
        if backend:
            row(f"peak RSS, {label}, MiB: the server backend serving the daemon", backend)
        if jobs:
            row(f"start-up to READY with {label}, ms",
                {e: fig([r["ready_ms"] for r in rs]) for e, rs in se.items() if rs}, "≤ 1000")
        row(f"start-up and RSS with {label}: load (1 min)",
            {e: load(rs) for e, rs in se.items() if rs})
if copy:
    row(f"peak RSS, copy of a customer with {copy[0]['events']:,} events, MiB",
        {"sqlite": fig([r["peak_rss_mib"] for r in copy], "{:.1f}")}, "≤ 64 MiB")
    row("that copy: 202 to acknowledged report, s",
        {"sqlite": fig([r["reported_ms"] / 1000 for r in copy], "{:.1f}")})
for r in micro:
    row(f"micro: {r['measure']}, µs", {"sqlite": f"{r['us']:.2f} ({r['min']:.2f}–{r['max']:.2f})"})

if rows:
    md += ["", "## Fulfilment, memory, start-up", "",
           "| measure | " + " | ".join(NAME[e] for e in cols) + " | target |",
           "|---|" + "---|" * len(cols) + "---|"] + rows

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
