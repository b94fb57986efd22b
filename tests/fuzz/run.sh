#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on stable Rust and runs them (README.md here).
#   bash tests/fuzz/run.sh build
#   bash tests/fuzz/run.sh smoke [runs]           every target: the seed corpus, then `runs`
#                                                 mutated inputs (default 20000); CI's step
#   bash tests/fuzz/run.sh run TARGET [libFuzzer flags...]
#                                                 one campaign, e.g. -runs=10000000; new
#                                                 inputs go to tests/fuzz/target/corpus/TARGET
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

TARGETS=(pdu scan charset identifier deid http_head)
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
# Coverage-guided without nightly: the SanitizerCoverage pass libFuzzer reads, switched on
# through LLVM arguments stable rustc accepts. No AddressSanitizer (nightly only), which safe
# Rust does not need; overflow checks and debug assertions are on (Cargo.toml's profile).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
export CARGO_TARGET_DIR="$here/target"
BIN="$CARGO_TARGET_DIR/$TRIPLE/release"

build() {
    local bins=() t
    for t in "${TARGETS[@]}"; do bins+=(--bin "$t"); done
    # --target keeps RUSTFLAGS off build scripts and proc macros.
    cargo build --release --locked --features libfuzzer --target "$TRIPLE" "${bins[@]}"
}

# libFuzzer flags for every run: a slow input or 1 GB of memory is a finding too.
COMMON=(-timeout=10 -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1)

run() {
    local t="$1"; shift
    mkdir -p "$CARGO_TARGET_DIR/corpus/$t" "$CARGO_TARGET_DIR/artifacts"
    # Past findings, where a target has any (git keeps no empty folder).
    local past=()
    [[ -d "regressions/$t" ]] && past=("regressions/$t")
    "$BIN/$t" "${COMMON[@]}" -artifact_prefix="$CARGO_TARGET_DIR/artifacts/$t-" "$@" \
        "$CARGO_TARGET_DIR/corpus/$t" "corpus/$t" "${past[@]}"
}

case "${1:-}" in
    build) build ;;
    smoke)
        build
        for t in "${TARGETS[@]}"; do
            log="$CARGO_TARGET_DIR/smoke-$t.log"
            if ! run "$t" -runs="${2:-20000}" -seed=1 >"$log" 2>&1; then
                tail -40 "$log" >&2
                echo "fuzz target $t failed (log: $log)" >&2
                exit 1
            fi
            echo "$t: $(grep -E '^stat::number_of_executed_units' "$log")"
        done ;;
    run) shift; build; run "$@" ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
