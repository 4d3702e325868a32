#!/bin/sh
# Build the default member image: Debian 12 with systemd, openssh-server and
# cloud-init (NoCloud seed rendered by LXD from the instance's user.* keys).
# Usage: build.sh OUTPUT.tar.gz BUILD_HASH
# WARREN_DEBIAN_MIRROR overrides the mirror (default: the host's apt mirror).
set -eu
out=$1; hash=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
mirror=${WARREN_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,udev,dbus,openssh-server,cloud-init,iproute2,sudo,netbase,ca-certificates,python3-apt,python3-cffi-backend \
    bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
cp -r "$here/overlay/." "$root/"
# First boot must look like a new machine: fresh machine-id and SSH host keys.
: > "$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_*
ln -sf /lib/systemd/system/systemd-networkd.service \
    "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# Nothing inside a container should try to reach an outside mirror.
rm -f "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
cp -r "$here/templates" "$work/templates"
seed=/var/lib/cloud/seed/nocloud-net
write_metadata "$work" debian "Debian 12 (bookworm) with openssh-server and cloud-init" "12" "$hash" true \
"  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
  $seed/meta-data:
    when: [create, copy]
    template: cloud-init-meta.tpl
  $seed/user-data:
    when: [create, copy]
    template: cloud-init-user.tpl
    properties:
      default: |
        #cloud-config
        {}
  $seed/vendor-data:
    when: [create, copy]
    template: cloud-init-vendor.tpl
    properties:
      default: |
        #cloud-config
        {}"
tar -C "$work" --numeric-owner -czf "$out.tmp" metadata.yaml rootfs templates
mv "$out.tmp" "$out"
