#!/usr/bin/env bash
# Runs every workload with two builds in one sitting, alternating (before,
# after, before, after, ...) so that both meet the same machine state, and
# writes benches/results/before-after/<name>.<before|after>.<rep>.json.
#
#   benches/before-after.sh OLD_CHECKOUT [REPS] [PATTERN]
#
# FIRST_REP=N starts the repetitions at N (to add runs to earlier ones).
# OLD_CHECKOUT is another checkout of this repository (e.g. a `git
# worktree` at the commit to compare with), built with its own target dir;
# each build runs its own copy of the workload file of the same name.
set -euo pipefail
cd "$(dirname "$0")/.."
old="${1:?usage: before-after.sh OLD_CHECKOUT [REPS] [PATTERN]}"
reps="${2:-1}"
pattern="${3:-*}"
old_target="${OLD_TARGET_DIR:-$old/target}"
if [[ -z "${NO_BUILD:-}" ]]; then
    cargo build --release --bin ferry-broker --bin ferry-bench
    (cd "$old" && CARGO_TARGET_DIR="$old_target" cargo build --release --bin ferry-broker --bin ferry-bench)
fi
out=benches/results/before-after
mkdir -p "$out"
run() { # label bench broker workload json
    "$2" --json --spawn-broker "$3" --broker-arg=--fsync=always run "$4" > "$5"
}
for workload in benches/workloads/$pattern.toml; do
    name="$(basename "$workload" .toml)"
    [[ -f "$old/benches/workloads/$name.toml" ]] || continue
    for rep in $(seq "${FIRST_REP:-1}" "$reps"); do
        echo "== $name rep $rep" >&2
        run before "$old_target/release/ferry-bench" "$old_target/release/ferry-broker" \
            "$old/benches/workloads/$name.toml" "$out/$name.before.$rep.json"
        run after target/release/ferry-bench target/release/ferry-broker \
            "$workload" "$out/$name.after.$rep.json"
    done
done
python3 benches/table.py --before-after "$out"
