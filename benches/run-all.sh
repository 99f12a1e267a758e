#!/usr/bin/env bash
# Runs every workload in benches/workloads against a fresh broker each
# (spawned by ferry-bench on a temporary data dir beside this checkout) and
# writes one JSON document per workload to benches/results/<name>.json.
#
#   benches/run-all.sh            # all workloads
#   benches/run-all.sh e2e-*      # a subset (glob on the file name)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin ferry-broker --bin ferry-bench
mkdir -p benches/results
pattern="${1:-*}"
for workload in benches/workloads/$pattern.toml; do
    name="$(basename "$workload" .toml)"
    echo "== $name" >&2
    target/release/ferry-bench --json --spawn-broker target/release/ferry-broker \
        --broker-arg=--fsync=always run "$workload" > "benches/results/$name.json"
done
