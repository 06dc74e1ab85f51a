#!/usr/bin/env bash
# Runs the fuzz targets with cargo-fuzz (libFuzzer), each for SECONDS.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      default: 600 s, every target, one at a time
#   FUZZ_PARALLEL=2 fuzz/run.sh 600        two targets at a time (one process each)
#   fuzz/run.sh --seeds                    only replay fuzz/seeds/ (quick smoke test)
#
# Works on a stable toolchain: cargo-fuzz needs nightly-only flags (-Zsanitizer,
# -Cpasses=sancov), so RUSTC_BOOTSTRAP=1 lets stable rustc accept them. If the
# AddressSanitizer build fails, it falls back to `--sanitizer none` (libFuzzer's
# coverage still works; Rust code is memory-safe, panics are what we look for).
#
# Corpora grow in fuzz/corpus/<target>/ (not committed); the committed seeds are in
# fuzz/seeds/<target>/. Crashes land in fuzz/artifacts/<target>/. Logs and final stats
# go to fuzz/logs/<target>.log; a summary line per target is printed at the end.
set -euo pipefail

cd "$(dirname "$0")"
ALL_TARGETS=(scan_framing pos_request config_parse money)
if [ -f fuzz_targets/ats_decode.rs ]; then ALL_TARGETS+=(ats_decode); fi

SEEDS_ONLY=0
if [ "${1:-}" = "--seeds" ]; then SEEDS_ONLY=1; shift; fi
SECONDS_PER_TARGET=${1:-600}
[ $# -gt 0 ] && shift
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
PARALLEL=${FUZZ_PARALLEL:-1}

export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

mkdir -p logs
SAN=()
if ! cargo fuzz build -O -a "${TARGETS[@]:0:1}" >/dev/null 2>logs/build.txt; then
    echo "address sanitizer build failed; using --sanitizer none" >&2
    SAN=(--sanitizer none)
    cargo fuzz build -O -a "${SAN[@]}"
fi
cargo fuzz build -O -a "${SAN[@]}"

run_one() {
    local t=$1 corpus="corpus/$1" dict=()
    mkdir -p "$corpus" "artifacts/$t"
    [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
    if [ $SEEDS_ONLY = 1 ]; then
        cargo fuzz run -O -a "${SAN[@]}" "$t" "seeds/$t" -- -runs=0 "${dict[@]}" \
            >"logs/$t.log" 2>&1
    else
        # -timeout: an input taking >10 s is a hang; -rss_limit_mb: unbounded memory.
        cargo fuzz run -O -a "${SAN[@]}" "$t" "$corpus" "seeds/$t" -- \
            -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
            -max_len=8192 -print_final_stats=1 "${dict[@]}" >"logs/$t.log" 2>&1
    fi
}

declare -A STATUS
pids=()
names=()
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    if [ ${#pids[@]} -ge "$PARALLEL" ]; then
        for i in "${!pids[@]}"; do
            if wait "${pids[$i]}"; then STATUS[${names[$i]}]=ok; else STATUS[${names[$i]}]=FAILED; fi
        done
        pids=()
        names=()
    fi
done
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then STATUS[${names[$i]}]=ok; else STATUS[${names[$i]}]=FAILED; fi
done

rc=0
for t in "${TARGETS[@]}"; do
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "logs/$t.log" | grep -Eo '[0-9]+$' || true)
    [ -z "$execs" ] && execs=$(grep -Eo '^Done [0-9]+ runs' "logs/$t.log" | grep -Eo '[0-9]+' || true)
    crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    corpus=$(find "corpus/$t" -type f 2>/dev/null | wc -l)
    echo "$t: ${STATUS[$t]} execs=${execs:-?} corpus=$corpus artifacts=$crashes log=fuzz/logs/$t.log"
    [ "${STATUS[$t]}" = ok ] || rc=1
done
exit $rc
