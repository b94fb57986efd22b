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
# Every shell script in the repo, by name or by shebang (settings in .shellcheckrc).
shellcheck_all() {
    local f files=()
    while IFS= read -r f; do
        if [[ $f == *.sh ]] || head -n1 "$f" | grep -qE '^#!.*[/ ](ba|da)?sh( |$)'; then
            files+=("$f")
        fi
    done < <(git ls-files)
    shellcheck -x "${files[@]}"
}
step "shellcheck" shellcheck_all
step "rustfmt"     cargo fmt --all -- --check
# The C/C++ codecs (JPEG-LS, 12-bit JPEG) are opt-in so that README's command 1 builds on a fresh
# machine; what CI tests, the e2e binary and the images have them.
codecs=(--features pacsbox/native-codecs)
step "clippy"      cargo clippy --workspace --all-targets "${codecs[@]}" -- -D warnings
step "clippy, no C codecs" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test"  cargo test --workspace "${codecs[@]}"
step "viewer maths" node --test web-ui/tests/*.test.mjs
# As command 1 builds them: the crates whose code depends on the feature (pacsbox-dicom and
# pacsbox-web have no such code; their tests would repeat the ones above).
step "cargo test, no C codecs" cargo test -p pacsbox-imaging -p pacsbox
step "build"       cargo build --release -p pacsbox "${codecs[@]}"
# README's command 1 as written, in a Debian 12 chroot without cmake/g++/nasm: C-ECHO and login page.
step "fresh machine" bash image-build/test/fresh-machine.sh
# The fuzz targets keep compiling and every seed and past finding keeps passing (tests/fuzz/).
step "fuzz smoke"  bash tests/fuzz/run.sh smoke 20000

if [[ ! -x "$PACSBOX_BIN" ]]; then
    echo "==> FAILED: no executable at PACSBOX_BIN=$PACSBOX_BIN" >&2
    exit 1
fi

step "e2e" python3 -m pytest -q tests/e2e
step "browser" bash tests/browser/run.sh

# The OS image: aarch64 cross-build, amd64 image booted in qemu with DICOM against it, and the
# arm64 image whenever anything it holds changed (image-build/README.md, "CI").
step "image" bash image-build/ci.sh
