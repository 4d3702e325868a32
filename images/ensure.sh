#!/bin/sh
# Build (when the recipe changed) and import (when the alias is missing or
# stale) the named images. Idempotent: an unchanged image is left alone.
# Usage: ensure.sh CACHE_DIR NAME...   (NAME is a folder here and the alias)
# A recipe with a TYPE file saying virtual-machine builds a folder holding
# metadata.tar.xz and disk.qcow2; the others build one tarball. LXD_DIR
# picks the daemon, as for lxc.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cache=$1; shift
mkdir -p "$cache"
# One build or import at a time per cache: concurrent test runs (or a test
# and bin/up) must not build the same tarball or swap the alias twice.
exec 9>"$cache/.ensure.lock"
flock 9
for name in "$@"; do
    [ -x "$here/$name/build.sh" ] || { echo "images: no recipe images/$name/build.sh" >&2; exit 2; }
    hash=$(image_hash "$here/$name")
    if grep -qs virtual-machine "$here/$name/TYPE"; then
        artifact=$cache/$name-$hash
        files="$artifact/metadata.tar.xz $artifact/disk.qcow2"
    else
        artifact=$cache/$name-$hash.tar.gz
        files=$artifact
    fi
    if [ ! -e "$artifact" ]; then
        echo "images: building $name ($hash)"
        start=$(date +%s)
        rm -rf "$artifact.tmp"
        "$here/$name/build.sh" "$artifact.tmp" "$hash"
        mv "$artifact.tmp" "$artifact"
        echo "images: built $name in $(( $(date +%s) - start ))s"
        find "$cache" -maxdepth 1 -name "$name-[0-9a-f]*" ! -name "$name-$hash*" -exec rm -rf {} +
    fi
    current=$(lxc image get-property "$name" warren.build 2>/dev/null || true)
    if [ "$current" != "$hash" ]; then
        old=$(lxc image info "$name" 2>/dev/null | sed -n 's/^Fingerprint: //p' || true)
        [ -z "$old" ] || lxc image delete "$old"
        echo "images: importing $name"
        # shellcheck disable=SC2086  # two files for a VM image
        lxc image import $files --alias "$name" >/dev/null
    fi
done
