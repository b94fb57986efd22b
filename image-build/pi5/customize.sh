#!/bin/bash
# mmdebstrap --customize-hook for --board pi5, run twice around hooks/customize.sh:
# $1 = root directory, $2 = before | after.
# before: raspi-firmware (trixie) copies DTBs from /usr/lib/linux-image-<ver>/broadcom/, but the
#   backports kernel keeps them in /usr/lib/modules/<ver>/dtb/broadcom/: link the old path to the
#   new one, now and through a kernel hook for later kernels. Put rp1_pci into the initramfs
#   (MODULES=most has the USB and Ethernet drivers, not the RP1 bridge they sit behind).
#   hooks/customize.sh then installs the overlay, builds the initramfs, fills /boot/firmware.
# after: hooks/customize.sh set the Pi 4's consoles; set the Pi 5's, add the Pi 5's lines to
#   the overlay's raspi-firmware-custom (the front panel's) and let raspi-firmware write
#   cmdline.txt and config.txt again (cheap: no new initramfs).
set -euo pipefail
root="$1" phase="$2"
in_root() { chroot "$root" "$@"; }
conf="$root/etc/default/raspi-firmware"

if [[ "$phase" == before ]]; then
    hook=/etc/kernel/postinst.d/z40-pacsbox-dtb-path
    cat >"$root$hook" <<'HOOK'
#!/bin/sh
# pacsbox (Pi 5 image): raspi-firmware looks for DTBs in /usr/lib/linux-image-<ver>/; the
# kernel packages from trixie-backports keep them in /usr/lib/modules/<ver>/dtb/.
set -e
version="$1"
if [ -d "/usr/lib/modules/$version/dtb" ] && [ ! -e "/usr/lib/linux-image-$version" ]; then
    ln -s "modules/$version/dtb" "/usr/lib/linux-image-$version"
fi
HOOK
    chmod 0755 "$root$hook"
    for d in "$root"/usr/lib/modules/*/dtb; do
        in_root "$hook" "$(basename "$(dirname "$d")")"
    done

    cat >"$root/etc/initramfs-tools/hooks/pacsbox-rp1" <<'HOOK'
#!/bin/sh
# pacsbox (Pi 5 image): the RP1 bridge driver, so that udev in the initramfs can reach the
# Pi 5's USB (a root or RAID disk there) and Ethernet; loaded only where an RP1 is.
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
manual_add_modules rp1_pci
HOOK
    chmod 0755 "$root/etc/initramfs-tools/hooks/pacsbox-rp1"

    # cma=64M is for the Pi 3's graphics stack (hooks/customize.sh strips it for the Pi 4).
    sed -i -e 's|^#\?CMA=.*|CMA=0|' "$conf"
    grep -q '^CMA=0' "$conf" || echo 'CMA=0' >>"$conf"
    exit 0
fi

[[ "$phase" == after ]] || { echo "pi5/customize.sh: phase must be before or after" >&2; exit 1; }
# The Pi 5's debug UART (the 3-pin header) is uart10: ttyAMA10 (the DTB's serial10 alias).
sed -i -e 's|^#\?CONSOLES=.*|CONSOLES="ttyAMA10,115200 tty1"|' "$conf"
# Appended to config.txt by raspi-firmware, after the overlay's front-panel lines (so added
# here, not before hooks/customize.sh installs the overlay). The upstream RP1 driver expects
# the firmware to leave the RP1's PCIe link as it set it up; only the Pi 5 reads [pi5].
custom="$root/etc/default/raspi-firmware-custom"
grep -q '^pciex4_reset=0' "$custom" 2>/dev/null || printf '[pi5]\npciex4_reset=0\n[all]\n' >>"$custom"
mounted_proc=0
if ! mountpoint -q "$root/proc"; then mount -t proc proc "$root/proc"; mounted_proc=1; fi
in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
((mounted_proc)) && umount "$root/proc"

fw="$root/boot/firmware"
for f in bcm2712-rpi-5-b.dtb bcm2711-rpi-4-b.dtb config.txt cmdline.txt; do
    [[ -s "$fw/$f" ]] || { echo "pi5: no $f in /boot/firmware" >&2; exit 1; }
done
grep -q 'root=PARTUUID=7ac5b0c5-02' "$fw/cmdline.txt" ||
    { echo "pi5: cmdline.txt has the wrong root: $(cat "$fw/cmdline.txt")" >&2; exit 1; }
grep -q 'console=ttyAMA10' "$fw/cmdline.txt" ||
    { echo "pi5: cmdline.txt has not the Pi 5's console: $(cat "$fw/cmdline.txt")" >&2; exit 1; }
for line in pciex4_reset=0 dtparam=i2c_arm=on; do
    grep -q "^$line" "$fw/config.txt" || { echo "pi5: config.txt has no $line" >&2; exit 1; }
done
