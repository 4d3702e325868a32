#!/bin/sh
# Build the default member image: Debian 12 with systemd, openssh-server and
# cloud-init (NoCloud seed rendered by LXD from the instance's user.* keys).
# Usage: build.sh OUTPUT.tar.gz BUILD_HASH
# WARREN_DEBIAN_MIRROR overrides the mirror (see lib.sh).
set -eu
out=$1; hash=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
debian_rootfs "$root" "$work/debootstrap.log"
cp -r "$here/overlay/." "$root/"
debian_first_boot "$root"
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
