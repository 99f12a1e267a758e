#!/usr/bin/env python3
"""Prints benches/results/*.json (from benches/run-all.sh) as the Markdown
table in benches/README.md; with --before-after DIR, the runs of
benches/before-after.sh as a table of medians, spreads and ratios."""
import glob
import json
import os
import statistics
import sys

here = os.path.dirname(os.path.abspath(__file__))


def before_after(directory):
    """One row per workload and phase: median MB/s (min-max) before and
    after, the ratio of the medians, and the p99 latencies."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        name, side, _rep, _ = os.path.basename(path).rsplit(".", 3)
        with open(path) as f:
            doc = json.load(f)
        for i, r in enumerate(doc["results"]):
            key = (name, i, r["scenario"])
            runs.setdefault(key, {"before": [], "after": []})[side].append(r)
    print("| workload | phase | before MB/s | after MB/s | after/before | p99 us before | p99 us after |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")

    def cell(rs):
        mbs = sorted(r["mb_per_sec"] for r in rs)
        return statistics.median(mbs), f"{statistics.median(mbs):.1f} ({mbs[0]:.0f}-{mbs[-1]:.0f})"

    for (name, _i, scenario), sides in sorted(runs.items()):
        if not sides["before"] or not sides["after"]:
            continue
        (b, bcell), (a, acell) = cell(sides["before"]), cell(sides["after"])
        p99 = lambda rs: statistics.median(r["latency_us"]["p99"] for r in rs)
        ratio = f"{a / b:.2f}" if b else "-"
        print(f"| {name} | {scenario} | {bcell} | {acell} | {ratio} | {p99(sides['before']):.0f} | {p99(sides['after']):.0f} |")


if len(sys.argv) == 3 and sys.argv[1] == "--before-after":
    before_after(sys.argv[2])
    sys.exit(0)

print("| workload | scenario | msgs/s | MB/s | p50 us | p99 us | p99.9 us | max us | ratio to baseline (same run) |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for path in sorted(glob.glob(os.path.join(here, "results", "*.json"))):
    with open(path) as f:
        doc = json.load(f)
    base = doc.get("baseline") or {}
    for r in doc["results"]:
        l = r["latency_us"]
        ratio = r.get("ratio_to_baseline")
        name = r.get("baseline_name")
        if ratio is not None:
            ref = base.get(f"{name}_mb_per_sec") or base.get(name.replace("disk_write_fdatasync", "disk_write_fdatasync_mb_per_sec"))
            label = {"disk_write": "raw write", "disk_write_fdatasync": "raw write+fdatasync", "loopback_tcp": "loopback TCP"}[name]
            cell = f"{ratio:.2f} x {label} ({ref:.0f} MB/s)" if ref else f"{ratio:.2f} x {label}"
        else:
            cell = "-"
        print(f"| {doc['workload']} | {r['scenario']} | {r['msgs_per_sec']:.0f} | {r['mb_per_sec']:.1f} | {l['p50']} | {l['p99']} | {l['p999']} | {l['max']} | {cell} |")
