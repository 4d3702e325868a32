# Shared steps of bin/up and bin/test (sourced). Every step checks before it
# acts, so running a command twice reuses what exists and loses nothing.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$REPO/.venv
# nftables: LXD picks its nftables firewall driver when `nft` is there at its
# start (its xtables driver cannot remove the NIC filtering rules it adds
# through the nf_tables ebtables); ebtables: Warren's own bridge guards
# (app/firewall.py); openssh-server: the SSH jump server (ssh/sshd.sh); nginx: the reverse proxy the
# sign-in throttling tests put in front of Warren; haproxy and openssl: the ingress proxy and
# its default certificate (ingress/haproxy.sh); pebble: the test ACME CA the ingress tests
# issue from; wrk: the ingress benchmark (bin/bench ingress); unbound: the validating
# resolver the DNSSEC test asks; python3-certbot-dns-rfc2136: certbot's client the ACME key
# test drives; publicsuffix: the Public Suffix List that custom domains are checked
# against (app/hostnames.py); restic: the off-host copy of instance and Warren backups
# (deduplicated, encrypted; app/offsite.py).
# LXD VMs need QEMU, UEFI firmware, iPXE ROMs, mkisofs (cloud-init's config
# drive) and sgdisk (growing VM disks); VM images are built with the FAT,
# GPT, kernel-module and cpio tools.
PACKAGES="lxd lxd-client dnsmasq-base iptables btrfs-progs busybox-static bind9 bind9-dnsutils
          debootstrap xz-utils ca-certificates python3 python3-venv curl
          qemu-system-x86 qemu-utils ovmf ipxe-qemu genisoimage gdisk
          dosfstools mtools systemd-boot-efi fdisk kmod cpio ebtables nftables nginx-light chromium chromium-driver
          openssh-server openssh-client haproxy openssl pebble wrk unbound python3-certbot-dns-rfc2136 publicsuffix
          restic"

say() { printf '\033[1mwarren:\033[0m %s\n' "$*"; }
die() { printf 'warren: error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" = 0 ] || die "run this as root (it installs packages and starts LXD and named)"
}

install_packages() {
    local missing=""
    for package in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
            || missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        say "installing Debian packages:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
}

ensure_venv() {
    local stamp=$VENV/.requirements.sha256
    local want
    # The `warren` command-line client (cli/, its own package) is installed too,
    # editable, so the tests run the command as a user would. The checkout's
    # path is part of the stamp: an editable install points into one checkout.
    want=$({ echo "$REPO"; cat "$REPO/requirements.txt" "$REPO/cli/pyproject.toml"; } | sha256sum | cut -d' ' -f1)
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the Python environment in $VENV"
        /usr/bin/python3 -m venv "$VENV"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing Python requirements"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/requirements.txt" \
            > "$VENV/pip.log" 2>&1 || { tail -n 20 "$VENV/pip.log" >&2; die "pip install failed"; }
        "$VENV/bin/pip" install -q --disable-pip-version-check -e "$REPO/cli" \
            >> "$VENV/pip.log" 2>&1 || { tail -n 20 "$VENV/pip.log" >&2; die "pip install of cli/ failed"; }
        echo "$want" > "$stamp"
    fi
}

use_test_network() {
    # Tests and benchmarks run scratch Warrens beside the real one. Only one
    # Warren may hand out addresses on a bridge, so they get their own; and
    # the setup commands they run (which open and migrate a database) never
    # touch the real Warren's database.
    export WARREN_LXD_NETWORK=${WARREN_TEST_NETWORK:-warrentest0}
    export WARREN_NETWORK_ADDRESS=${WARREN_TEST_NETWORK_ADDRESS:-10.88.0.1/24}
    export WARREN_DATABASE=${WARREN_DATA_DIR:-/var/lib/warren}/test-setup.sqlite3
    # A scratch database: fresh each run (one a newer checkout migrated
    # further would refuse to open).
    rm -f "$WARREN_DATABASE" "$WARREN_DATABASE-wal" "$WARREN_DATABASE-shm"
}

load_config() {  # resolve WARREN_* through app.config: one place for defaults
    local exports
    exports=$(cd "$REPO" && "$VENV/bin/python" -m app.config --shell) || exit 2
    eval "$exports"
    mkdir -p "$WARREN_DATA_DIR" "$WARREN_LOG_DIR" "$WARREN_IMAGE_CACHE"
    chmod 711 "$WARREN_DATA_DIR"  # named (user bind) must reach dns/ inside it
}

ensure_secret_key() {
    [ -n "$WARREN_SECRET_KEY" ] && return
    if [ ! -s "$WARREN_SECRET_KEY_FILE" ]; then
        (umask 077; "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))' \
            > "$WARREN_SECRET_KEY_FILE")
    fi
}

ensure_subids() {
    # Each isolated container takes its own 65536 ids; Debian's default range
    # fits ~150. Widen it (same base, so existing maps stay valid) while LXD
    # is stopped, because the daemon reads it at start.
    local file
    for file in /etc/subuid /etc/subgid; do
        if ! grep -q '^root:100000:1000000000$' "$file" 2>/dev/null; then
            sed -i '/^root:/d' "$file" 2>/dev/null || true
            echo 'root:100000:1000000000' >> "$file"
        fi
    done
}

lxd_running() { lxc info >/dev/null 2>&1; }

start_lxd() {
    if lxd_running; then
        return
    fi
    ensure_subids
    say "starting the LXD daemon (log: $WARREN_LOG_DIR/lxd.log)"
    # umask 022: LXD's own directories must stay traversable for container roots.
    (umask 022; nohup lxd --group root --logfile "$WARREN_LOG_DIR/lxd.log" \
        >>"$WARREN_LOG_DIR/lxd.log" 2>&1 &)
    lxd waitready --timeout 60 || die "LXD did not become ready; see $WARREN_LOG_DIR/lxd.log"
}

warren_cli() { (cd "$REPO" && "$VENV/bin/flask" --app app "$@"); }

setup_backends() {  # setup_backends IMAGE...: LXD, its pool/bridge, images, named
    start_lxd
    warren_cli host setup-lxd
    "$REPO/images/ensure.sh" "$WARREN_IMAGE_CACHE" "$@"
    "$REPO/dns/named.sh" start
}
