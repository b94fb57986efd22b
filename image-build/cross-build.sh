#!/usr/bin/env bash
# Cross-builds the pacsbox binary for aarch64 in a Debian trixie build chroot:
# trixie-backports' rustc/cargo + libstd-rust-dev:arm64 + gcc-aarch64-linux-gnu (rustup has no
# aarch64 std here). cmake, g++-aarch64-linux-gnu and nasm are there for the C/C++ codecs
# (feature native-codecs), which every image has: a build without them fails, it does not ship.
#
#   image-build/cross-build.sh [--out FILE]      default: $CACHE_DIR/out/pacsbox-aarch64
#
# Crates are fetched on the host (its network and CA certificates) and the chroot builds
# --offline --locked against the host's cargo registry bound in: no certificates are copied
# into any chroot. Everything cached under $CACHE_DIR (build chroot keyed on this script's
# package list, target dir reused for incremental builds).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

out="$CACHE_DIR/out/pacsbox-aarch64"
while (($#)); do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done

BUILD_PACKAGES=(
    gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev:arm64 cmake nasm pkg-config make
    ca-certificates
)

# rustc:amd64 needs libstd-rust-dev:arm64 of exactly its own version, but trixie-backports
# builds each architecture on its own: for a while after an upload one has the new version and
# the other still the old (seen 2026-12-05: rustc 1.98.1 on amd64, 1.97.1 on arm64), and apt
# finds no solution. Then both take the older version, the newer architecture's packages of it
# fetched from the pool, where the superseded files stay for a while.
backports_version() { # ARCH PACKAGE: its version in $SUITE-backports' index
    curl -fsS --max-time 120 "$MIRROR/dists/$SUITE-backports/main/binary-$1/Packages.xz" | xz -d |
        awk -v p="$2" '$0 == "Package: " p {hit = 1} hit && !done && /^Version: / {print $2; done = 1}'
}
rust_amd64="$(backports_version amd64 rustc)" || die "no rustc in $SUITE-backports (amd64)"
rust_arm64="$(backports_version arm64 libstd-rust-dev)" || die "no libstd-rust-dev in $SUITE-backports (arm64)"
[[ -n "$rust_amd64" && -n "$rust_arm64" ]] || die "rustc/libstd-rust-dev missing from $SUITE-backports"
rust_debs=()
fetch_rust_debs() { # ARCH VERSION PACKAGE...: the packages' .debs of VERSION from the pool
    local arch="$1" version="$2" pkg f
    shift 2
    mkdir -p "$CACHE_DIR/rust-debs"
    for pkg in "$@"; do
        f="$CACHE_DIR/rust-debs/${pkg}_${version}_$arch.deb"
        [[ -s "$f" ]] || curl -fsS --max-time 600 -o "$f.part" \
            "$MIRROR/pool/main/r/rustc/${pkg}_${version}_$arch.deb" ||
            die "$SUITE-backports has rustc $rust_amd64 (amd64) but libstd-rust-dev $rust_arm64 (arm64), and ${pkg} $version ($arch) is no longer in the pool"
        [[ -s "$f" ]] || mv "$f.part" "$f"
        rust_debs+=("$f")
    done
}
if [[ "$rust_amd64" == "$rust_arm64" ]]; then
    BUILD_PACKAGES+=(rustc/trixie-backports cargo/trixie-backports libstd-rust-dev:arm64/trixie-backports)
elif dpkg --compare-versions "$rust_amd64" gt "$rust_arm64"; then
    log "trixie-backports: rustc $rust_amd64 (amd64) ahead of arm64 ($rust_arm64): using $rust_arm64"
    BUILD_PACKAGES+=(libstd-rust-dev:arm64/trixie-backports)
    fetch_rust_debs amd64 "$rust_arm64" rustc cargo libstd-rust-dev \
        "libstd-rust-$(cut -d. -f1,2 <<<"$rust_arm64")"
else
    log "trixie-backports: libstd-rust-dev $rust_arm64 (arm64) ahead of amd64 ($rust_amd64): using $rust_amd64"
    BUILD_PACKAGES+=(rustc/trixie-backports cargo/trixie-backports)
    fetch_rust_debs arm64 "$rust_amd64" libstd-rust-dev "libstd-rust-$(cut -d. -f1,2 <<<"$rust_amd64")"
fi
# Local .debs go in by path after the packages (apt resolves their dependencies from the index).
rust_hooks=()
if ((${#rust_debs[@]})); then
    # shellcheck disable=SC2016 # hooks get "$1" (the chroot) from mmdebstrap's shell
    rust_hooks=(
        --customize-hook='mkdir -p "$1/tmp/rust-debs"'
        --customize-hook="copy-in ${rust_debs[*]} /tmp/rust-debs"
        --customize-hook='chroot "$1" sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/rust-debs/*.deb && rm -rf /tmp/rust-debs"'
    )
fi

ensure_host_tools
key="$(content_key "${BUILD_PACKAGES[*]} ${rust_debs[*]##*/}" "$IMAGE_BUILD_DIR/cross/cargo-config.toml")"
chroot_dir="$CACHE_DIR/buildroot-$key"
if [[ ! -e "$chroot_dir/.complete" ]]; then
    log "creating build chroot $chroot_dir (cold: a few minutes)"
    start=$SECONDS
    rm -rf "$chroot_dir" "$chroot_dir.tmp"
    mkdir -p "$CACHE_DIR"
    # shellcheck disable=SC2016 # hooks get "$1" (the chroot) from mmdebstrap's shell
    in_mount_ns mmdebstrap --quiet --variant=apt --architectures=amd64,arm64 \
        --include="$(IFS=,; echo "${BUILD_PACKAGES[*]}")" \
        "${rust_hooks[@]}" \
        --customize-hook='mkdir -p "$1/root/.cargo"' \
        --customize-hook="copy-in $IMAGE_BUILD_DIR/cross/cargo-config.toml /root/.cargo/" \
        --customize-hook='mv "$1/root/.cargo/cargo-config.toml" "$1/root/.cargo/config.toml"' \
        "$SUITE" "$chroot_dir.tmp" \
        "deb $MIRROR $SUITE main" \
        "deb $MIRROR $SUITE-updates main" \
        "deb $MIRROR $SUITE-backports main" \
        "deb $SECURITY_MIRROR $SUITE-security main"
    touch "$chroot_dir.tmp/.complete"
    mv "$chroot_dir.tmp" "$chroot_dir"
    log "build chroot ready in $((SECONDS - start)) s"
fi
chroot_run "$chroot_dir" rustc --version >&2

# Host side: the exact crates of Cargo.lock into the host's registry cache.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
(cd "$REPO_DIR" && cargo fetch --locked --target aarch64-unknown-linux-gnu >/dev/null)

target_dir="$CACHE_DIR/target-aarch64"
mkdir -p "$target_dir" "$(dirname "$out")"
# shellcheck disable=SC2034 # read by chroot_run (lib.sh)
BIND_MOUNTS=("$REPO_DIR:/src" "$cargo_home/registry:/root/.cargo/registry" "$target_dir:/target")
cross_env=(
    CARGO_TARGET_DIR=/target CARGO_TERM_COLOR=never
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    PKG_CONFIG_aarch64_unknown_linux_gnu=aarch64-linux-gnu-pkg-config
)
build() {
    chroot_run "$chroot_dir" env "${cross_env[@]}" cargo build --manifest-path /src/Cargo.toml \
        --offline --locked --release --target aarch64-unknown-linux-gnu -p pacsbox \
        --features native-codecs
}
start=$SECONDS
log "cross-building pacsbox for aarch64 (with the C codecs)"
build || die "aarch64 cross-build failed"
# Debug info stays in the target dir (profile.release debug = 1); the image gets it stripped.
# shellcheck disable=SC2034 # read by chroot_run (lib.sh)
BIND_MOUNTS=("$target_dir:/target")
chroot_run "$chroot_dir" aarch64-linux-gnu-strip --strip-debug -o /target/pacsbox-aarch64.stripped \
    /target/aarch64-unknown-linux-gnu/release/pacsbox
cp "$target_dir/pacsbox-aarch64.stripped" "$out"
file_info="$(od -An -tx1 -j18 -N2 "$out" | tr -d ' ')"
[[ "$file_info" == "b700" ]] || die "$out is not an aarch64 ELF (e_machine $file_info)"
log "aarch64 binary: $out ($(du -h "$out" | cut -f1), $((SECONDS - start)) s)"
