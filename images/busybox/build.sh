#!/bin/sh
# Build the tiny busybox container image used by the tests.
# Usage: build.sh OUTPUT.tar.gz BUILD_HASH
set -eu
out=$1; hash=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/bin "$root"/sbin "$root"/etc "$root"/proc "$root"/sys "$root"/dev \
    "$root"/tmp "$root"/run "$root"/root/.ssh "$root"/var/log "$root"/usr/bin "$root"/usr/sbin
chmod 1777 "$root/tmp"; chmod 700 "$root/root" "$root/root/.ssh"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cp "$here/inittab" "$root/etc/inittab"
install -m 0755 "$here/udhcpc.script" "$root/etc/udhcpc.script"
install -m 0755 "$here/cgroups.sh" "$root/etc/cgroups.sh"
echo busybox > "$root/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
# Root's keys come from the instance's user.warren.keys at its first start
# (LXD keeps an existing file's mode: 0600).
install -m 0600 /dev/null "$root/root/.ssh/authorized_keys"
cp -r "$here/templates" "$work/templates"
write_metadata "$work" busybox "Warren busybox test image" "1.35" "$hash" false \
"  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /root/.ssh/authorized_keys:
    when: [create, copy]
    template: authorized_keys.tpl"
# app/provisioning.py takes_key_template: no file push for the keys.
sed -i 's/^  warren.cloud-init: .*/&\n  warren.key-template: "true"/' "$work/metadata.yaml"
tar -C "$work" --numeric-owner -czf "$out.tmp" metadata.yaml rootfs templates
mv "$out.tmp" "$out"
