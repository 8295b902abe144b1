#!/usr/bin/env python3
"""Prints hikyaku beside Postfix: the median (min-max) of each figure per
workload, and the ratio hikyaku/Postfix of the medians.
   compare.py HIKYAKU.jsonl POSTFIX.jsonl"""
import json
import statistics
import sys


def load(path):
    runs = {}
    try:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                workload = r["label"].split("/")[1]
                runs.setdefault(workload, []).append(r)
    except FileNotFoundError:
        pass
    return runs


def median(runs, key, scale=1.0):
    values = [r[key] * scale for r in runs if r.get("ok") and r.get(key) is not None]
    if not values:
        return None, ""
    m = statistics.median(values)
    spread = f" ({min(values):.0f}-{max(values):.0f})" if len(values) > 1 else ""
    return m, f"{m:.0f}{spread}"


def main():
    ours, theirs = load(sys.argv[1]), load(sys.argv[2])
    figures = [("accept msg/s", "accept_rate", 1.0), ("end-to-end msg/s", "e2e_rate", 1.0),
               ("deliveries/s", "deliveries_per_s", 1.0), ("peak PSS MiB", "peak_pss_kib", 1 / 1024)]
    print("| workload | figure | hikyaku | Postfix | hikyaku/Postfix |")
    print("|---|---|---|---|---|")
    for workload in sorted(set(ours) | set(theirs)):
        a, b = ours.get(workload, []), theirs.get(workload, [])
        ok = f"{sum(r.get('ok', False) for r in a)}/{len(a)} vs {sum(r.get('ok', False) for r in b)}/{len(b)} runs ok"
        for name, key, scale in figures:
            ma, ta = median(a, key, scale)
            mb, tb = median(b, key, scale)
            ratio = f"{ma / mb:.2f}" if ma is not None and mb else "-"
            print(f"| {workload} ({ok}) | {name} | {ta or '-'} | {tb or '-'} | {ratio} |")


if __name__ == "__main__":
    main()
