#!/bin/bash
# mmdebstrap --customize-hook: everything is installed; make it the appliance.
# $1 = root directory, $2 = architecture (amd64|arm64), $3 = image-build directory.
set -euo pipefail
root="$1" arch="$2" here="$3"
in_root() { chroot "$root" "$@"; }

# Owned by root, 0755 or 0644 whatever the umask of the checkout was: a group-writable unit
# or script in the image would be a way in.
(cd "$here/overlay" && find . -type d -exec install -d -m 0755 "$root/{}" \; &&
    find . -type f -perm -u+x -exec install -m 0755 {} "$root/{}" \; &&
    find . -type f ! -perm -u+x -exec install -m 0644 {} "$root/{}" \;)

# One fixed system user: the archive on the RAID keeps its owner across images and reflashes.
in_root groupadd --system --gid 980 pacsbox
in_root useradd --system --uid 980 --gid 980 --home-dir /var/lib/pacsbox --no-create-home \
    --shell /usr/sbin/nologin pacsbox
# Mount points exist and belong to root: with the volume absent, pacsbox cannot write here.
install -d -m 0755 "$root/srv/pacsbox" "$root/var/lib/pacsbox"

in_root systemctl enable systemd-networkd systemd-resolved systemd-timesyncd \
    pacsbox.service pacsbox-hostname.service pacsbox-firstboot.service pacsbox-ssh.service
# SSH is off unless a file `ssh` is put on the boot partition (pacsbox-ssh.service).
in_root systemctl disable ssh.service ssh.socket 2>/dev/null || true
# systemd-ssh-generator fails when sshd is not enabled; it is not how SSH is offered here.
mkdir -p "$root/etc/systemd/system-generators"
ln -sf /dev/null "$root/etc/systemd/system-generators/systemd-ssh-generator"
# Host keys are made on the box (first enabling of SSH), never shipped in an image.
rm -f "$root"/etc/ssh/ssh_host_*

# Root locked; no passwords in the image.
in_root usermod --lock root
# Empty machine-id: systemd makes a new one on first boot, so two boxes never share one.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
echo pacsbox >"$root/etc/hostname"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

if [[ "$arch" == arm64 ]]; then
    # raspi-firmware's hooks would probe the *build host* for the root device and consoles;
    # say them here. cma=64M is for the Pi 3's old graphics stack; the Pi 4 boots without it.
    conf="$root/etc/default/raspi-firmware"
    sed -i -e 's|^#\?ROOTPART=.*|ROOTPART=PARTUUID=7ac5b0c5-02|' \
        -e 's|^#\?CONSOLES=.*|CONSOLES="serial0,115200 tty1"|' \
        -e 's|^#\?KERNEL_ARCH=.*|KERNEL_ARCH="arm64"|' "$conf"
    grep -q '^ROOTPART=PARTUUID=7ac5b0c5-02' "$conf" || echo 'ROOTPART=PARTUUID=7ac5b0c5-02' >>"$conf"
    grep -q '^CONSOLES=' "$conf" || echo 'CONSOLES="serial0,115200 tty1"' >>"$conf"
    # raspi-firmware itself adds fsck.repair=yes and rootwait to cmdline.txt.
fi

# The real update-initramfs back, and one initramfs with the final configuration (FSTYPE=ext4
# for fsck, mdadm, busybox). raspi-firmware's post-update hook copies it, with the kernel,
# DTBs and a fresh cmdline.txt, to /boot/firmware; its hooks read /proc, so mount it.
rm -f "$root/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
mounted_proc=0
if ! mountpoint -q "$root/proc"; then mount -t proc proc "$root/proc"; mounted_proc=1; fi
in_root update-initramfs -c -k all
((mounted_proc)) && umount "$root/proc"

if [[ "$arch" == arm64 ]]; then
    cmdline="$root/boot/firmware/cmdline.txt"
    [[ -s "$cmdline" ]] || { echo "raspi-firmware wrote no cmdline.txt" >&2; exit 1; }
    sed -i -e 's/ *cma=64M//' "$cmdline"
    grep -q 'root=PARTUUID=7ac5b0c5-02' "$cmdline" ||
        { echo "cmdline.txt has the wrong root: $(cat "$cmdline")" >&2; exit 1; }
fi
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log
