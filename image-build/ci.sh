#!/usr/bin/env bash
# The image part of CI (called by tests/run_all.sh after the host tests):
#   0. avahi-browse finds the release binary's mDNS announcement (test/avahi-check.sh);
#   1. the aarch64 cross-build of the firmware (every run);
#   2. the amd64 image with the test overlay, and its full boot test in qemu (every run);
#   3. the arm64 (Raspberry Pi 4) image and its boot test, only when image-build/ or the
#      daemon's start-up code changed in the commit under test (HEAD against its first parent,
#      the previous state of main) and that content has not already passed on this machine;
#      PACSBOX_IMAGE_ARM64=1 forces it, PACSBOX_IMAGE_ARM64=0 skips it.
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
timed "amd64 image" "$IMAGE_BUILD_DIR/build.sh" --arch amd64 --test --out "$out" "${amd64_bin[@]}"
timed "amd64 boot test" "$IMAGE_BUILD_DIR/test/boot-test.sh" "$out/pacsbox-$version-amd64-test.img"
rm -f "$out"/*amd64*

# What the arm64 boot depends on (documentation is not).
startup_paths=(image-build/*.sh image-build/packages*.txt image-build/hooks image-build/overlay
    image-build/cross image-build/test/overlay image-build/test/boot-test.sh firmware/lan
    firmware/pacsbox/src/main.rs firmware/pacsbox/src/appliance.rs firmware/pacsbox/src/config.rs)
arm64="${PACSBOX_IMAGE_ARM64:-auto}"
marker="$CACHE_DIR/arm64-passed-$(content_key "${startup_paths[@]}")"
if [[ "$arm64" == auto ]]; then
    arm64=0
    if ! git rev-parse -q --verify HEAD^1 >/dev/null ||
        ! git diff --quiet HEAD^1 HEAD -- "${startup_paths[@]}"; then
        if [[ -e "$marker" ]]; then
            echo "--> image: arm64 start-up content already passed on this machine; skipped"
        else
            arm64=1
        fi
    else
        echo "--> image: image-build/ and start-up code unchanged; arm64 image skipped"
    fi
fi
arm64_image_and_boot() {
    timed "arm64 image" "$IMAGE_BUILD_DIR/build.sh" --arch arm64 --test --out "$out" \
        --binary "$CACHE_DIR/out/pacsbox-aarch64"
    timed "arm64 boot test" "$IMAGE_BUILD_DIR/test/boot-test.sh" "$out/pacsbox-$version-arm64-test.img"
}
if [[ "$arm64" == 1 ]]; then
    # A cold arm64 root file system plus two emulated boots can outlast CI's 90 minutes on a
    # loaded 2-core machine. Past the budget the run is reported as unfinished (loudly), not
    # as a failure; any real failure inside the budget fails CI.
    # The budget is what is left of CI's 90 minutes (run_all.sh, our parent, started the clock),
    # less 20 minutes of margin (CI must end well inside its limit, and the clock started
    # after the checkout and the cargo cache); PACSBOX_ARM64_BUDGET_S overrides.
    ci_elapsed="$(ps -o etimes= -p "$PPID" 2>/dev/null | tr -d ' ')"
    budget="${PACSBOX_ARM64_BUDGET_S:-$((${PACSBOX_CI_LIMIT_S:-5400} - 1200 - ${ci_elapsed:-0}))}"
    if ((budget < 900)); then
        echo "--> image: WARNING: only ${budget}s of CI time left; arm64 image + boot test not run"
        exit 0
    fi
    echo "--> image: arm64 image + boot test, budget ${budget}s"
    export -f arm64_image_and_boot timed log die
    export IMAGE_BUILD_DIR CACHE_DIR out version
    rc=0
    timeout -k 30 "$budget" bash -c arm64_image_and_boot || rc=$?
    if ((rc == 0)); then
        touch "$marker"
    elif ((rc == 124 || rc == 137)); then
        echo "--> image: WARNING: arm64 image + boot test unfinished after ${budget}s; not counted"
    else
        exit "$rc"
    fi
fi
