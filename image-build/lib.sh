# shellcheck shell=bash
# Shared by build.sh, cross-build.sh, test/boot-test.sh and ci.sh (sourced, not run).
# Host: Debian 12 or 13, root. Everything here is idempotent and cheap when already done.

IMAGE_BUILD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$IMAGE_BUILD_DIR/.." && pwd)"
# Chroots, rootfs trees and cross-build targets live here, outside the repo, keyed by content.
# shellcheck disable=SC2034 # settings read by the scripts that source this file
CACHE_DIR="${PACSBOX_IMAGE_CACHE:-/var/cache/pacsbox-image}"
# shellcheck disable=SC2034
SUITE=trixie
MIRROR="${PACSBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# shellcheck disable=SC2034
SECURITY_MIRROR="${PACSBOX_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian version of the pacsbox crate, for file names.
pacsbox_version() {
    sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_DIR/Cargo.toml" | head -n1
}

# The host tools the recipe needs. Debian 12's qemu 7.2 is too old for trixie guests' needs
# and conflicts with the qemu-utils some hosts carry from bookworm-backports, so on bookworm
# qemu and mmdebstrap come from bookworm-backports (Debian's own archive).
ensure_host_tools() {
    local want=(mmdebstrap qemu-system-x86 qemu-system-arm qemu-user-static dosfstools mtools
        e2fsprogs fdisk zstd dcmtk arch-test uidmap bmap-tools curl iproute2)
    local to_install=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            to_install+=("$p")
    done
    ((${#to_install[@]})) || return 0
    log "installing host tools: ${to_install[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local release=()
    if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
        local src=/etc/apt/sources.list.d/pacsbox-bookworm-backports.sources
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                "$MIRROR" >"$src"
        fi
        release=(-t bookworm-backports)
    fi
    apt-get update -q >/dev/null
    # mmdebstrap and qemu from backports; the rest resolves from the release itself.
    apt-get install -y -q "${release[@]}" mmdebstrap qemu-system-x86 qemu-system-arm \
        qemu-user-static >/dev/null
    apt-get install -y -q dosfstools mtools e2fsprogs fdisk zstd dcmtk arch-test uidmap curl iproute2 \
        bmap-tools >/dev/null
}

# Running arm64 binaries in a chroot needs qemu-user through binfmt_misc. Registered with the
# F flag, so the interpreter is opened now and works inside any chroot.
ensure_binfmt_aarch64() {
    [[ "$(uname -m)" == aarch64 ]] && return 0
    if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
            die "cannot mount binfmt_misc (needed to run arm64 programs in the chroot)"
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
        [[ -r "$conf" ]] || die "no $conf (qemu-user-static missing?)"
        log "registering qemu-aarch64 with binfmt_misc"
        cat "$conf" >/proc/sys/fs/binfmt_misc/register
    fi
    [[ "$(head -n1 /proc/sys/fs/binfmt_misc/qemu-aarch64)" == enabled ]] ||
        die "qemu-aarch64 binfmt handler is disabled"
}

# A short content hash of files and folders (names, modes, contents), for cache keys.
content_key() {
    local f
    for f in "$@"; do
        if [[ -d "$f" ]]; then
            (cd "$f" && find . -type f -o -type l | LC_ALL=C sort | while read -r x; do
                # Executable or not, not the checkout's umask (664 vs 644 must not split the cache).
                printf '%s %s\n' "$x" "$([[ -x "$x" ]] && echo x || echo -)"
                if [[ -L "$x" ]]; then readlink "$x"; else cat "$x"; fi
            done)
        elif [[ -e "$f" ]]; then
            cat "$f"
        else
            printf '%s\n' "$f"
        fi
    done | sha256sum | cut -c1-16
}

# Runs "$@" in a private mount namespace: every mount made inside (proc, binds) disappears with
# it, whatever happens, so no build ever leaves a mount behind on the host.
in_mount_ns() {
    unshare --mount --propagation private --fork -- "$@"
}

# Runs a shell snippet chrooted into $1 with /proc, /sys, /dev mounted inside a private mount
# namespace. Extra binds: BIND_MOUNTS=("src:dst" ...), dst relative to the chroot.
chroot_run() {
    local root="$1"; shift
    local binds=""
    local b
    for b in "${BIND_MOUNTS[@]:-}"; do
        [[ -n "$b" ]] || continue
        binds+="mkdir -p '$root/${b#*:}' && mount --bind '${b%%:*}' '$root/${b#*:}' && "
    done
    in_mount_ns bash -euc "
        mount -t proc proc '$root/proc'
        mount -t sysfs sys '$root/sys'
        mount --rbind /dev '$root/dev'
        ${binds}true
        exec chroot '$root' /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 $(printf '%q ' "$@")
    "
}

# Whether a pacsbox executable has the C codecs (feature native-codecs): CharLS's and
# libjpeg-turbo's 12-bit entry points are in its symbol table (images strip debug info only).
has_codecs() {
    LC_ALL=C grep -qa charls_jpegls_decoder_decode_to_buffer "$1" &&
        LC_ALL=C grep -qa tj3Decompress12 "$1"
}
