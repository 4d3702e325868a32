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

# --- Debian root filesystems ------------------------------------------------

# What every Debian image has: systemd, openssh-server, cloud-init.
DEBIAN_PACKAGES=systemd,systemd-sysv,udev,dbus,openssh-server,cloud-init,iproute2,sudo,netbase,ca-certificates,python3-apt,python3-cffi-backend

debian_rootfs() {  # debian_rootfs ROOT LOG [EXTRA,PACKAGES] -> Debian 12 minbase with DEBIAN_PACKAGES
    # WARREN_DEBIAN_MIRROR overrides the mirror (default: the host's apt mirror).
    local mirror
    mirror=${WARREN_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1)}
    debootstrap --variant=minbase --include="$DEBIAN_PACKAGES${3:+,$3}" \
        bookworm "$1" "${mirror:-http://deb.debian.org/debian}" > "$2" 2>&1 \
        || { tail -n 30 "$2" >&2; exit 1; }
}

debian_first_boot() {  # debian_first_boot ROOT -> boots like a new machine, offline
    # Fresh machine-id and SSH host keys on first boot; networkd on.
    : > "$1/etc/machine-id"
    rm -f "$1"/etc/ssh/ssh_host_*
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$1/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    # Nothing inside should try to reach an outside mirror.
    rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*
    rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*
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

efi_disk() {  # [ROOT_IMAGE=ext4.img] efi_disk OUT.qcow2 ESP_MIB VMLINUZ INITRD TITLE OPTIONS
              # -> a GPT disk whose EFI system partition boots the kernel with
              #    systemd-boot (and a root partition from ROOT_IMAGE)
    local disk esp_mib esp raw root_mib
    disk=$1; esp_mib=$2
    esp=$(mktemp); raw=$(mktemp)
    rm -f "$esp"
    mkfs.vfat -C -n WARRENESP "$esp" $((esp_mib * 1024)) >/dev/null
    mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
    mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$esp" "$3" ::/vmlinuz
    mcopy -i "$esp" "$4" ::/initrd.img
    printf 'default warren.conf\ntimeout 0\n' | mcopy -i "$esp" - ::/loader/loader.conf
    printf 'title %s\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$5" "$6" \
        | mcopy -i "$esp" - ::/loader/entries/warren.conf
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

vm_image() {  # vm_image WORK OUT DESCRIPTION OS RELEASE HASH -> OUT/metadata.tar.xz + OUT/disk.qcow2
    # (from WORK/disk.qcow2). warren.cloud-init: keys and hostname go in through
    # cloud-init's config drive. systemd-boot is not signed for Secure Boot:
    # the image says so and Warren starts it with Secure Boot off.
    cat > "$1/metadata.yaml" <<META
architecture: x86_64
creation_date: $(date +%s)
properties:
  description: "$3"
  os: "$4"
  release: "$5"
  warren.build: "$6"
  warren.cloud-init: "true"
  requirements.secureboot: "false"
META
    tar -C "$1" -cJf "$1/metadata.tar.xz" metadata.yaml
    mkdir -p "$2"
    mv "$1/metadata.tar.xz" "$1/disk.qcow2" "$2/"
}
