#!/bin/sh
# mmdebstrap --essential-hook: runs after the Essential packages, before the rest is installed.
# $1 = root directory.
set -eu
root="$1"
# The kernel, mdadm, busybox and raspi-firmware each rebuild the initramfs on install (2¾ min
# each under emulation). Divert the tool for the install; customize.sh restores it and builds
# the initramfs once, with the final configuration.
chroot "$root" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs
cat >"$root/usr/sbin/update-initramfs" <<'STUB'
#!/bin/sh
echo "update-initramfs: deferred to the end of the image build" >&2
exit 0
STUB
chmod 755 "$root/usr/sbin/update-initramfs"
