#!/usr/bin/env python3
"""The table of `make bench`: hikyaku beside Postfix, per workload and
figure the median of the runs that passed, with the spread (min-max) when
there are several, and the ratio hikyaku/Postfix of the medians.

   compare.py RESULTS.jsonl [MORE.jsonl ...]

Reads the lines of Benchmarks/mta_bench.py, deferred_bench.py and
idle_bench.py (and the shared harness's older lines, whose label is
MTA/WORKLOAD/REP). Prints markdown.
"""
import json
import statistics
import sys

MIB = 1 / 1024

SMTP = [  # label, key, scale
    ("accept msg/s", "accept_rate", 1),
    ("end-to-end msg/s", "e2e_rate", 1),
    ("deliveries/s", "deliveries_per_s", 1),
    ("250 after DATA p50 ms", "accept_p50_ms", 1),
    ("250 after DATA p99 ms", "accept_p99_ms", 1),
    ("time to delivery p50 ms", "deliver_p50_ms", 1),
    ("time to delivery p99 ms", "deliver_p99_ms", 1),
    ("CPU s per 1,000 msgs", "cpu_per_1k_s", 1),
    ("peak RSS MiB (summed over processes)", "peak_rss_kib", MIB),
    ("peak PSS MiB (summed over processes)", "peak_pss_kib", MIB),
    ("sum of per-process peak RSS (VmHWM) MiB", "sum_hwm_kib", MIB),
    ("processes at once (max)", "peak_procs", 1),
]
SENDMAIL_NAMES = {"250 after DATA p50 ms": "sendmail call p50 ms", "250 after DATA p99 ms": "sendmail call p99 ms"}
DEFERRED = [
    ("fill: accept msg/s", "fill_accept_rate", 1),
    ("fill: s until all deferred", "fill_s", 1),
    ("fill: CPU s per 1,000 msgs", "fill_cpu_per_1k_s", 1),
    ("fill: peak RSS MiB (summed)", "fill_peak_rss_kib", MIB),
    ("qmgr RSS MiB, full queue", "qmgr_rss_kib", MIB),
    ("qmgr peak RSS MiB (VmHWM) after the scan", "qmgr_scan_hwm_kib", MIB),
    ("all processes RSS MiB, full queue", "all_rss_kib", MIB),
    ("mailq s", "mailq_s", 1),
    ("full scan s (flush until every message looked at)", "scan_s", 1),
    ("scan: messages looked at", "scanned", 1),
    ("scan: CPU s per 1,000 msgs", "scan_cpu_per_1k_s", 1),
    ("delete all s", "delete_s", 1),
]
IDLE = [
    ("idle sessions held", "sessions_open", 1),
    ("s to open them", "open_seconds", 1),
    ("trickle reply latency p50 ms", "latency_p50_ms", 1),
    ("trickle reply latency p99 ms", "latency_p99_ms", 1),
    ("trickle reply latency max ms", "latency_max_ms", 1),
    ("trickle whole message max ms", "message_max_ms", 1),
    ("smtpd processes", "smtpd_procs", 1),
    ("smtpd peak RSS MiB (VmHWM summed)", "smtpd_hwm_kib_sum", MIB),
    ("all processes RSS MiB (summed)", "all_rss_kib_sum", MIB),
    ("all processes PSS MiB (summed)", "all_pss_kib_sum", MIB),
]
DESCRIPTION = {
    "a": "a: 1 KiB to one Maildir user, 20 sessions x 10",
    "b": "b: 100 KiB to one Maildir user, 20 sessions x 10",
    "c": "c: to an alias of 50 users (50 deliveries each), 20 sessions x 10",
    "d": "d: 50 RCPTs per message, 20 sessions x 10",
    "s": "s: `sendmail -i` in a loop, one after another",
    "relay": "relay: 1 KiB relayed to smtp-sink, 20 sessions x 10",
    "deferred": "deferred: a deferred queue (destination refuses connections)",
    "idle": "idle: idle SMTP sessions held open, messages trickle through",
}
ORDER = ["a", "b", "c", "d", "s", "relay", "deferred", "idle"]


def load(paths):
    runs = {}
    for path in paths:
        try:
            f = open(path)
        except FileNotFoundError:
            continue
        with f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                mta = r.get("mta")
                workload = r.get("workload")
                if mta is None or workload is None:
                    parts = r.get("label", "").split("/")
                    if len(parts) < 2:
                        continue
                    mta, workload = parts[0], parts[1]
                if workload == "idle" and "ok" not in r:
                    r["ok"] = (r.get("sessions_open") == r.get("sessions") and r.get("latency_max_ms") is not None
                               and r["latency_max_ms"] < 1000 and r.get("idle_alive") == r.get("idle_alive_checked"))
                runs.setdefault(workload, {}).setdefault(mta, []).append(r)
    return runs


def num(x):
    if x is None:
        return "-"
    a = abs(x)
    if float(x).is_integer():
        return f"{int(x):,}"
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def stat(runs, key, scale):
    values = [r[key] * scale for r in runs if r.get("ok") and r.get(key) is not None]
    if not values:
        # a failed run's figures still say something (e.g. how far a scan got)
        values = [r[key] * scale for r in runs if r.get(key) is not None]
        if not values:
            return None, "-"
        m = statistics.median(values)
        return None, num(m) + " (failed)"
    m = statistics.median(values)
    if len(values) > 1:
        return m, f"{num(m)} ({num(min(values))}–{num(max(values))})"
    return m, num(m)


def main():
    runs = load(sys.argv[1:])
    out = ["| workload | figure | hikyaku | Postfix | hikyaku/Postfix |", "|---|---|---|---|---|"]
    for workload in sorted(runs, key=lambda w: (ORDER.index(w) if w in ORDER else 99, w)):
        by = runs[workload]
        h, p = by.get("hikyaku", []), by.get("postfix", [])
        figures = DEFERRED if workload == "deferred" else IDLE if workload == "idle" else SMTP
        if workload not in ("c", "d"):
            figures = [f for f in figures if f[1] != "deliveries_per_s"]
        name = DESCRIPTION.get(workload, workload)
        n = {r.get("n") or r.get("sessions") for r in h + p} - {None}
        size = f", N={'/'.join(str(x) for x in sorted(n))}" if n else ""
        out.append(f"| **{name}{size}** | runs passed | {sum(bool(r.get('ok')) for r in h)}/{len(h)} | "
                   f"{sum(bool(r.get('ok')) for r in p)}/{len(p)} | |")
        for label, key, scale in figures:
            if workload == "s":
                label = SENDMAIL_NAMES.get(label, label)
            mh, th = stat(h, key, scale)
            mp, tp = stat(p, key, scale)
            if th == "-" and tp == "-":
                continue
            ratio = f"{mh / mp:.2f}" if mh is not None and mp else "-"
            out.append(f"| {workload} | {label} | {th} | {tp} | {ratio} |")
    print("\n".join(out))
    fails = [r for by in runs.values() for rs in by.values() for r in rs if not r.get("ok")]
    if fails:
        print("\nFailed runs:")
        for r in fails:
            print(f"- {r.get('label', r.get('mta'))}: {'; '.join(r.get('failures', [])[:3]) or r.get('errors', '')}")


if __name__ == "__main__":
    main()
