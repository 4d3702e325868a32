#!/bin/sh
# Build the Debian 12 VM image: a GPT disk with an EFI system partition
# (systemd-boot, Debian's kernel and initramfs) and an ext4 root with
# systemd, openssh-server and cloud-init, which takes the member's keys and
# the hostname from cloud-init's config drive. It boots with UEFI (OVMF).
# Usage: build.sh OUTPUT_DIR BUILD_HASH   (writes metadata.tar.xz, disk.qcow2)
# WARREN_DEBIAN_MIRROR overrides the mirror (default: the host's apt mirror).
set -eu
out=$1; hash=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
mirror=${WARREN_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'umount "$work/rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/rootfs
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,udev,dbus,openssh-server,cloud-init,cloud-guest-utils,fdisk,e2fsprogs,iproute2,sudo,netbase,ca-certificates,python3-apt,python3-cffi-backend,linux-image-amd64,initramfs-tools \
    bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
cp -r "$here/overlay/." "$root/"
version=$(ls "$root/lib/modules" | head -n 1)
mount -t proc proc "$root/proc"
chroot "$root" update-initramfs -c -k "$version" > "$work/initramfs.log" 2>&1 \
    || { tail -n 30 "$work/initramfs.log" >&2; exit 1; }
umount "$root/proc"
# First boot must look like a new machine: fresh machine-id and SSH host keys.
: > "$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /lib/systemd/system/serial-getty@.service \
    "$root/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
# Nothing inside should try to reach an outside mirror.
rm -f "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
cp "$root/boot/vmlinuz-$version" "$work/vmlinuz"
cp "$root/boot/initrd.img-$version" "$work/initrd.img"
# The root filesystem, sized to its content; cloud-init grows it to the
# instance's root disk at first boot (growpart, resizefs).
size_mib=$(( $(du -sm "$root" | cut -f1) * 13 / 10 + 256 ))
mkfs.ext4 -q -L warren-root -d "$root" "$work/root.img" "${size_mib}M"
printf 'default warren.conf\ntimeout 0\n' > "$work/loader.conf"
printf 'title Debian 12 (Warren)\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=LABEL=warren-root rw console=tty0 console=ttyS0 quiet\n' \
    > "$work/warren.conf"
mkdir -p "$out"
ROOT_IMAGE=$work/root.img efi_disk "$work/disk.qcow2" 128 "$work/vmlinuz:/vmlinuz" \
    "$work/initrd.img:/initrd.img" "$work/loader.conf:/loader/loader.conf" \
    "$work/warren.conf:/loader/entries/warren.conf"
cat > "$work/metadata.yaml" <<META
architecture: x86_64
creation_date: $(date +%s)
properties:
  description: "Debian 12 (bookworm) VM with openssh-server and cloud-init"
  os: "debian"
  release: "12"
  warren.build: "$hash"
  warren.cloud-init: "true"
  requirements.secureboot: "false"
META
tar -C "$work" -cJf "$work/metadata.tar.xz" metadata.yaml
mv "$work/metadata.tar.xz" "$work/disk.qcow2" "$out/"
