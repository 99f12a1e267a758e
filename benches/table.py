#!/usr/bin/env python3
"""Prints benches/results/*.json (from benches/run-all.sh) as the Markdown
table in benches/README.md."""
import glob
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
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
