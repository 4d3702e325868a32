#!/bin/sh
# Build (when the recipe changed) and import (when the alias is missing or
# stale) the named images. Idempotent: an unchanged image is left alone.
# Usage: ensure.sh CACHE_DIR NAME...   (NAME is a folder here and the alias)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
cache=$1; shift
mkdir -p "$cache"
for name in "$@"; do
    [ -x "$here/$name/build.sh" ] || { echo "images: no recipe images/$name/build.sh" >&2; exit 2; }
    hash=$(image_hash "$here/$name")
    tarball=$cache/$name-$hash.tar.gz
    if [ ! -s "$tarball" ]; then
        echo "images: building $name ($hash)"
        start=$(date +%s)
        "$here/$name/build.sh" "$tarball" "$hash"
        echo "images: built $name in $(( $(date +%s) - start ))s"
        find "$cache" -name "$name-*.tar.gz" ! -name "$name-$hash.tar.gz" -delete
    fi
    current=$(lxc image get-property "$name" warren.build 2>/dev/null || true)
    if [ "$current" != "$hash" ]; then
        old=$(lxc image info "$name" 2>/dev/null | sed -n 's/^Fingerprint: //p' || true)
        [ -z "$old" ] || lxc image delete "$old"
        echo "images: importing $name"
        lxc image import "$tarball" --alias "$name" >/dev/null
    fi
done
