#!/bin/sh
# Build the Debian 12 VM image: a GPT disk with an EFI system partition
# (systemd-boot, Debian's kernel and initramfs) and an ext4 root with
# systemd, openssh-server and cloud-init, which takes the member's keys and
# the hostname from cloud-init's config drive. It boots with UEFI (OVMF).
# Usage: build.sh OUTPUT_DIR BUILD_HASH   (writes metadata.tar.xz, disk.qcow2)
# WARREN_DEBIAN_MIRROR overrides the mirror (see lib.sh).
set -eu
out=$1; hash=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
work=$(mktemp -d)
trap 'umount "$work/rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/rootfs
debian_rootfs "$root" "$work/debootstrap.log" cloud-guest-utils,fdisk,e2fsprogs,linux-image-amd64,initramfs-tools
cp -r "$here/overlay/." "$root/"
version=$(ls "$root/lib/modules" | head -n 1)
mount -t proc proc "$root/proc"
chroot "$root" update-initramfs -c -k "$version" > "$work/initramfs.log" 2>&1 \
    || { tail -n 30 "$work/initramfs.log" >&2; exit 1; }
umount "$root/proc"
debian_first_boot "$root"
ln -sf /lib/systemd/system/serial-getty@.service \
    "$root/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
# The root filesystem, sized to its content; cloud-init grows it to the
# instance's root disk at first boot (growpart, resizefs).
size_mib=$(( $(du -sm "$root" | cut -f1) * 13 / 10 + 256 ))
mkfs.ext4 -q -L warren-root -d "$root" "$work/root.img" "${size_mib}M"
ROOT_IMAGE=$work/root.img efi_disk "$work/disk.qcow2" 128 "$root/boot/vmlinuz-$version" \
    "$root/boot/initrd.img-$version" "Debian 12 (Warren)" \
    "root=LABEL=warren-root rw console=tty0 console=ttyS0 quiet"
vm_image "$work" "$out" "Debian 12 (bookworm) VM with openssh-server and cloud-init" debian 12 "$hash"
