#!/usr/bin/env bash
# Builds the fuzz targets once and runs each for a while; exits non-zero if any crashed.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 300; the targets default to all of them (fuzz/Cargo.toml).
# Each target's corpus is fuzz/corpus/<target> (kept between runs, gitignored), seeded from
# fuzz/seeds/<target>; crashing inputs go to fuzz/artifacts/<target>/ and each target's
# libFuzzer output to fuzz/logs/<target>.log (all three gitignored). At the end a table
# gives each target's executions and verdict, and every crashing input is printed in hex.
#
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_SANITIZER (cargo fuzz's --sanitizer,
# default address), FUZZ_TIMEOUT (seconds one input may take before it counts as a hang,
# default 10), FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
FUZZ_DIR=$REPO_ROOT/fuzz

SECONDS_PER_TARGET=${1:-300}
shift || true
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || ((SECONDS_PER_TARGET == 0)); then
    echo "usage: bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
SANITIZER=${FUZZ_SANITIZER:-address}
TIMEOUT=${FUZZ_TIMEOUT:-10}
TRIPLE=x86_64-unknown-linux-gnu
BIN_DIR=$FUZZ_DIR/target/$TRIPLE/release

ALL_TARGETS=($(sed -n 's/^name = "\(.*\)"$/\1/p' "$FUZZ_DIR/Cargo.toml" | grep -v '^tokenvault-fuzz$'))

if (($# > 0)); then
    TARGETS=("$@")
    for t in "${TARGETS[@]}"; do
        if ! printf '%s\n' "${ALL_TARGETS[@]}" | grep -qx -- "$t"; then
            echo "unknown fuzz target: $t (targets: ${ALL_TARGETS[*]})" >&2
            exit 2
        fi
    done
else
    TARGETS=("${ALL_TARGETS[@]}")
fi

if ! cargo "+$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    echo "cargo +$TOOLCHAIN fuzz does not run: the $TOOLCHAIN toolchain and cargo-fuzz are needed" \
        "(cargo install --locked cargo-fuzz --version 0.13.2; .ci/run installs it)" >&2
    exit 2
fi

# One build for all targets: release with debug assertions and the sanitizer, in fuzz/target
# every time. C and C++ (the bundled SQLite, libFuzzer itself) are built for build time: the
# cc crate would compile them at -O3 with full debug info and, when the Rust code gets
# AddressSanitizer, with it too, and SQLite alone then takes GCC five to ten minutes on two
# cores. At -O1 without debug info it takes half a minute; the sanitizer covers the Rust code.
CFLAGS="${CFLAGS:+$CFLAGS }-O1 -g0"
CXXFLAGS="${CXXFLAGS:+$CXXFLAGS }-g0"
if [[ $SANITIZER == address ]]; then
    CFLAGS+=" -fno-sanitize=address"
    CXXFLAGS+=" -fno-sanitize=address"
fi
export CFLAGS CXXFLAGS
build=(cargo "+$TOOLCHAIN" fuzz build -O --debug-assertions --sanitizer "$SANITIZER")
echo "+ ${build[*]}"
build_start=$SECONDS
"${build[@]}"
echo "build: $((SECONDS - build_start))s"

# The file-based targets write scratch files under TMPDIR: a directory of this run's own,
# in memory when /dev/shm is there (their fsyncs are then free), removed at the end.
scratch_parent=/tmp
[[ -d /dev/shm && -w /dev/shm ]] && scratch_parent=/dev/shm
SCRATCH=$(mktemp -d "$scratch_parent/tokenvault-fuzz.XXXXXX")
LOG_DIR=$FUZZ_DIR/logs
mkdir -p "$LOG_DIR"
trap 'rm -rf "$SCRATCH"' EXIT

# As `cargo fuzz run` sets it: several crate versions in one binary are no ODR violation.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

declare -A EXECS=() VERDICT=() ARTIFACT=()
failed=0
for t in "${TARGETS[@]}"; do
    corpus=$FUZZ_DIR/corpus/$t
    artifacts=$FUZZ_DIR/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    if [[ -d $FUZZ_DIR/seeds/$t ]]; then
        cp -n "$FUZZ_DIR/seeds/$t"/* "$corpus"/ 2>/dev/null || true
    fi
    log=$LOG_DIR/$t.log
    echo "==> $t: ${SECONDS_PER_TARGET}s, corpus fuzz/corpus/$t ($(find "$corpus" -type f | wc -l) inputs)"
    rc=0
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    TMPDIR=$SCRATCH "$BIN_DIR/$t" "$corpus" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} >"$log" 2>&1 || rc=$?
    EXECS[$t]=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    EXECS[$t]=${EXECS[$t]:-?}
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    grep -h '^WARNING' "$log" | sort -u || true
    if ((rc == 0)) && [[ -z "$artifact" ]]; then
        VERDICT[$t]="ok"
    else
        failed=1
        if [[ -n "$artifact" ]]; then
            VERDICT[$t]="CRASHED (exit $rc)"
        else
            VERDICT[$t]="FAILED (exit $rc)"
        fi
        ARTIFACT[$t]=$artifact
        # The report from where it starts (panic message, sanitizer or libFuzzer error).
        first=$(grep -n -m1 -E 'panicked at|==ERROR|ERROR: libFuzzer' "$log" | cut -d: -f1)
        echo "--- $t: its log ($log) from the failure on ---"
        if [[ -n "$first" ]]; then
            tail -n +"$first" "$log" | head -n 120
        else
            tail -n 60 "$log"
        fi
    fi
done

echo
echo "==> fuzz summary (${SECONDS_PER_TARGET}s per target; logs in fuzz/logs/)"
printf '  %-16s %12s  %s\n' target executions verdict
for t in "${TARGETS[@]}"; do
    printf '  %-16s %12s  %s\n' "$t" "${EXECS[$t]}" "${VERDICT[$t]}"
done
for t in "${TARGETS[@]}"; do
    a=${ARTIFACT[$t]:-}
    [[ -n "$a" ]] || continue
    echo
    echo "==> $t crashed on $a ($(wc -c <"$a") bytes); reproduce: $BIN_DIR/$t $a"
    if command -v xxd >/dev/null; then xxd "$a"; else od -A x -t x1z "$a"; fi | head -n 64
done
exit "$failed"
