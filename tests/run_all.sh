#!/usr/bin/env bash
# The whole test suite, in CI order: formatting, lints, Rust tests, release
# build, then the end-to-end suite and the browser tests against the release binary.
# Fails fast: the first failing step stops the run with its name printed.
set -euo pipefail

cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PACSBOX_BIN="${PACSBOX_BIN:-target/release/pacsbox}"

step() {
    local name="$1"; shift
    echo
    echo "==> ${name}: $*"
    local start=$SECONDS
    if ! "$@"; then
        echo "==> FAILED: ${name} (after $((SECONDS - start))s)" >&2
        exit 1
    fi
    echo "==> ok: ${name} ($((SECONDS - start))s)"
}

step "dependencies" bash tests/install_deps.sh
step "rustfmt"     cargo fmt --all -- --check
step "clippy"      cargo clippy --workspace --all-targets -- -D warnings
# An image may leave out the C/C++ codecs (pacsbox's feature native-codecs): keep that buildable.
step "clippy, no C codecs" cargo clippy -p pacsbox --no-default-features -- -D warnings
step "cargo test"  cargo test --workspace
step "build"       cargo build --release -p pacsbox
# The fuzz targets keep compiling and every seed and past finding keeps passing (tests/fuzz/).
step "fuzz smoke"  bash tests/fuzz/run.sh smoke 20000

if [[ ! -x "$PACSBOX_BIN" ]]; then
    echo "==> FAILED: no executable at PACSBOX_BIN=$PACSBOX_BIN" >&2
    exit 1
fi

step "e2e" python3 -m pytest -q tests/e2e
step "browser" bash tests/browser/run.sh

# The OS image: aarch64 cross-build, amd64 image booted in qemu with DICOM against it, and the
# arm64 image when image-build/ or the start-up code changed (image-build/README.md, "CI").
step "image" bash image-build/ci.sh
