#!/bin/bash
# A second, test-only LXD daemon that can run virtual machines on this
# machine (see README.md here). Usage: vmhost.sh start|stop|status
# It has its own LXD_DIR, socket, dir pool and NAT-less bridge, and its
# images (the tiny VM image) are built by images/ensure.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
base=${WARREN_VMHOST_DIR:-/var/lib/warren/vmhost}
export WARREN_VMHOST_DIR=$base
export LXD_DIR=$base/lxd
network=${WARREN_VMHOST_NETWORK:-warrenvm0}
address=${WARREN_VMHOST_ADDRESS:-10.89.0.1/24}
dhcp_range=${WARREN_VMHOST_DHCP_RANGE:-10.89.0.193-10.89.0.254}  # Warren's static pool is below
log=${WARREN_LOG_DIR:-/var/log/warren}/lxd-vmhost.log

running() { [ -S "$LXD_DIR/unix.socket" ] && lxc info >/dev/null 2>&1; }

start() {
    mkdir -p "$base/bin" "$base/pool" "$LXD_DIR" "$(dirname "$log")"
    # QEMU opens /dev/net/tun after dropping to an unprivileged user; Debian's
    # udev rule makes it 0666, but this machine has no udev and left it 0600.
    chmod 0666 /dev/net/tun
    for tool in qemu-system-x86_64 modprobe lxd-exec; do
        install -m 0755 "$here/$tool" "$base/bin/$tool"
    done
    if ! running; then
        echo "vmhost: starting the VM test daemon (log: $log)"
        (umask 022; PATH="$base/bin:$PATH" LXD_EXEC_PATH="$base/bin/lxd-exec" \
            nohup lxd --group root --logfile "$log" >>"$log" 2>&1 &)
        lxd waitready --timeout 60
    fi
    lxc storage show vmpool >/dev/null 2>&1 || lxc storage create vmpool dir source="$base/pool" >/dev/null
    if ! lxc network show "$network" >/dev/null 2>&1; then
        lxc network create "$network" ipv4.address="$address" ipv4.nat=false ipv6.address=none \
            ipv4.dhcp.ranges="$dhcp_range" dns.mode=none >/dev/null
    fi
    [ "$(lxc network get "$network" ipv4.dhcp.ranges)" = "$dhcp_range" ] \
        || lxc network set "$network" ipv4.dhcp.ranges="$dhcp_range"
    if ! lxc profile device show default | grep -q '^root:'; then
        lxc profile device add default root disk path=/ pool=vmpool >/dev/null
    fi
    "$repo/images/ensure.sh" "${WARREN_IMAGE_CACHE:-/var/lib/warren/images}" vm-tiny
}

stop() {
    if running; then
        # LXD 5.0.2 has no `lxc project list -c n`: list instances with their project.
        lxc list --all-projects -f csv -c en | while IFS=, read -r project instance; do
            [ -n "$instance" ] && lxc delete --force --project "$project" "$instance"
        done
        kill -9 "$(cat "$LXD_DIR/lxd.pid" 2>/dev/null || pgrep -f "^lxd --group root --logfile $log")" 2>/dev/null || true
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) running && echo "vmhost: running ($LXD_DIR/unix.socket)" || { echo "vmhost: stopped"; exit 1; } ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
