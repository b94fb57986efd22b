#!/usr/bin/env bash
# The image part of CI (called by tests/run_all.sh after the host tests):
#   0. avahi-browse finds the release binary's mDNS announcement (test/avahi-check.sh);
#   1. the aarch64 cross-build of the firmware, with its C codecs (every run);
#   2. the amd64 image with the test overlay, and its full boot test in qemu (every run);
#   3. the arm64 (Raspberry Pi 4) test image and its boot test whenever anything the image holds
#      changed: the content key covers firmware/, web-ui/ (compiled in), Cargo.toml, Cargo.lock,
#      image-build/ and README.md (installed in the image). Skipped only when that exact content
#      already passed on this machine; PACSBOX_IMAGE_ARM64=1 forces it. A failure or a timeout
#      fails CI;
#   4. last, on the amd64 test image: power cuts under load and a RAID1 member lost and rebuilt
#      (test/powercut-test.sh, KVM when usable; every run).
# Chroots and root file systems are cached in $CACHE_DIR (default /var/cache/pacsbox-image),
# so only the first run on a machine pays for them; images are deleted after the test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_DIR"

timed() {
    local name="$1"; shift
    local t0=$SECONDS
    echo "--> image: $name"
    "$@"
    echo "--> image: $name done in $((SECONDS - t0)) s"
}

out="$CACHE_DIR/ci-out"
rm -rf "$out"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
version="$(pacsbox_version)"

timed "host tools" ensure_host_tools
if [[ -x "${PACSBOX_BIN:-}" ]]; then
    timed "mDNS announcement seen by avahi" "$IMAGE_BUILD_DIR/test/avahi-check.sh" "$PACSBOX_BIN"
fi
timed "aarch64 cross-build" "$IMAGE_BUILD_DIR/cross-build.sh" --out "$CACHE_DIR/out/pacsbox-aarch64"

amd64_bin=()
[[ -x "${PACSBOX_BIN:-}" ]] && amd64_bin=(--binary "$PACSBOX_BIN")
# Both images carry the OHIF viewer as a clinic's would (prepared once into the cache).
OHIF_DIR="$CACHE_DIR/ohif"
timed "amd64 image" "$IMAGE_BUILD_DIR/build.sh" --arch amd64 --test --out "$out" "${amd64_bin[@]}" \
    --ohif "$OHIF_DIR"
timed "amd64 boot test" "$IMAGE_BUILD_DIR/test/boot-test.sh" "$out/pacsbox-$version-amd64-test.img"

# Everything the arm64 image holds (documentation outside image-build/ and README.md is not in it).
image_paths=(firmware web-ui Cargo.toml Cargo.lock image-build README.md)
marker="$CACHE_DIR/arm64-passed-$(content_key "${image_paths[@]}")"
arm64_path() {
    arm64_image_and_boot() {
        # Only the -test image: CI boots nothing else, and the amd64 run above already checks the
        # release image's assembly, compression and checksums.
        timed "arm64 test image" "$IMAGE_BUILD_DIR/build.sh" --arch arm64 --test-only --out "$out" \
            --binary "$CACHE_DIR/out/pacsbox-aarch64" --ohif "$OHIF_DIR"
        timed "arm64 boot test" "$IMAGE_BUILD_DIR/test/boot-test.sh" "$out/pacsbox-$version-arm64-test.img"
    }
    # The arm64 test may take what is left of CI's 90 minutes (run_all.sh, our parent, started the
    # clock) less 10 minutes of margin (the clock started after the checkout and the cargo cache)
    # and the ~21 minutes the power-cut test that follows takes under software emulation
    # (POWERCUT_RESERVE_S); PACSBOX_ARM64_BUDGET_S overrides. The arm64 path takes 2-8 minutes
    # with its root file system cached. Running out of the budget is a failure like any other:
    # a green CI means the arm64 image booted.
    ci_elapsed="$(ps -o etimes= -p "$PPID" 2>/dev/null | tr -d ' ')"
    budget="${PACSBOX_ARM64_BUDGET_S:-$((${PACSBOX_CI_LIMIT_S:-5400} - 600 - ${POWERCUT_RESERVE_S:-1260} - ${ci_elapsed:-0}))}"
    if ((budget < 300)); then
        echo "--> image: FAILED: only ${budget}s of CI time left for the arm64 image + boot test" >&2
        exit 1
    fi
    echo "--> image: arm64 image + boot test, budget ${budget}s"
    export -f arm64_image_and_boot timed log die
    export IMAGE_BUILD_DIR CACHE_DIR OHIF_DIR out version
    t0=$SECONDS
    rc=0
    timeout -k 30 "$budget" bash -c arm64_image_and_boot || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "--> image: FAILED: arm64 image + boot test unfinished after ${budget}s" >&2
        exit 1
    elif ((rc != 0)); then
        echo "--> image: FAILED: arm64 image + boot test (exit $rc)" >&2
        exit "$rc"
    fi
    touch "$marker"
    echo "--> image: arm64 path done in $((SECONDS - t0)) s"
}
if [[ -e "$marker" && "${PACSBOX_IMAGE_ARM64:-}" != 1 ]]; then
    echo "--> image: arm64 image with this exact content already passed on this machine" \
        "($(basename "$marker")); not repeated"
else
    arm64_path
fi

# Last, as the longest amd64 test: power cuts under load and a RAID1 member lost and rebuilt.
timed "amd64 power cuts and RAID rebuild" "$IMAGE_BUILD_DIR/test/powercut-test.sh" \
    "$out/pacsbox-$version-amd64-test.img"
rm -f "$out"/*amd64*
