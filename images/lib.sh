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
