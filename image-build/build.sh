#!/usr/bin/env bash
# Builds the flashable pacsbox OS image.
#
#   image-build/build.sh [--arch arm64|amd64] [--board pi4|pi5] [--out DIR] [--test] [--binary FILE]
#
#   --arch    arm64 (Raspberry Pi 4, the default) or amd64 (a small x86 box; the cheap boot test)
#   --board   arm64 only: pi4 (the default) or pi5 (experimental: trixie-backports' kernel,
#             packages-arm64-pi5.txt and pi5/customize.sh; image pacsbox-<version>-arm64-pi5.img)
#   --out     where images go (default: ./out)
#   --test    also write pacsbox-<version>-<arch>-test.img with the test-only overlay
#             (test/overlay: creates a RAID1 on first boot, prints self-test lines); the
#             release image never contains it
#   --test-only  only the -test image: no release image, .zst, .bmap, manifest or checksums
#             (CI's arm64 run, which boots nothing else)
#   --binary  use this pacsbox executable instead of building one (arm64: cross-built in a
#             trixie chroot by cross-build.sh; amd64: cargo build --release on the host)
#   --ohif DIR  put the OHIF viewer into the image (/usr/share/pacsbox/ohif, served at /ohif/,
#             `[web] ohif_dir` set): DIR is a folder prepared by web-ui/ohif/install.sh
#             (made there if missing; needs npm). Adds 49 MiB to the root file system.
#
# Output: pacsbox-<version>-<arch>[-pi5].img (+ .img.zst, .img.bmap when bmaptool is present).
# Needs root on Debian 12/13; installs its tools. No loop devices: partitions are made as
# files (mkfs.vfat -C + mcopy, mkfs.ext4 -d) and written into the image with dd.
# The root file system is cached in $CACHE_DIR, keyed on packages, hooks and overlay.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

arch=arm64 board="" out="$PWD/out" test_image=0 release_image=1 binary="" ohif=""
while (($#)); do
    case "$1" in
        --arch) arch="$2"; shift 2 ;;
        --board) board="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --test) test_image=1; shift ;;
        --test-only) test_image=1 release_image=0; shift ;;
        --binary) binary="$2"; shift 2 ;;
        --ohif) ohif="$2"; shift 2 ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        *) die "unknown argument $1" ;;
    esac
done
[[ "$arch" == arm64 || "$arch" == amd64 ]] || die "--arch must be arm64 or amd64"
[[ -z "$board" || "$board" == pi4 || "$board" == pi5 ]] || die "--board must be pi4 or pi5"
[[ -z "$board" || "$arch" == arm64 ]] || die "--board is for --arch arm64 only"
# The Pi 4 recipe (and its cache key) is the plain arm64 one; pi5 is a variant of it with its
# own package list, an extra hook, trixie-backports and its own cache entry ("flavour").
flavour="$arch" board_pkgs="$IMAGE_BUILD_DIR/packages-$arch.txt" board_key=() board_src=()
board_before=() board_after=()
if [[ "$board" == pi5 ]]; then
    flavour=arm64-pi5 board_pkgs="$IMAGE_BUILD_DIR/packages-arm64-pi5.txt"
    board_key=("$flavour" "$IMAGE_BUILD_DIR/pi5")
    board_before=(--customize-hook="$IMAGE_BUILD_DIR/pi5/customize.sh \"\$1\" before")
    board_after=(--customize-hook="$IMAGE_BUILD_DIR/pi5/customize.sh \"\$1\" after")
    board_src=("deb $MIRROR $SUITE-backports main non-free-firmware")
fi
[[ $EUID == 0 ]] || die "run as root (mmdebstrap root mode, file ownership in the image)"
# Every image has the C codecs; a given binary is checked before any long step.
check_binary() {
    [[ -x "$binary" ]] || die "no pacsbox executable at $binary"
    has_codecs "$binary" ||
        die "$binary lacks the C codecs (JPEG-LS, 12-bit JPEG): build it with --features native-codecs"
}
[[ -z "$binary" ]] || check_binary
# OHIF is prepared (fetched from npm, adapted to /ohif/) before any long step; a no-op when DIR
# already holds the pinned version.
[[ -z "$ohif" ]] || bash "$REPO_DIR/web-ui/ohif/install.sh" "$ohif"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
version="$(pacsbox_version)"
total_start=$SECONDS

ensure_host_tools
[[ "$arch" == arm64 ]] && ensure_binfmt_aarch64

# --- the root file system (cached) -------------------------------------------------------
packages() {
    grep -hv '^\s*#' "$IMAGE_BUILD_DIR/packages.txt" "$board_pkgs" |
        tr -s ' \n' '\n' | grep -v '^$' | paste -sd, -
}
key="$(content_key "$arch" "$IMAGE_BUILD_DIR/packages.txt" "$board_pkgs" \
    "$IMAGE_BUILD_DIR/hooks" "$IMAGE_BUILD_DIR/overlay" "${board_key[@]}")"
rootfs="$CACHE_DIR/rootfs-$flavour-$key"
if [[ ! -e "$rootfs/.complete" ]]; then
    log "building the $flavour root file system (cold; arm64 runs under emulation: ~10 min)"
    start=$SECONDS
    rm -rf "$rootfs.tmp"
    mkdir -p "$CACHE_DIR"
    # Downloaded .debs are kept between builds (a hook change need not download 300 MB again).
    local_debs="$CACHE_DIR/debs-$arch"
    mkdir -p "$local_debs"
    # shellcheck disable=SC2016 # hooks get "$1" (the rootfs) from mmdebstrap's shell
    in_mount_ns mmdebstrap --quiet --variant=apt --architectures="$arch" \
        --components="main non-free-firmware" \
        --include="$(packages)" \
        --skip=essential/unlink \
        --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
        --setup-hook="sync-in $local_debs /var/cache/apt/archives/" \
        --essential-hook="$IMAGE_BUILD_DIR/hooks/essential.sh \"\$1\"" \
        --customize-hook="sync-out /var/cache/apt/archives $local_debs" \
        "${board_before[@]}" \
        --customize-hook="$IMAGE_BUILD_DIR/hooks/customize.sh \"\$1\" $arch $IMAGE_BUILD_DIR" \
        "${board_after[@]}" \
        "$SUITE" "$rootfs.tmp" \
        "deb $MIRROR $SUITE main non-free-firmware" \
        "deb $MIRROR $SUITE-updates main non-free-firmware" \
        "deb $SECURITY_MIRROR $SUITE-security main non-free-firmware" \
        "${board_src[@]}"
    # The initramfs must be able to fsck the root file system after a power cut (FSTYPE=ext4).
    chroot_run "$rootfs.tmp" sh -c 'lsinitramfs /boot/initrd.img-* | grep -q "sbin/fsck.ext4$"' ||
        die "the initramfs has no fsck.ext4"
    # What is in it, for the manifest (Debian's archive moves; this is what was built).
    # shellcheck disable=SC2016 # dpkg-query's own ${Package} fields, not the shell's
    chroot "$rootfs.tmp" dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\n' \
        >"$rootfs.tmp.packages"
    mv "$rootfs.tmp.packages" "$rootfs.tmp/.packages"
    touch "$rootfs.tmp/.complete"
    rm -rf "$rootfs"
    mv "$rootfs.tmp" "$rootfs"
    log "root file system built in $((SECONDS - start)) s"
    # One root file system per flavour is enough: older keys are dead weight (GBs). The key is
    # 16 characters: rootfs-arm64-<key> never matches rootfs-arm64-pi5-<key>.
    find "$CACHE_DIR" -maxdepth 1 -name "rootfs-$flavour-????????????????" ! -name "$(basename "$rootfs")" \
        ! -name '*.tmp' -exec rm -rf {} +
else
    log "root file system from cache: $rootfs"
fi

# --- the firmware -----------------------------------------------------------------------
if [[ -z "$binary" ]]; then
    if [[ "$arch" == arm64 ]]; then
        binary="$CACHE_DIR/out/pacsbox-aarch64"
        "$IMAGE_BUILD_DIR/cross-build.sh" --out "$binary"
    else
        log "building pacsbox (release) on the host"
        (cd "$REPO_DIR" && cargo build --locked --release -p pacsbox --features native-codecs)
        binary="$REPO_DIR/target/release/pacsbox"
    fi
fi
check_binary

# --- one image ----------------------------------------------------------------------------
DISK_ID=0x7ac5b0c5 # fixed: cmdline.txt and fstab say root=PARTUUID=7ac5b0c5-02
MiB=$((1024 * 1024))

# Work trees of assemble(), removed however the script ends (error, kill, timeout).
assemble_dirs=()
trap 'rm -rf "${assemble_dirs[@]}" "$rootfs.tmp.packages"' EXIT

# assemble NAME WITH_TEST_OVERLAY
assemble() {
    local name="$1" with_test="$2"
    local start=$SECONDS
    local work
    work="$(mktemp -d "$CACHE_DIR/assemble.XXXXXX")"
    assemble_dirs+=("$work")
    local root="$work/root" boot="$work/boot" state="$work/state"
    log "assembling $name"
    cp -a "$rootfs" "$root"
    rm -f "$root/.complete" "$root/.packages"
    install -m 0755 "$binary" "$root/usr/bin/pacsbox"
    # Debug info is for the build machine; an amd64 host binary is stripped here (the aarch64
    # one comes stripped from cross-build.sh).
    [[ "$arch" == amd64 ]] && command -v strip >/dev/null && strip --strip-debug "$root/usr/bin/pacsbox"
    install -D -m 0644 "$REPO_DIR/README.md" "$root/usr/share/doc/pacsbox/README.md"
    install -D -m 0644 "$IMAGE_BUILD_DIR/README.md" "$root/usr/share/doc/pacsbox/IMAGE.md"
    printf 'PACSBOX_VERSION=%s\nPACSBOX_COMMIT=%s\nPACSBOX_ARCH=%s\n' "$version" \
        "$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$arch" \
        >"$root/etc/pacsbox/build-info"
    [[ "$board" == pi5 ]] && echo "PACSBOX_BOARD=pi5" >>"$root/etc/pacsbox/build-info"
    if [[ -n "$ohif" ]]; then
        mkdir -p "$root/usr/share/pacsbox"
        cp -a "$ohif/." "$root/usr/share/pacsbox/ohif/"
        chown -R 0:0 "$root/usr/share/pacsbox/ohif"
        sed -i 's|^\[web\]$|[web]\n# The OHIF viewer at /ohif/ (build.sh --ohif), beside our own.\nohif_dir = "/usr/share/pacsbox/ohif"|' \
            "$root/etc/pacsbox/pacsbox.toml"
        grep -q '^ohif_dir = ' "$root/etc/pacsbox/pacsbox.toml" || die "no [web] section for ohif_dir"
        echo "PACSBOX_OHIF=$(cut -d' ' -f1 "$ohif/.pacsbox-ohif")" >>"$root/etc/pacsbox/build-info"
    fi
    if ((with_test)); then
        (cd "$IMAGE_BUILD_DIR/test/overlay" && find . -type d -exec install -d -m 0755 "$root/{}" \; &&
            find . -type f -perm -u+x -exec install -m 0755 {} "$root/{}" \; &&
            find . -type f ! -perm -u+x -exec install -m 0644 {} "$root/{}" \;)
        local u
        for u in "$IMAGE_BUILD_DIR"/test/overlay/etc/systemd/system/*.service; do
            u="$(basename "$u")"
            ln -sf "/etc/systemd/system/$u" "$root/etc/systemd/system/multi-user.target.wants/$u"
        done
    fi

    # Boot partition contents.
    mkdir -p "$boot"
    if [[ "$arch" == arm64 ]]; then
        cp -a "$root/boot/firmware/." "$boot/"
    else
        local kver
        local modules=("$root"/lib/modules/*)
        kver="$(basename "${modules[0]}")"
        cp "$root/boot/vmlinuz-$kver" "$boot/vmlinuz"
        cp "$root/boot/initrd.img-$kver" "$boot/initrd.img"
        echo "root=PARTUUID=7ac5b0c5-02 rw rootwait fsck.repair=yes console=tty0 console=ttyS0,115200" \
            >"$boot/cmdline.txt"
        # UEFI: systemd-boot as the fallback loader, one entry with the same command line.
        mkdir -p "$boot/EFI/BOOT" "$boot/loader/entries"
        cp "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$boot/EFI/BOOT/BOOTX64.EFI"
        printf 'default pacsbox.conf\ntimeout 0\n' >"$boot/loader/loader.conf"
        printf 'title pacsbox\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' \
            "$(cat "$boot/cmdline.txt")" >"$boot/loader/entries/pacsbox.conf"
    fi
    mkdir -p "$root/boot/firmware"
    find "$root/boot/firmware" -mindepth 1 -delete
    # State partition: what lives under /var/lib/pacsbox.
    mkdir -p "$state"
    cp -a "$root/var/lib/pacsbox/." "$state/"
    chown 980:980 "$state"
    find "$root/var/lib/pacsbox" -mindepth 1 -delete

    # Sizes (MiB): boot 256, root = used * 1.3 + 256 rounded to 64, spare root slot the same
    # (for A/B updates later), state 64.
    local used_root root_mib boot_mib=256 state_mib=64
    used_root=$(du -sm --apparent-size "$root" | cut -f1)
    root_mib=$(((used_root * 13 / 10 + 256 + 63) / 64 * 64))
    local p1=1 p2 p3 p4 total
    p2=$((p1 + boot_mib))
    p3=$((p2 + root_mib))
    p4=$((p3 + root_mib))
    total=$((p4 + state_mib))

    mkfs.vfat -n PACSBOXBOOT -i 7ac5b0c5 -C "$work/boot.fat" $((boot_mib * 1024)) >/dev/null
    mcopy -s -p -m -i "$work/boot.fat" "$boot"/* ::
    # Fixed UUIDs and hash seed: the same tree gives the same file system.
    mkfs.ext4 -q -L pacsbox-root -U 7ac5b0c5-0002-4000-8000-000000000002 \
        -E hash_seed=7ac5b0c5-0002-4000-8000-0000000000aa -d "$root" "$work/root.ext4" "${root_mib}M"
    mkfs.ext4 -q -L pacsbox-state -U 7ac5b0c5-0004-4000-8000-000000000004 \
        -d "$state" "$work/state.ext4" "${state_mib}M"

    local img="$out/$name.img"
    rm -f "$img" "$img.zst" "$img.bmap"
    truncate -s $((total * MiB)) "$img"
    local boot_type=c
    [[ "$arch" == amd64 ]] && boot_type=ef
    sfdisk --quiet "$img" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$((p1 * 2048)), size=$((boot_mib * 2048)), type=$boot_type, bootable
start=$((p2 * 2048)), size=$((root_mib * 2048)), type=83
start=$((p3 * 2048)), size=$((root_mib * 2048)), type=83
start=$((p4 * 2048)), size=$((state_mib * 2048)), type=83
EOF
    dd if="$work/boot.fat" of="$img" bs=1M seek=$p1 conv=notrunc,sparse status=none
    dd if="$work/root.ext4" of="$img" bs=1M seek=$p2 conv=notrunc,sparse status=none
    dd if="$work/state.ext4" of="$img" bs=1M seek=$p4 conv=notrunc,sparse status=none
    log "$img: $((total)) MiB ($((SECONDS - start)) s)"
    rm -rf "$work"
}

name="pacsbox-$version-$arch"
[[ "$board" == pi5 ]] && name+="-pi5" # the Pi 4 image keeps its name
((release_image)) && assemble "$name" 0
((test_image)) && assemble "$name-test" 1
if ((!release_image)); then
    log "done in $((SECONDS - total_start)) s: $out/$name-test.img"
    exit 0
fi

# Release artefacts: compressed image, block map, manifest, checksums.
img="$out/$name.img"
start=$SECONDS
zstd -q -T0 -6 -f "$img" -o "$img.zst"
command -v bmaptool >/dev/null && bmaptool -q create -o "$img.bmap" "$img"
{
    echo "image: $name.img"
    echo "pacsbox: $version ($(git -C "$REPO_DIR" rev-parse HEAD 2>/dev/null || echo unknown))"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "suite: $SUITE ($MIRROR)"
    echo "kernel: $(grep -E '^linux-image-[0-9]' "$rootfs/.packages" | cut -f1,2 | tr '\t' ' ')"
    [[ "$arch" == arm64 ]] && echo "firmware: $(grep -E '^raspi-firmware' "$rootfs/.packages" | cut -f2)"
    echo "packages:"
    sed 's/^/  /' "$rootfs/.packages"
} >"$out/$name.manifest"
# shellcheck disable=SC2046 # no bmap: no word at all
(cd "$out" && sha256sum "$name.img.zst" "$name.manifest" $( [[ -e "$name.img.bmap" ]] && echo "$name.img.bmap") >"$name.SHA256SUMS")
log "compressed $(du -h --apparent-size "$img" | cut -f1) -> $(du -h "$img.zst" | cut -f1) in $((SECONDS - start)) s"
log "done in $((SECONDS - total_start)) s: $out/$name.img"
