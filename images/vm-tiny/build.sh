#!/bin/sh
# Build the tiny VM image the tests use: a GPT disk whose EFI system
# partition holds systemd-boot, Debian's kernel and a busybox initramfs
# (the init script is the whole system). It boots with UEFI (OVMF).
# Usage: build.sh OUTPUT_DIR BUILD_HASH   (writes metadata.tar.xz, disk.qcow2)
set -eu
out=$1; hash=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(debian_kernel "$(dirname "$out")/debs" "$work/kernel")
root=$work/initrd
mkdir -p "$root"/bin "$root"/sbin "$root"/etc "$root"/proc "$root"/sys "$root"/dev "$root"/tmp \
    "$root"/root "$root"/config
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/udhcpc.script" "$root/etc/udhcpc.script"
echo vm-tiny > "$root/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
copy_modules "$work/kernel" "$version" "$root" virtio_pci virtio_net virtio_scsi sr_mod isofs button evdev
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initrd.img"
efi_disk "$work/disk.qcow2" 48 "$work/kernel/boot/vmlinuz-$version" "$work/initrd.img" \
    "Warren tiny VM" "console=ttyS0 quiet"
vm_image "$work" "$out" "Warren tiny VM test image (Debian kernel $version, busybox)" vm-tiny \
    "$version" "$hash"
