#!/usr/bin/env bash
# Saves and finds before and after a change, in one run: the `backends` bench (SQLite) and the
# `core` bench's find_token (memory) of BASE (a commit) and of the working tree are built, then
# run in turns — base, new, base, new — so that load on the machine hits both alike. Each run
# prints its own table against the plaintext baseline measured in that run; the summary at the
# end lists, per run, tokenvault's time and its ratio to that baseline for each operation.
#
#   bash benches/before_after.sh BASE [RECORDS]      # RECORDS: store size, default 10000
#
# Environment: BENCHES (default "backends core"), BACKENDS_FILTER (criterion filter, default
# sqlite), CORE_FILTER (default "find_token|save_token"), ROUNDS (default 2).
#
# The base is checked out in a temporary worktree and built in its own target directory
# (one release build more than a normal bench run), kept in target/before-after/base-target
# for the next run. Every run's whole output is kept in $BENCH_LOGS (default
# target/before-after/); the tail of each (its tables) is printed.
set -euo pipefail

base=${1:?usage: bash benches/before_after.sh BASE [RECORDS]}
records=${2:-10000}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
logs=${BENCH_LOGS:-$root/target/before-after}
mkdir -p "$logs"
base_target=$root/target/before-after/base-target
cleanup() {
    git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
git -C "$root" worktree add --detach "$work/base" "$base" >/dev/null

# The bench executables of the tree at $1, built into target directory $2.
build() {
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench --locked --no-run --bench backends --bench core \
        --message-format=json 2>/dev/null) |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["bench"]:
        print(m["target"]["name"], m["executable"])'
}

echo "building the benches of $base and of the working tree..." >&2
declare -A exe
while read -r name path; do exe[base-$name]=$path; done < <(build "$work/base" "$base_target")
while read -r name path; do exe[new-$name]=$path; done < <(build "$root" "${CARGO_TARGET_DIR:-$root/target}")
for key in base-backends new-backends base-core new-core; do
    [[ -n "${exe[$key]:-}" ]] || { echo "no bench executable for $key" >&2; exit 1; }
done

export TOKENVAULT_BENCH_RECORDS=$records
for round in $(seq "${ROUNDS:-2}"); do
    for side in base new; do
        for bench in ${BENCHES:-backends core}; do
            filter=${BACKENDS_FILTER:-sqlite}
            [[ $bench == core ]] && filter=${CORE_FILTER:-find_token|save_token}
            log=$logs/$side-$round-$bench.log
            echo "=== round $round, $side ($([[ $side == base ]] && echo "$base" || echo "working tree")): $bench -- --quick $filter ==="
            "${exe[$side-$bench]}" --bench --quick "$filter" >"$log" 2>&1
            tail -n 32 "$log"
        done
    done
done
echo "logs: $logs"
