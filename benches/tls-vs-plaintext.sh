#!/usr/bin/env bash
# What TLS costs: runs produce and consume workloads (1 KiB messages) over
# plaintext and over TLS, alternately (the order flips every repetition),
# each run on a fresh broker spawned by ferry-bench (`--tls`: a self-signed
# certificate made at start), and prints per scenario the median msgs/s and
# MB/s of each mode, their spread (min-max), and the TLS/plaintext ratio of
# the medians.
#
#   benches/tls-vs-plaintext.sh               # 3 repetitions
#   REPS=5 benches/tls-vs-plaintext.sh        # 1..10
#   NO_BUILD=1 benches/tls-vs-plaintext.sh    # use the release binaries as built
#
# Bounded: REPS x 2 workloads x 2 modes runs, each killed after RUN_TIMEOUT_S.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS="${REPS:-3}"
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-300}"
WORKLOADS=(produce-written-4p-1kb consume-4-consumers-1kb)
MAX_REPS=10

if ! [[ "$REPS" =~ ^[0-9]+$ ]] || ((REPS < 1 || REPS > MAX_REPS)); then
    echo "REPS must be 1..$MAX_REPS" >&2
    exit 2
fi
if [[ -z "${NO_BUILD:-}" ]]; then
    cargo build --release --bin ferry-broker --bin ferry-bench
fi
bench=target/release/ferry-bench
broker=target/release/ferry-broker
out="$(mktemp -d "${TMPDIR:-/tmp}/ferry-tls-vs-plaintext.XXXXXX")"

one_run() { # workload mode rep
    local flags=()
    [[ "$2" == tls ]] && flags=(--tls)
    echo "== $1 $2 (repetition $3/$REPS)" >&2
    timeout "$RUN_TIMEOUT_S" "$bench" --json --spawn-broker "$broker" \
        --broker-arg=--fsync=always "${flags[@]}" \
        run "benches/workloads/$1.toml" >"$out/$1.$2.$3.json"
}

for rep in $(seq 1 "$REPS"); do
    for workload in "${WORKLOADS[@]}"; do
        if ((rep % 2)); then
            modes=(plaintext tls)
        else
            modes=(tls plaintext)
        fi
        for mode in "${modes[@]}"; do
            one_run "$workload" "$mode" "$rep"
        done
    done
done

python3 - "$out" <<'EOF'
"""Medians, spread and ratio of the runs in the directory given."""
import glob
import json
import os
import statistics
import sys

runs = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    workload, mode, _ = os.path.basename(path).rsplit(".", 3)[:3]
    with open(path) as f:
        doc = json.load(f)
    for r in doc["results"]:
        key = (workload, r["scenario"])
        runs.setdefault(key, {}).setdefault(mode, []).append(r)


def cell(results, field, digits):
    values = [r[field] for r in results]
    median = statistics.median(values)
    return median, f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


print("| workload | scenario | runs | plaintext msgs/s | TLS msgs/s | plaintext MB/s | TLS MB/s | TLS/plaintext |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for (workload, scenario), modes in sorted(runs.items()):
    plain, tls = modes.get("plaintext", []), modes.get("tls", [])
    if not plain or not tls:
        continue
    plain_msgs, plain_msgs_cell = cell(plain, "msgs_per_sec", 0)
    tls_msgs, tls_msgs_cell = cell(tls, "msgs_per_sec", 0)
    _, plain_mb_cell = cell(plain, "mb_per_sec", 1)
    _, tls_mb_cell = cell(tls, "mb_per_sec", 1)
    ratio = tls_msgs / plain_msgs if plain_msgs else float("nan")
    print(f"| {workload} | {scenario} | {len(plain)}+{len(tls)} | {plain_msgs_cell} | {tls_msgs_cell} "
          f"| {plain_mb_cell} | {tls_mb_cell} | {ratio:.2f} |")
print(f"\nmedian (min-max) of each mode; runs kept in {sys.argv[1]}")
EOF
