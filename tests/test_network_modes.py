"""Network modes (WARREN_NETWORK_MODE), seen from the far end: a server on
a simulated Internet (tests/netsim.py) prints the address each connection
comes from, and a busybox container on a scratch Warren's own bridge
connects to it.

- nat: the connection arrives from the host's public address, and the
  Internet needs no route back to the bridge;
- routed: it arrives from the instance's own address, once the Internet
  routes the bridge's prefix to the host (the co-op's upstream does that
  in production), and the Internet reaches the instance the same way;
- isolated: nothing arrives, with the Internet set up exactly as for nat.
  (The bridge itself still forwards, as LXD's bridges do: an Internet that
  routed the prefix back would be reached, as in routed mode. Isolated
  means nobody upstream routes the prefix and nothing masquerades it.)

While a scratch bridge exists, a guard in the host's forwarding path drops
everything between it and any interface but the test's own Internet, and
IPv4 forwarding is on; both are put back as they were afterwards.
"""
import ipaddress
import itertools
import os
import queue
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from app import addresses, firewall, lxd
from app.config import NETWORK_MODES, load_settings
from app.errors import ConfigError
from conftest import make_app
from netsim import DOCUMENTATION, Internet, prefixes_in_use
from support import run_in, wait_until

PORT = 7080
INSTANCE_PORT = 7081
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_bridges = itertools.count()

# Prints "listening", then the peer address of every connection, one a line.
SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen()
print("listening", flush=True)
while True:
    connection, (peer, _) = server.accept()
    print(peer, flush=True)
    connection.close()
"""

# Connects, prints what the other end says.
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as connection:
    print(connection.recv(200).decode().strip())
"""


def serve(internet: Internet) -> "queue.Queue[str]":
    """Start a server on the Internet's client address; the peer addresses it
    reports arrive on the returned queue, one per connection."""
    server = internet.popen(sys.executable, "-c", SERVER, internet.client_ip, str(PORT))
    assert server.stdout.readline().strip() == "listening", server.stderr.read()
    reported = queue.Queue()
    threading.Thread(target=lambda: [reported.put(line.strip()) for line in server.stdout],
                     daemon=True).start()
    return reported


def next_peer(reported: "queue.Queue[str]", timeout: float = 10) -> str | None:
    """The address the next connection came from, or None if none comes in time."""
    try:
        return reported.get(timeout=timeout)
    except queue.Empty:
        return None


def connect_out(instance, internet: Internet) -> int:
    """The instance opens a connection to the Internet's server; nc's exit code."""
    command = f"echo hello | nc -w 3 {internet.client_ip} {PORT}"
    code, _, _ = lxd.execute(instance, ["sh", "-c", command])
    return code


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
        self.name = f"wm{os.getpid()}b{next(_bridges)}"
        self.address = free_bridge_address()
        self.gateway = self.address.split("/")[0]
        self.network = ipaddress.IPv4Interface(self.address).network
        self.instances: list[str] = []
        # The guard comes before the bridge exists (LXD turns forwarding on
        # as it starts a bridge) and goes after the bridge is gone. A drop in
        # mangle FORWARD is final whichever table and order LXD's accepts use.
        self.guard = [["-i", self.name, "!", "-o", internet.name, "-j", "DROP"],
                      ["-o", self.name, "!", "-i", internet.name, "-j", "DROP"],
                      # Inserted last, so first: neighbours on the bridge (bridged
                      # frames reach iptables here) are none of the guard's business.
                      ["-i", self.name, "-o", self.name, "-j", "ACCEPT"]]
        for rule in self.guard:
            subprocess.run(["iptables", "-t", "mangle", "-I", "FORWARD", "1", *rule], check=True)
        self.forwarding_was = IP_FORWARD.read_text().strip()
        IP_FORWARD.write_text("1")

    def setup(self, mode: str) -> str:
        """`flask host setup-lxd` of a Warren in this mode on this bridge; its output."""
        folder = self.tmp_path / f"warren-{mode}"
        folder.mkdir(exist_ok=True)
        app = make_app(folder, lxd_network=self.name, network_address=self.address,
                       network_mode=mode)
        result = app.test_cli_runner().invoke(args=["host", "setup-lxd"])
        assert result.exit_code == 0, result.output
        return result.output

    def launch(self):
        """A running busybox container on the bridge, with a default route via
        the host as a DHCP-configured distribution would have; (instance, address)."""
        name = f"{self.name}-{uuid.uuid4().hex[:6]}"
        self.instances.append(name)
        devices = {"root": {"type": "disk", "path": "/", "pool": self.settings.lxd_storage_pool},
                   "eth0": {"type": "nic", "network": self.name, "name": "eth0"}}
        instance = lxd.create_instance(self.client, name, "busybox", devices=devices,
                                       lock_path=f"{self.settings.data_dir}/lxd-create.lock")
        lxd.start_instance(instance)
        address = wait_until(lambda: lxd.ipv4_address(instance), 30, f"{name} taking an address")
        assert ipaddress.IPv4Address(address) in self.network
        run_in(instance, "ip", "route", "add", "default", "via", self.gateway)
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
            firewall.ensure_forward_guard(self.name, isolated=False)
        finally:
            for rule in self.guard:
                subprocess.run(["iptables", "-t", "mangle", "-D", "FORWARD", *rule], check=True)
            if self.forwarding_was != "1":
                IP_FORWARD.write_text(self.forwarding_was)


@pytest.fixture
def scratch_bridge(internet, tmp_path, lxd_client, settings, monkeypatch):
    """A scratch bridge guarded to the test's Internet; removed afterwards."""
    # The host's default profile belongs to the host's Warren, not to this one.
    monkeypatch.setattr(lxd, "ensure_default_profile", lambda *args: False)
    bridge = ScratchBridge(tmp_path, lxd_client, settings, internet)
    yield bridge
    bridge.remove()


# The setting and the bridge config it selects.

def test_network_mode_defaults_to_isolated_and_refuses_unknown_modes():
    assert load_settings(environ={}).network_mode == "isolated"
    assert load_settings(environ={"WARREN_NETWORK_MODE": "NAT"}).network_mode == "nat"
    with pytest.raises(ConfigError, match="WARREN_NETWORK_MODE: 'bridged' is not a network mode"):
        load_settings(environ={"WARREN_NETWORK_MODE": "bridged"})


def test_each_mode_selects_its_bridge_config():
    address, dhcp = "10.87.0.1/24", addresses.dynamic_range("10.87.0.1/24")
    # isolated is the bridge Warren has always made, key for key.
    assert lxd.bridge_config(address, dhcp) == lxd.bridge_config(address, dhcp, mode="isolated") == {
        "ipv4.address": address, "ipv4.nat": "false", "ipv4.dhcp": "true",
        "ipv4.dhcp.ranges": dhcp, "ipv6.address": "none", "dns.mode": "none"}
    nat = lxd.bridge_config(address, dhcp, mode="nat")
    assert (nat["ipv4.nat"], nat["ipv4.routing"]) == ("true", "true")
    routed = lxd.bridge_config(address, dhcp, mode="routed")
    assert (routed["ipv4.nat"], routed["ipv4.routing"]) == ("false", "true")
    assert all(lxd.bridge_config(address, dhcp, mode=mode) for mode in NETWORK_MODES)
    with pytest.raises(ValueError, match="unknown network mode 'bridged'"):
        lxd.bridge_config(address, dhcp, mode="bridged")


@pytest.mark.lxd
def test_setup_lxd_builds_the_bridge_of_the_configured_mode(scratch_bridge, lxd_client):
    line = f"network {scratch_bridge.name}: "
    assert line + "configured" in scratch_bridge.setup("nat")
    assert lxd.network_config(lxd_client, scratch_bridge.name)["ipv4.nat"] == "true"
    # A bridge that exists follows a change of mode, and then stays.
    assert line + "configured" in scratch_bridge.setup("routed")
    config = lxd.network_config(lxd_client, scratch_bridge.name)
    assert (config["ipv4.nat"], config["ipv4.routing"]) == ("false", "true")
    assert line + "present" in scratch_bridge.setup("routed")
    assert "routed" in lxd_client.networks.get(scratch_bridge.name).description


# What an instance's connection looks like from the Internet.

@pytest.mark.slow
@pytest.mark.lxd
def test_nat_instances_reach_the_internet_from_the_public_address(internet, scratch_bridge):
    scratch_bridge.setup("nat")
    instance, address = scratch_bridge.launch()
    reported = serve(internet)
    assert connect_out(instance, internet) == 0
    assert next_peer(reported) == internet.host_ip


@pytest.mark.slow
@pytest.mark.lxd
def test_routed_instances_reach_and_are_reached_at_their_own_address(internet, scratch_bridge):
    scratch_bridge.setup("routed")
    instance, address = scratch_bridge.launch()
    # What the co-op's upstream does: route the bridge's prefix to the host.
    internet.run("ip", "route", "add", str(scratch_bridge.network), "via", internet.host_ip,
                 check=True)
    reported = serve(internet)
    assert connect_out(instance, internet) == 0
    assert next_peer(reported) == address

    run_in(instance, "sh", "-c",
           f"setsid nc -ll -p {INSTANCE_PORT} -e echo {instance.name} </dev/null >/dev/null 2>&1 &")
    wait_until(lambda: internet.run(sys.executable, "-c", CLIENT, address, str(INSTANCE_PORT))
               .stdout.strip() == instance.name, 10, f"the Internet reaching {address}")


@pytest.mark.slow
@pytest.mark.lxd
def test_isolated_instances_do_not_reach_the_internet(internet, scratch_bridge):
    scratch_bridge.setup("isolated")
    instance, address = scratch_bridge.launch()
    second, second_address = scratch_bridge.launch()
    run_in(instance, "ping", "-c", "1", "-W", "2", scratch_bridge.gateway)  # it is on the network
    run_in(instance, "ping", "-c", "1", "-W", "2", second_address)  # and meets its neighbours
    # Even where the prefix is routed back (as in routed mode), nothing crosses:
    # the host forwards nothing between an isolated bridge and anywhere else.
    internet.run("ip", "route", "add", str(scratch_bridge.network), "via", internet.host_ip,
                 check=True)
    reported = serve(internet)
    assert connect_out(instance, internet) != 0
    assert next_peer(reported, timeout=1) is None


# The simulated Internet itself.

def test_the_internet_and_the_host_reach_each_other(internet):
    reported = serve(internet)
    with socket.create_connection((internet.client_ip, PORT), timeout=3):
        pass
    assert next_peer(reported) == internet.host_ip

    # And back: a server on the host's end hears the client's address.
    listener = socket.create_server((internet.host_ip, PORT))
    heard = []
    accepting = threading.Thread(target=lambda: heard.append(listener.accept()[1][0]))
    accepting.start()
    result = internet.run(sys.executable, "-c",
                          f"import socket; socket.create_connection(('{internet.host_ip}', {PORT}), 3)")
    accepting.join(timeout=5)
    listener.close()
    assert result.returncode == 0, result.stderr
    assert heard == [internet.client_ip]


def test_the_internet_routes_nowhere_but_the_host_end(internet):
    routes = internet.run("ip", "-4", "route", "show", "table", "all", "type", "unicast").stdout
    assert [route.split()[:3] for route in routes.splitlines()] == [
        [str(internet.network), "dev", "eth0"]]
    assert any(internet.network.subnet_of(ipaddress.IPv4Network(documentation))
               for documentation in DOCUMENTATION)


def test_two_internets_get_their_own_names_and_prefixes_and_leave_nothing_behind():
    first, second = Internet().start(), Internet().start()
    try:
        assert first.name != second.name
        assert not first.network.overlaps(second.network)
        sleeper = first.popen("sleep", "600")
    finally:
        second.stop()
        first.stop()
    assert sleeper.poll() is not None
    for gone in (first, second):
        assert not Path(f"/run/netns/{gone.name}").exists()
        assert subprocess.run(["ip", "link", "show", gone.name], capture_output=True).returncode != 0
        assert not any(gone.network.overlaps(used) for used in prefixes_in_use())
