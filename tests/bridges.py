"""Scratch Warren bridges for the network tests: an LXD bridge of a scratch
Warren's own, the containers launched on it, and a guard in the host's
forwarding path that keeps their traffic to one simulated Internet
(tests/netsim.py), for IPv4 and IPv6 alike.

While a scratch bridge exists, IPv4 and IPv6 forwarding are on (LXD turns
them on for its bridges anyway); both are put back as they were afterwards.
"""
import ipaddress
import itertools
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from app import firewall, lxd
from conftest import make_app
from netsim import DOCUMENTATION6, Internet, free_ipv6_prefix, prefixes_in_use
from support import run_in, wait_until

FORWARDING = {"iptables": Path("/proc/sys/net/ipv4/ip_forward"),
              "ip6tables": Path("/proc/sys/net/ipv6/conf/all/forwarding")}
# Scratch bridges take their IPv6 /64s from here (RFC 3849 documentation).
BRIDGES6 = ipaddress.IPv6Network("2001:db8:9200::/40")
_bridges = itertools.count()
assert BRIDGES6.subnet_of(ipaddress.IPv6Network(DOCUMENTATION6))


def free_bridge_address() -> str:
    """A 10.92.n.1/24 no interface or route of this host overlaps."""
    used = prefixes_in_use()
    start = os.getpid() % 250
    for step in range(250):
        network = ipaddress.IPv4Network(f"10.92.{(start + step) % 250 + 1}.0/24")
        if not any(network.overlaps(other) for other in used):
            return f"{network[1]}/24"
    pytest.fail("no free 10.92.n.0/24 for a scratch bridge")


class ScratchBridge:
    """A scratch Warren's own LXD bridge, the containers launched on it, and
    the forwarding guard that keeps their traffic to one simulated Internet."""

    def __init__(self, tmp_path, lxd_client, settings, internet: Internet):
        self.tmp_path, self.client, self.settings = tmp_path, lxd_client, settings
        number = next(_bridges)
        self.name = f"wm{os.getpid()}b{number}"
        self.address = free_bridge_address()
        self.gateway = self.address.split("/")[0]
        self.network = ipaddress.IPv4Interface(self.address).network
        self.prefix6 = str(free_ipv6_prefix(BRIDGES6, start=os.getpid() * 16 + number))
        self.instances: list[str] = []
        # The guard comes before the bridge exists (LXD turns forwarding on
        # as it starts a bridge) and goes after the bridge is gone. A drop in
        # mangle FORWARD is final whichever table and order LXD's accepts use.
        self.guard = [["-i", self.name, "!", "-o", internet.name, "-j", "DROP"],
                      ["-o", self.name, "!", "-i", internet.name, "-j", "DROP"],
                      # Inserted last, so first: neighbours on the bridge (bridged
                      # frames reach iptables here) are none of the guard's business.
                      ["-i", self.name, "-o", self.name, "-j", "ACCEPT"]]
        for binary in FORWARDING:
            for rule in self.guard:
                subprocess.run([binary, "-t", "mangle", "-I", "FORWARD", "1", *rule], check=True)
        self.forwarding_was = {binary: path.read_text().strip() for binary, path in FORWARDING.items()}
        FORWARDING["iptables"].write_text("1")

    def app(self, mode: str, ipv6: bool = False, folder_name: str | None = None, **overrides):
        """A scratch Warren on this bridge in this mode (with IPv6 on this
        bridge's /64 when asked)."""
        folder = self.tmp_path / (folder_name or f"warren-{mode}{'-ipv6' if ipv6 else ''}")
        folder.mkdir(exist_ok=True)
        return make_app(folder, lxd_network=self.name, network_address=self.address,
                        network_mode=mode, network_ipv6_prefix=self.prefix6 if ipv6 else "",
                        **overrides)

    def setup(self, mode: str, ipv6: bool = False) -> str:
        """`flask host setup-lxd` of a Warren in this mode on this bridge; its output."""
        result = self.app(mode, ipv6).test_cli_runner().invoke(args=["host", "setup-lxd"])
        assert result.exit_code == 0, result.output
        return result.output

    def launch(self, ipv6: str | None = None):
        """A running busybox container on the bridge, with a default route via
        the host as a DHCP-configured distribution would have; (instance,
        address). With ipv6, its NIC has that static IPv6 address, which it
        takes by DHCPv6 (tests/dhcp6.py)."""
        from dhcp6 import take_ipv6_lease
        name = f"{self.name}-{uuid.uuid4().hex[:6]}"
        self.instances.append(name)
        nic = {"type": "nic", "network": self.name, "name": "eth0"}
        if ipv6:
            nic["ipv6.address"] = ipv6
        devices = {"root": {"type": "disk", "path": "/", "pool": self.settings.lxd_storage_pool},
                   "eth0": nic}
        instance = lxd.create_instance(self.client, name, "busybox", devices=devices,
                                       lock_path=lxd.idmap_lock_path(lxd.backend(self.settings)))
        lxd.start_instance(instance)
        address = wait_until(lambda: lxd.ipv4_address(instance), 30, f"{name} taking an address")
        assert ipaddress.IPv4Address(address) in self.network
        run_in(instance, "ip", "route", "replace", "default", "via", self.gateway)
        if ipv6:
            assert take_ipv6_lease(instance) == ipv6
        return instance, address

    def remove(self) -> None:
        """Delete the containers and the bridge, then lift the guard and put
        forwarding back as it was."""
        try:
            for name in self.instances:
                lxd.delete_instance(self.client, name)
            if self.client.networks.exists(self.name):
                self.client.networks.get(self.name).delete()
            firewall.remove_dhcp_guard(self.name)
            firewall.remove_mac_guard(self.name)
            firewall.remove_nd_guard(self.name)
            firewall.ensure_forward_guard(self.name, isolated=False)
        finally:
            for binary in FORWARDING:
                for rule in self.guard:
                    subprocess.run([binary, "-t", "mangle", "-D", "FORWARD", *rule], check=True)
            for binary, path in FORWARDING.items():
                if path.read_text().strip() != self.forwarding_was[binary]:
                    path.write_text(self.forwarding_was[binary])
