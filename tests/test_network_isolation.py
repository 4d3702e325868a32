"""Members are root in their containers, all on one bridge: none may take a
neighbour's address or MAC, or answer a neighbour's DHCP (real LXD, the
test bridge). The containers are requested through the web form.

Two attacks need a tool the busybox image lacks (it has no UDP client or
server), so they run a short Python program from the host inside the
container's network namespace: to the bridge that is exactly the
container's eth0 sending and receiving.
"""
import ipaddress
import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import addresses, firewall, isolation, lxd, provisioning
from app.errors import LxdError
from app.names import project_name
from app.store import get_db
from support import launch, member_instance, run_in, wait_until

pytestmark = pytest.mark.lxd
PORT = 7000


@pytest.fixture(autouse=True)
def spare_addresses(monkeypatch):
    """Other test runs share the bridge, each with its own database: take
    an address no LXD instance holds, from a random place in the upper half
    of the pool, rather than the first one this database has free."""
    def allocate(db, bridge_address):
        listing = subprocess.run(["lxc", "query", "/1.0/instances?all-projects=true&recursion=1"],
                                 capture_output=True, text=True, check=True).stdout
        taken = {device.get("ipv4.address") for item in json.loads(listing)
                 for device in item["expanded_devices"].values()}
        taken |= {row[0] for row in db.execute("SELECT ipv4 FROM instances")}
        pool = addresses.static_pool(bridge_address)
        spare = [address for address in pool[len(pool) // 2:] if address not in taken]
        return random.choice(spare) if spare else None
    monkeypatch.setattr(addresses, "allocate", allocate)


def started(settings, client, name):
    """Launch a busybox container for a member; (instance, its address)
    once the container has taken that address."""
    _, progress = launch(client, name=name, profile="small", image="busybox")
    instance = member_instance(settings, client, name)
    wait_until(lambda: lxd.ipv4_address(instance) == progress["ipv4"], 30,
               f"{name} taking its address {progress['ipv4']}")
    return instance, progress["ipv4"]


def mac_of(instance) -> str:
    """The MAC of the instance's eth0, as it sees it."""
    return run_in(instance, "cat", "/sys/class/net/eth0/address")


def in_background(instance, command: str) -> None:
    """Start a command that outlives the exec session (setsid: LXD ends the
    session's process group when the command returns)."""
    run_in(instance, "sh", "-c", f"setsid {command} </dev/null >/dev/null 2>&1 &")


def answer(instance, address: str) -> str:
    """What the responder at address says to this instance ('' if nothing)."""
    _, out, _ = lxd.execute(instance, ["sh", "-c", f"nc -w 2 {address} {PORT} </dev/null"])
    return out.strip()


def neighbour_mac(instance, address: str) -> str | None:
    """The MAC this instance's neighbour table holds for an address."""
    words = run_in(instance, "ip", "neigh", "show", address).split()
    return words[words.index("lladdr") + 1] if "lladdr" in words else None


def respond(instance, identity: str) -> None:
    """Answer every connection on PORT with this identity."""
    in_background(instance, f"nc -ll -p {PORT} -e echo {identity}")


def in_netns(instance, program: str, *args: str) -> subprocess.Popen:
    """Start a Python program from the host in the container's network namespace."""
    command = ["nsenter", f"--net=/proc/{instance.state().pid}/ns/net", "--",
               sys.executable, "-c", program, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def guarded(settings):
    """Put the bridge guards in place as the worker's pass does, for the
    instances running then; afterwards (requested first, so after the
    members' projects are gone) drop the rules of the ports that went."""
    yield lambda: isolation.guard_bridge(settings)
    isolation.guard_bridge(settings)


@pytest.mark.slow
def test_a_member_cannot_take_another_members_address(guarded, settings, worker, members):
    mallory, _ = started(settings, members(), "mallory")
    bob, bob_ip = started(settings, members(), "bob")
    carol, carol_ip = started(settings, members(), "carol")
    guarded()
    bob_mac = mac_of(bob)
    respond(bob, "bob")
    respond(mallory, "mallory")
    wait_until(lambda: answer(carol, bob_ip) == "bob", 10, "bob answering carol")
    time.sleep(1.2)  # past the kernel's ARP locktime: a forged announcement would now be believed

    # Mallory claims Bob's address and announces it (gratuitous ARP).
    run_in(mallory, "ip", "addr", "add", f"{bob_ip}/24", "dev", "eth0")
    run_in(mallory, "arping", "-U", "-c", "3", "-I", "eth0", "-s", bob_ip, bob_ip)
    assert answer(carol, bob_ip) == "bob"
    assert neighbour_mac(carol, bob_ip) == bob_mac

    # Mallory takes Bob's MAC too and keeps sending, so the bridge would
    # learn Bob's MAC on Mallory's port and hand her Bob's traffic.
    run_in(mallory, "sh", "-c", f"ip link set eth0 down && ip link set eth0 address {bob_mac} "
                                "&& ip link set eth0 up")
    in_background(mallory, f"arping -U -c 1000 -w 1000 -I eth0 -s {bob_ip} {bob_ip}")
    in_background(mallory, f"ping -i 0.2 {settings.network_address.split('/')[0]}")
    time.sleep(1)
    assert [answer(carol, bob_ip) for _ in range(3)] == ["bob"] * 3
    assert carol_ip not in run_in(mallory, "netstat", "-tn")  # none of it reached Mallory


LISTEN = """
import select, socket, sys, time
sockets = []
for port in (68, 6800):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))
    sockets.append(sock)
print("listening", flush=True)
end = time.monotonic() + float(sys.argv[1])
while (left := end - time.monotonic()) > 0:
    for sock in select.select(sockets, [], [], left)[0]:
        data, (host, port) = sock.recvfrom(2048)
        print(sock.getsockname()[1], host, port, data.decode(), flush=True)
"""

# A DHCP server's reply comes from port 67; the control datagram from
# another port to another port shows the path between the two works.
SEND = """
import socket, sys, time
target, broadcast = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
server.bind(("", 67))
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
other.bind(("", 6700))
for _ in range(5):
    for address in (target, broadcast):
        server.sendto(b"offer", (address, 68))
    other.sendto(b"control", (target, 6800))
    time.sleep(0.2)
"""

# The source address of every DHCP server message eth0 receives.
SNIFF = """
import socket
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
sock.bind(("eth0", 0))
print("listening", flush=True)
while True:
    frame, (_, _, kind, _, _) = sock.recvfrom(2048)
    udp = 14 + (frame[14] & 15) * 4
    if kind != socket.PACKET_OUTGOING and frame[23] == 17 and frame[udp:udp + 2] == b"\\x00\\x43":
        print(socket.inet_ntoa(frame[26:30]), flush=True)
"""

RECORD = """#!/bin/sh
# Note which server each lease came from; leave eth0 as it is.
[ "$1" = bound ] && echo "$serverid" >> /tmp/servers
exit 0
"""


@pytest.mark.slow
def test_a_dhcp_server_in_a_container_is_not_heard(guarded, settings, worker, members):
    rogue, _ = started(settings, members(), "rogue")
    fresh, fresh_ip = started(settings, members(), "fresh")
    guarded()
    network = ipaddress.IPv4Interface(settings.network_address).network
    warren_dhcp = settings.network_address.split("/")[0]

    # Deterministic: a server-like datagram from port 67, unicast and broadcast.
    listener = in_netns(fresh, LISTEN, "4")
    assert listener.stdout.readline().strip() == "listening"
    sender = in_netns(rogue, SEND, fresh_ip, str(network.broadcast_address))
    assert sender.wait(timeout=30) == 0, sender.stderr.read()
    heard = listener.communicate(timeout=30)[0].splitlines()
    assert any(line.startswith("6800 ") for line in heard), heard  # the path works
    assert not [line for line in heard if line.startswith("68 ")]

    # Realistic: a DHCP server in the rogue offers its own range; the fresh
    # instance hears no DHCP server but Warren's, and takes its leases only.
    lxd.push_file(rogue, "/tmp/udhcpd.conf", f"interface eth0\nstart {network[150]}\n"
                  f"end {network[159]}\noption subnet {network.netmask}\nlease_file /tmp/leases\n")
    run_in(rogue, "touch", "/tmp/leases")
    in_background(rogue, "udhcpd -f -a 0 /tmp/udhcpd.conf")
    wait_until(lambda: lxd.execute(rogue, ["pidof", "udhcpd"])[0] == 0, 10, "udhcpd running")
    lxd.push_file(fresh, "/tmp/record.sh", RECORD, mode=0o755)
    sniffer = in_netns(fresh, SNIFF)
    assert sniffer.stdout.readline().strip() == "listening"
    run_in(fresh, "sh", "-c", "for round in 1 2 3 4; do "
                              "udhcpc -i eth0 -f -q -n -B -t 3 -T 1 -s /tmp/record.sh; done; true")
    sniffer.terminate()
    heard_from = sniffer.communicate(timeout=30)[0].split()
    assert set(heard_from) == {warren_dhcp}, heard_from
    servers = run_in(fresh, "cat", "/tmp/servers").split()
    assert servers and set(servers) == {warren_dhcp}


@pytest.mark.slow
def test_existing_instances_get_nic_filtering(app, settings, worker, members, monkeypatch):
    # An instance made before Warren set the filtering keys; the worker's own
    # NIC filtering pass is held off until the worker stops, so the call below
    # is the one that turns it on.
    monkeypatch.setattr(provisioning, "nic_device", plain_nic)
    monkeypatch.setattr(isolation, "_unfiltered", lambda *_args: [])
    member = members()
    old, address = started(settings, member, "old")
    worker.stop()
    monkeypatch.undo()
    assert not any(key.startswith("security.") for key in old.devices["eth0"])
    veth = old.config["volatile.eth0.host_name"]

    with app.app_context():
        changed = isolation.filter_existing_nics(get_db(), settings)
    assert changed == [f"NIC filtering turned on for {old.name} in {project_name(member.username)}"]
    old.sync()
    eth0 = old.devices["eth0"]
    assert eth0["security.mac_filtering"] == eth0["security.ipv4_filtering"] == "true"
    assert eth0["ipv4.address"] == address
    # Applied live: still running on the same host-side interface, which
    # LXD's ebtables rules now hold to the instance's MAC and address.
    assert old.status == "Running" and old.config["volatile.eth0.host_name"] == veth
    rules = [line for line in lxd_filter_rules().splitlines() if veth in line]
    assert any(mac_of(old) in line for line in rules), rules
    assert any(address in line for line in rules), rules

    with app.app_context():
        assert isolation.filter_existing_nics(get_db(), settings) == []


def lxd_filter_rules() -> str:
    """LXD's per-NIC filtering rules, whichever firewall driver it runs
    (nftables where `nft` was there at its start, else xtables)."""
    nft = subprocess.run(["nft", "list", "table", "bridge", "lxd"], capture_output=True, text=True)
    if nft.returncode == 0:
        return nft.stdout
    return subprocess.run(["ebtables", "-L", "FORWARD"], capture_output=True, text=True,
                          check=True).stdout


def plain_nic(network, ipv4, ipv6=None):
    """A NIC as Warren made them before it asked LXD to filter."""
    return {"type": "nic", "network": network, "name": "eth0", "ipv4.address": ipv4}


@pytest.fixture
def no_nic_pass(monkeypatch):
    """The worker without its NIC filtering pass (requested before `worker`):
    a test that calls the pass itself must be the only one to run it."""
    from app import worker as worker_module
    monkeypatch.setattr(worker_module, "PASSES", tuple(
        (name, run) for name, run in worker_module.PASSES if name != "NIC filtering"))


@pytest.mark.slow
def test_an_instance_lxd_refuses_does_not_stop_the_others(app, settings, no_nic_pass, worker, members,
                                                          monkeypatch):
    monkeypatch.setattr(provisioning, "nic_device", plain_nic)
    first, _ = started(settings, members(), "first")
    second, _ = started(settings, members(), "second")
    set_device = lxd.set_device

    def refusing(client, name, device, settings):
        if name == first.name:
            raise LxdError(f"configuring device eth0 of {name}: LXD refused: no")
        return set_device(client, name, device, settings)
    monkeypatch.setattr(lxd, "set_device", refusing)

    with app.app_context():
        changed = isolation.filter_existing_nics(get_db(), settings)
    assert [line.split()[5] for line in changed] == [second.name]
    monkeypatch.setattr(lxd, "set_device", set_device)
    with app.app_context():
        changed = isolation.filter_existing_nics(get_db(), settings)
    assert [line.split()[5] for line in changed] == [first.name]


def test_setup_installs_the_dhcp_guard(runner, settings):
    firewall.remove_dhcp_guard(settings.lxd_network)
    result = runner.invoke(args=["host", "setup-lxd"])
    assert result.exit_code == 0, result.output
    assert f"DHCP guard on {settings.lxd_network}: installed" in result.output
    assert firewall.ensure_dhcp_guard(settings.lxd_network, settings.network_address) is False
    assert f"DHCP guard on {settings.lxd_network}: present" in \
        runner.invoke(args=["host", "setup-lxd"]).output


def mac_rules(bridge: str) -> list[str]:
    return firewall._chains().get(firewall.mac_chain(bridge), [])


def test_a_started_instance_is_held_to_its_mac_by_its_own_job(settings, worker, members,
                                                               monkeypatch):
    """Provisioning guards the new port itself (not only the periodic pass,
    which is switched off here)."""
    monkeypatch.setattr(isolation, "guard_bridge", lambda _settings: [])
    instance, _ = started(settings, members(), "fresh")
    instance.sync()
    port = instance.config["volatile.eth0.host_name"]
    mac = instance.config["volatile.eth0.hwaddr"]
    assert firewall.mac_rule(port, mac) in mac_rules(settings.lxd_network)


def test_a_ports_guard_replaces_what_a_former_holder_of_its_name_left(unique_name):
    bridge = unique_name("wg")[:12]  # a chain of its own; no such port exists
    try:
        assert firewall.guard_mac_port(bridge, "vethtest0", "00:16:3e:00:00:01") == \
            ["MAC guard installed", "MAC guard for vethtest0 added"]
        assert firewall.guard_mac_port(bridge, "vethtest0", "00:16:3e:00:00:01") == []
        firewall.guard_mac_port(bridge, "vethtest1", "00:16:3e:00:00:09")
        assert firewall.guard_mac_port(bridge, "vethtest0", "00:16:3E:00:00:02") == \
            ["stale MAC guard for vethtest0 removed", "MAC guard for vethtest0 added"]
        assert sorted(mac_rules(bridge)) == [firewall.mac_rule("vethtest0", "00:16:3e:00:00:02"),
                                             firewall.mac_rule("vethtest1", "00:16:3e:00:00:09")]
    finally:
        firewall.remove_mac_guard(bridge)


def test_port_guards_made_at_once_all_hold(unique_name):
    """Jobs guard the ports of the instances they start while the periodic
    pass syncs the bridge: each change reads the tables and then edits
    them, so they take turns (unlocked, two creations of the chain failed
    with "Chain already exists" and nft rewrites dropped each other's rules)."""
    bridge = unique_name("wr")[:12]
    ports = {f"vethrace{index}": f"00:16:3e:00:01:{index:02x}" for index in range(12)}
    addresses6 = {port: f"fd42::{index + 1:x}" for index, port in enumerate(ports)}

    def guard(port):
        firewall.guard_mac_port(bridge, port, ports[port])
        firewall.guard_nd_port(bridge, port, addresses6[port])

    try:
        with ThreadPoolExecutor(max_workers=len(ports)) as pool:
            list(pool.map(guard, ports))
        assert sorted(mac_rules(bridge)) == sorted(firewall.mac_rule(port, mac)
                                                   for port, mac in ports.items())
        assert sorted(firewall._nd_rules(bridge)) == sorted(
            firewall.nd_rule(port, address) for port, address in addresses6.items())
    finally:
        firewall.remove_mac_guard(bridge)
        firewall.remove_nd_guard(bridge)
