#!/usr/bin/env bash
# README's command 1, exactly as written, on a fresh Debian 12 (CI step "fresh machine"):
#
#   cargo run --release -p pacsbox -- serve
#
# "Fresh" is a Debian 12 base system (mmdebstrap --variant=apt) plus what rustup's cargo needs to
# link any Rust program: gcc and libc6-dev (rustup asks for "a C linker"). No cmake, g++ or nasm
# (asserted): the C/C++ codecs are opt-in. rustup's toolchain is the host's (~/.rustup bound in
# read-only, ~/.cargo with its proxies and registry bound in, crates fetched first); the chroot
# has no network (its own network namespace, loopback only), so cargo runs with
# CARGO_NET_OFFLINE=true. The server answers DCMTK's echoscu (the host's, in that namespace)
# and serves the login page to curl; then the namespace's processes end with it.
#
# Cached in $CACHE_DIR: the chroot (keyed on suite and packages; kept pristine under an overlay)
# and the chroot's target/ (keyed the same), so a warm run builds only what changed.
# PACSBOX_FRESH_TIMEOUT_S bounds the build + start (default 3600 s: a cold release build took
# over 40 min at load 24 on 2 cores; warm, only the workspace crates are rebuilt).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

FRESH_SUITE=bookworm
FRESH_PACKAGES=(gcc libc6-dev)
ABSENT=(cmake g++ nasm)
timeout_s="${PACSBOX_FRESH_TIMEOUT_S:-3600}"

[[ $EUID == 0 ]] || die "run as root (mmdebstrap, chroot, namespaces)"
ensure_host_tools
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
[[ -x "$cargo_home/bin/cargo" && -d "$rustup_home/toolchains" ]] ||
    die "no rustup toolchain at $rustup_home / $cargo_home/bin"

key="$(content_key "$FRESH_SUITE ${FRESH_PACKAGES[*]}")"
rootfs="$CACHE_DIR/fresh-$FRESH_SUITE-$key"
if [[ ! -e "$rootfs/.complete" ]]; then
    log "creating the fresh $FRESH_SUITE chroot $rootfs (cold: a minute or two)"
    start=$SECONDS
    rm -rf "$rootfs.tmp"
    mkdir -p "$CACHE_DIR"
    in_mount_ns mmdebstrap --quiet --variant=apt --include="$(IFS=,; echo "${FRESH_PACKAGES[*]}")" \
        "$FRESH_SUITE" "$rootfs.tmp" \
        "deb $MIRROR $FRESH_SUITE main" \
        "deb $MIRROR $FRESH_SUITE-updates main" \
        "deb $SECURITY_MIRROR $FRESH_SUITE-security main"
    # Mount points for the binds (in the cached tree, so the overlay need not create them).
    mkdir -p "$rootfs.tmp/root/.rustup" "$rootfs.tmp/root/.cargo" "$rootfs.tmp/root/pacsbox"
    touch "$rootfs.tmp/.complete"
    mv "$rootfs.tmp" "$rootfs"
    # Older keys are dead weight; their target dirs were built against another system.
    find "$CACHE_DIR" -maxdepth 1 \( -name "fresh-$FRESH_SUITE-????????????????" -o \
        -name "fresh-target-????????????????" \) ! -name "*-$key" -exec rm -rf {} +
    log "fresh chroot ready in $((SECONDS - start)) s"
fi
for p in "${ABSENT[@]}"; do
    if chroot "$rootfs" sh -c "command -v $p" >/dev/null; then
        die "the fresh chroot has $p; it must not"
    fi
done

# The crates of Cargo.lock into the host's registry (the host has the network).
(cd "$REPO_DIR" && cargo fetch --locked >/dev/null)

work="$(mktemp -d "$CACHE_DIR/fresh-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/upper" "$work/ovl" "$work/root"
# A clone's files: what is tracked (and not deleted) in this checkout, nothing built.
(cd "$REPO_DIR" && git ls-files -z --cached --others --exclude-standard |
    tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work/src"
target="$CACHE_DIR/fresh-target-$key"
mkdir -p "$target" "$work/src/target"

export rootfs work target rustup_home cargo_home timeout_s
inner() {
    set -euo pipefail
    ip link set lo up
    local root="$work/root"
    mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$work/upper,workdir=$work/ovl" "$root"
    mount -t proc proc "$root/proc"
    mount -t sysfs sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount --bind "$work/src" "$root/root/pacsbox"
    mount --bind "$target" "$root/root/pacsbox/target"
    mount --bind -o ro "$rustup_home" "$root/root/.rustup"
    # All of it, so that the host's and the chroot's cargo share one package-cache lock.
    mount --bind "$cargo_home" "$root/root/.cargo"
    # Command 1 as written, in the clone, as a user's shell would run it.
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 CARGO_NET_OFFLINE=true \
        CARGO_TERM_COLOR=never PATH=/root/.cargo/bin:/usr/local/bin:/usr/bin:/bin \
        bash -c 'cd /root/pacsbox && exec cargo run --release -p pacsbox -- serve' \
        >"$work/serve.log" 2>&1 &
    local pid=$! t0=$SECONDS
    echo "--> fresh: building and starting (log: $work/serve.log)"
    until /usr/bin/echoscu -aec PACSBOX 127.0.0.1 11112 >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$work/serve.log"
            echo "--> fresh: FAILED: command 1 ended before answering C-ECHO" >&2
            return 1
        fi
        if ((SECONDS - t0 > timeout_s)); then
            tail -n 40 "$work/serve.log"
            echo "--> fresh: FAILED: no C-ECHO answer after ${timeout_s}s" >&2
            return 1
        fi
        sleep 5
    done
    echo "--> fresh: C-ECHO answered after $((SECONDS - t0)) s (build included)"
    grep -E '^ *Finished' "$work/serve.log" || true
    /usr/bin/echoscu -v -aec PACSBOX 127.0.0.1 11112
    local page
    # Plain HTTP sends the browser to HTTPS (self-signed certificate made at first start: -k).
    page="$(curl -fsS -L -k --max-time 30 http://127.0.0.1:8080/)"
    if ! grep -q 'action="/login"' <<<"$page" || ! grep -q 'type="password"' <<<"$page"; then
        printf '%s\n' "$page" | head -n 30
        echo "--> fresh: FAILED: http://127.0.0.1:8080/ did not lead to the login page over HTTPS" >&2
        return 1
    fi
    echo "--> fresh: login page served over HTTPS"
    # What ran is the plain build (no C codec linked in), not something cached from elsewhere.
    if has_codecs "$target/release/pacsbox"; then
        echo "--> fresh: FAILED: the plain build has the C codecs linked in" >&2
        return 1
    fi
}
export -f inner has_codecs
# Own mount, network and PID namespaces: the binds, the loopback and every process started
# (cargo, the server) end when inner returns.
unshare --mount --net --pid --fork --propagation private -- bash -c inner
log "fresh machine: README's command 1 builds and serves without cmake/g++/nasm"
