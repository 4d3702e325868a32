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

While a scratch bridge exists (tests/bridges.py), a guard in the host's
forwarding path drops everything between it and any interface but the
test's own Internet, and IPv4 forwarding is on; both are put back as they
were afterwards. tests/test_ipv6.py does the same over IPv6.
"""
import ipaddress
import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app import addresses, lxd
from app.config import NETWORK_MODES, load_settings
from app.errors import ConfigError
import netsim
from netsim import DOCUMENTATION, DOCUMENTATION6, Internet, next_peer, prefixes_in_use
from support import run_in, wait_until

PORT = 7080
INSTANCE_PORT = 7081

# Connects, prints what the other end says.
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as connection:
    print(connection.recv(200).decode().strip())
"""


def serve(internet: Internet) -> "queue.Queue[str]":
    """Start a server on the Internet's client address (see netsim.serve)."""
    return netsim.serve(internet, PORT)


def connect_out(instance, internet: Internet) -> int:
    """The instance opens a connection to the Internet's server; nc's exit code."""
    command = f"echo hello | nc -w 3 {internet.client_ip} {PORT}"
    code, _, _ = lxd.execute(instance, ["sh", "-c", command])
    return code


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


def test_a_cluster_bridge_adds_the_tunnel_and_known_only_dhcp_and_its_settings_are_checked():
    address, dhcp = "10.87.0.1/24", addresses.dynamic_range("10.87.0.1/24")
    tunnel = lxd.cluster_tunnel("239.0.0.9", 42, "eth1")
    config = lxd.bridge_config(address, dhcp, tunnel=tunnel)
    assert config == {**lxd.bridge_config(address, dhcp), "tunnel.vx.protocol": "vxlan",
                      "tunnel.vx.group": "239.0.0.9", "tunnel.vx.id": "42", "tunnel.vx.interface": "eth1",
                      "raw.dnsmasq": "dhcp-ignore=tag:!known"}
    assert "tunnel.vx.interface" not in lxd.cluster_tunnel("239.0.0.1", 1)  # each member's default route
    settings = load_settings(environ={})
    assert (settings.cluster_vxlan_group, settings.cluster_vxlan_id, settings.cluster_vxlan_interface) == \
        ("239.0.0.1", 1, "")
    with pytest.raises(ConfigError, match="WARREN_CLUSTER_VXLAN_GROUP: '10.0.0.1' is not an IPv4 multicast"):
        load_settings(environ={"WARREN_CLUSTER_VXLAN_GROUP": "10.0.0.1"})
    with pytest.raises(ConfigError, match="WARREN_CLUSTER_VXLAN_INTERFACE: 'eth0; rm' is not a network"):
        load_settings(environ={"WARREN_CLUSTER_VXLAN_INTERFACE": "eth0; rm"})
    with pytest.raises(ConfigError, match="WARREN_CLUSTER_VXLAN_ID"):
        load_settings(environ={"WARREN_CLUSTER_VXLAN_ID": "0"})


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
    routes6 = internet.run("ip", "-6", "route", "show", "table", "main", "type", "unicast").stdout
    assert sorted(route.split()[:3] for route in routes6.splitlines()) == sorted(
        [[str(internet.network6), "dev", "eth0"], ["fe80::/64", "dev", "eth0"]])
    assert internet.network6.subnet_of(ipaddress.IPv6Network(DOCUMENTATION6))


def test_two_internets_get_their_own_names_and_prefixes_and_leave_nothing_behind():
    first, second = Internet().start(), Internet().start()
    try:
        assert first.name != second.name
        assert not first.network.overlaps(second.network)
        assert not first.network6.overlaps(second.network6)
        sleeper = first.popen("sleep", "600")
    finally:
        second.stop()
        first.stop()
    assert sleeper.poll() is not None
    for gone in (first, second):
        assert not Path(f"/run/netns/{gone.name}").exists()
        assert subprocess.run(["ip", "link", "show", gone.name], capture_output=True).returncode != 0
        assert not any(gone.network.overlaps(used) for used in prefixes_in_use())
