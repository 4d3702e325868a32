# Shared helpers for the image build scripts (sourced, not run).
# An image is identified by the hash of its build directory, so editing a
# build script produces a new image and an unchanged one is never rebuilt.

image_hash() {  # image_hash DIR -> short content hash of the recipe (and of this file)
    { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
      sha256sum "$(dirname "$1")/lib.sh" | cut -d' ' -f1; } | sha256sum | cut -c1-16
}

# warren.cloud-init tells Warren how to deliver SSH keys: "true" through
# cloud-init user-data, otherwise by writing authorized_keys via LXD's file API.
write_metadata() {  # write_metadata DIR NAME DESCRIPTION RELEASE HASH CLOUD_INIT [TEMPLATES_YAML]
    cat > "$1/metadata.yaml" <<META
architecture: x86_64
creation_date: $(date +%s)
properties:
  description: "$3"
  os: "$2"
  release: "$4"
  warren.build: "$5"
  warren.cloud-init: "$6"
templates:
$7
META
}

# --- virtual-machine images -------------------------------------------------

debian_kernel() {  # debian_kernel DEB_CACHE DIR -> unpacks Debian's current kernel package into DIR, prints its version
    local package deb
    package=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
    if [ -z "$package" ]; then
        apt-get update -qq
        package=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
    fi
    mkdir -p "$1"
    deb=$(ls "$1/${package}_"*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        (cd "$1" && apt-get download -q "$package" >/dev/null 2>&1) || { apt-get update -qq; (cd "$1" && apt-get download -q "$package" >/dev/null); }
        deb=$(ls "$1/${package}_"*.deb | head -n 1)
    fi
    dpkg-deb -x "$deb" "$2"
    echo "${package#linux-image-}"
}

copy_modules() {  # copy_modules KERNEL_ROOT VERSION DEST_ROOT MODULE... -> modules and their dependencies, indexed
    local kroot version dest module file
    kroot=$1; version=$2; dest=$3; shift 3
    depmod -b "$kroot" "$version"
    for module in "$@"; do
        modprobe -d "$kroot" -S "$version" --show-depends "$module" | sed -n 's/^insmod \([^ ]*\).*/\1/p'
    done | sort -u | while read -r file; do
        mkdir -p "$dest/$(dirname "${file#$kroot}")"
        cp "$file" "$dest/${file#$kroot}"
    done
    cp "$kroot/lib/modules/$version/modules.order" "$kroot/lib/modules/$version/modules.builtin" \
        "$kroot/lib/modules/$version/modules.builtin.modinfo" \
        "$dest/lib/modules/$version/" 2>/dev/null || true
    depmod -b "$dest" "$version"
}

efi_disk() {  # [ROOT_IMAGE=ext4.img] efi_disk OUT.qcow2 ESP_MIB FILE:PATH... -> a GPT disk whose
              # EFI system partition boots systemd-boot (and a root partition from ROOT_IMAGE)
    local disk esp_mib esp raw pair root_mib
    disk=$1; esp_mib=$2; shift 2
    esp=$(mktemp); raw=$(mktemp)
    rm -f "$esp"
    mkfs.vfat -C -n WARRENESP "$esp" $((esp_mib * 1024)) >/dev/null
    mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
    mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
    for pair in "$@"; do
        mcopy -i "$esp" "${pair%%:*}" "::${pair#*:}"
    done
    root_mib=0
    [ -z "${ROOT_IMAGE:-}" ] || root_mib=$(( ($(stat -c %s "$ROOT_IMAGE") + 1048575) / 1048576 ))
    truncate -s $(( (esp_mib + root_mib + 2) * 1024 * 1024 )) "$raw"
    {
        printf 'label: gpt\nstart=2048, size=%s, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"\n' \
            $((esp_mib * 2048))
        [ "$root_mib" = 0 ] || printf 'start=%s, size=%s, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"\n' \
            $(( (esp_mib + 1) * 2048 )) $((root_mib * 2048))
    } | sfdisk --quiet "$raw"
    dd if="$esp" of="$raw" bs=1M seek=1 conv=notrunc status=none
    [ "$root_mib" = 0 ] || dd if="$ROOT_IMAGE" of="$raw" bs=1M seek=$((esp_mib + 1)) conv=notrunc status=none
    qemu-img convert -f raw -O qcow2 "$raw" "$disk"
    rm -f "$esp" "$raw"
}
