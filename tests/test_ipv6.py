"""IPv6 beside any network mode (WARREN_NETWORK_IPV6_PREFIX): a /64 on the
bridge with stateful DHCPv6, a static address per instance next to its
IPv4 one, an AAAA record next to the A, and LXD's IPv6 filtering on every
NIC. Against the real LXD and named, each test on its own scratch bridge
(tests/bridges.py) with a simulated Internet (tests/netsim.py).

The busybox image has no DHCPv6 client: tests/dhcp6.py plays one from the
host, in the container's network namespace.
"""
import ipaddress
import sqlite3

import pytest

from app import addresses, dns, firewall, isolation, lxd, reconcile, store
from app.config import NETWORK_MODES, load_settings
from app.errors import ConfigError
from app.names import project_name
from app.projects import dns_owner
from app.store import get_db
from app.worker import Worker
from conftest import Auth
from dhcp6 import in_netns, take_ipv6_lease
from netsim import next_peer, serve
from support import launch, member_instance, post_action, run_in, wait_gone, wait_until

PORT = 7090


# The setting.

def test_ipv6_is_off_unless_a_prefix_is_given():
    assert load_settings(environ={}).network_ipv6_prefix == ""
    settings = load_settings(environ={"WARREN_NETWORK_IPV6_PREFIX": " 2001:db8:0:1::/64 "})
    assert settings.network_ipv6_prefix == "2001:db8:0:1::/64"


@pytest.mark.parametrize("value, reason", [
    ("2001:db8::/56", "'2001:db8::/56' is a /56; give one /64"),
    ("2001:db8::1/64", "has bits set after the prefix length: give the network itself, "
                       "e.g. 2001:db8::/64"),
    ("10.87.0.0/24", "is not an IPv6 prefix like 2001:db8:0:1::/64"),
    ("2001:db8::/129", "is not an IPv6 prefix"),
    ("fe80::/64", "is not a unicast prefix an instance can be reached at"),
    ("ff02::/64", "is not a unicast prefix"),
])
def test_a_bad_ipv6_prefix_stops_start_up_naming_the_setting(value, reason):
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"WARREN_NETWORK_IPV6_PREFIX": value})
    assert str(refused.value).startswith("WARREN_NETWORK_IPV6_PREFIX: ")
    assert reason in str(refused.value)


# The bridge and the address pool.

def test_each_mode_turns_ipv6_on_with_stateful_dhcpv6_and_its_own_nat():
    address, dhcp = "10.87.0.1/24", addresses.dynamic_range("10.87.0.1/24")
    prefix = "2001:db8:0:1::/64"
    # NAT66 in nat mode only, as for IPv4; routing where IPv4 routes.
    per_mode = {"isolated": {"ipv6.nat": "false"},
                "nat": {"ipv6.nat": "true", "ipv6.routing": "true"},
                "routed": {"ipv6.nat": "false", "ipv6.routing": "true"}}
    assert set(per_mode) == set(NETWORK_MODES)
    for mode, keys in per_mode.items():
        config = lxd.bridge_config(address, dhcp, mode, addresses.ipv6_gateway(prefix),
                                   addresses.ipv6_dynamic_range(prefix))
        assert config == {**lxd.bridge_config(address, dhcp, mode),
                          "ipv6.address": "2001:db8:0:1::1/64", "ipv6.dhcp": "true",
                          "ipv6.dhcp.stateful": "true",
                          "ipv6.dhcp.ranges": "2001:db8:0:1::1:0-2001:db8:0:1::1:ffff", **keys}
    assert lxd.bridge_config(address, dhcp)["ipv6.address"] == "none"


def migrated(tmp_path):
    db = store.connect(str(tmp_path / "w.sqlite3"))
    store.migrate(db)
    db["users"].insert({"id": 1, "username": "bob", "password_hash": "x", "role": "member",
                        "created_at": store.now(), "password_changed_at": store.now()})
    return db


def add_row(db, name, ipv6, status="ready"):
    db["instances"].insert({"user_id": 1, "name": name, "project": "warren-bob", "lxd_name": name,
                            "profile": "small", "image": "busybox", "instance_type": "container",
                            "fqdn": f"{name}.bob.vm.example.test", "ipv6": ipv6, "ssh_keys": "",
                            "cpu": 1, "memory": 1, "disk": 1, "processes": 1, "status": status,
                            "created_at": store.now(), "updated_at": store.now()})


def test_ipv6_addresses_come_from_warrens_pool_and_are_never_held_twice(tmp_path):
    db = migrated(tmp_path)
    prefix = "2001:db8:0:1::/64"
    first = addresses.allocate_ipv6(db, prefix)
    assert first == "2001:db8:0:1::2"  # ::1 is the bridge's
    add_row(db, "a", first)
    add_row(db, "b", addresses.allocate_ipv6(db, prefix))
    assert addresses.allocate_ipv6(db, prefix) == "2001:db8:0:1::4"
    db.execute("DELETE FROM instances WHERE name = 'a'")  # a deleted row frees its address
    assert addresses.allocate_ipv6(db, prefix) == first
    dynamic = addresses.ipv6_dynamic_range(prefix).split("-")
    assert ipaddress.IPv6Address(dynamic[0]) > ipaddress.IPv6Address("2001:db8:0:1::ffff")
    with pytest.raises(sqlite3.IntegrityError):
        add_row(db, "c", "2001:db8:0:1::3")  # b holds it: the database refuses a second holder


def test_an_instance_made_before_ipv6_gets_one_address_and_a_released_one_none(tmp_path):
    db = migrated(tmp_path)
    add_row(db, "old", None)
    add_row(db, "gone", None, status="failed")
    old, gone = (db.execute("SELECT id FROM instances WHERE name = ?", [name]).fetchone()[0]
                 for name in ("old", "gone"))
    assert addresses.reserve_ipv6(db, old, "2001:db8::/64") == "2001:db8::2"
    assert addresses.reserve_ipv6(db, old, "2001:db8::/64") == "2001:db8::2"  # the same again
    assert addresses.reserve_ipv6(db, gone, "2001:db8::/64") is None


# DNS: the AAAA record next to the A.

@pytest.mark.named
def test_the_aaaa_record_is_published_replaced_and_removed_with_the_name(zone, dig, unique_name):
    fqdn = f"{unique_name('v6')}.alice.{zone.name}"
    try:
        dns.publish_address(zone, fqdn, "10.87.0.9", "alice", ipv6="2001:db8::9")
        assert dig(fqdn) == ["10.87.0.9"] and dig(fqdn, "AAAA") == ["2001:db8::9"]
        dns.publish_address(zone, fqdn, "10.87.0.9", "alice", ipv6="2001:db8::10")
        assert dig(fqdn, "AAAA") == ["2001:db8::10"]
        dns.publish_address(zone, fqdn, "10.87.0.9", "alice")  # IPv6 turned off
        assert dig(fqdn, "AAAA") == [] and dig(fqdn) == ["10.87.0.9"]
        dns.publish_address(zone, fqdn, "10.87.0.9", "alice", ipv6="2001:db8::9")
        assert dns.remove_name(zone, fqdn, "alice") is True
        assert dig(fqdn) == [] and dig(fqdn, "AAAA") == [] and dig(fqdn, "TXT") == []
    finally:
        try:
            dns.remove_name(zone, fqdn, "alice")
        except Exception:
            pass


@pytest.mark.named
def test_another_owners_name_keeps_its_aaaa(zone, dig, unique_name):
    fqdn = f"{unique_name('v6')}.bob.{zone.name}"
    dns.publish_address(zone, fqdn, "10.87.0.8", "bob", ipv6="2001:db8::8")
    try:
        with pytest.raises(Exception, match="not by alice"):
            dns.publish_address(zone, fqdn, "10.87.0.7", "alice", ipv6="2001:db8::7")
        assert dig(fqdn, "AAAA") == ["2001:db8::8"]
    finally:
        dns.remove_name(zone, fqdn, "bob")


# A Warren with IPv6 on its own scratch bridge, requests through the web form.

@pytest.fixture
def app(scratch_bridge):
    """This module's Warren: isolated mode, IPv6 on the scratch bridge."""
    scratch_bridge.setup("isolated", ipv6=True)
    return scratch_bridge.app("isolated", ipv6=True)


def started(settings, member, name):
    """A member's busybox instance, ready and holding its IPv6 address
    (taken by DHCPv6); (instance, progress)."""
    location, progress = launch(member, name=name, profile="small", image="busybox")
    instance = member_instance(settings, member, name)
    wait_until(lambda: lxd.ipv4_address(instance) == progress["ipv4"], 30,
               f"{name} taking its address {progress['ipv4']}")
    assert take_ipv6_lease(instance) == progress["ipv6"]
    progress["location"] = location
    return instance, progress


@pytest.mark.slow
def test_an_instance_gets_its_static_ipv6_address_and_an_aaaa_record(settings, worker, members,
                                                                    dig, scratch_bridge):
    member = members()
    instance, progress = started(settings, member, "web")
    ipv6, fqdn = progress["ipv6"], progress["fqdn"]
    assert ipaddress.IPv6Address(ipv6) in ipaddress.IPv6Network(scratch_bridge.prefix6)
    eth0 = instance.devices["eth0"]
    assert eth0["ipv6.address"] == ipv6 and eth0["security.ipv6_filtering"] == "true"
    assert f"inet6 {ipv6}/64 scope global" in run_in(instance, "ip", "-6", "addr", "show", "eth0")
    gateway6 = addresses.ipv6_gateway(scratch_bridge.prefix6).split("/")[0]
    run_in(instance, "ping", "-c", "1", "-W", "2", gateway6)  # the address works on the bridge
    assert dig(fqdn, "AAAA") == [ipv6] and dig(fqdn) == [progress["ipv4"]]

    page = member.get(progress["location"]).get_data(as_text=True)
    assert f'<dd id="ipv6">{ipv6}</dd>' in page
    assert f"    # IPv6: {ipv6}\n    HostName {progress['ipv4']}\n" in page
    assert ipv6 in member.get("/").get_data(as_text=True)

    assert post_action(member, progress["location"], "delete").status_code in (302, 303)
    wait_gone(member, progress["location"])
    assert dig(fqdn, "AAAA") == [] and dig(fqdn) == []


# Neighbour advertisement (ICMPv6 type 136) from this namespace to all nodes
# and to one neighbour: "the target address is at my MAC", override flag set.
ADVERTISE = r"""
import socket, struct, sys, time
target, neighbour, mac = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3].replace(":", ""))
advert = (struct.pack("!BBHI", 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, target)
          + struct.pack("!BB", 2, 1) + mac)
sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
index = socket.if_nametoindex("eth0")
for _ in range(10):
    sock.sendto(advert, (neighbour, 0, 0, index))
    sock.sendto(advert, ("ff02::1", 0, 0, index))
    time.sleep(0.1)
"""


def neighbour_mac(instance, address: str) -> str | None:
    """The MAC this instance's neighbour table holds for an address."""
    words = run_in(instance, "ip", "-6", "neigh", "show", address).split()
    return words[words.index("lladdr") + 1] if "lladdr" in words else None


def mac_of(instance) -> str:
    return run_in(instance, "cat", "/sys/class/net/eth0/address")


def advertise(instance, target: str, neighbour: str) -> None:
    """The instance claims an IPv6 address is at its own MAC."""
    sent = in_netns(instance, ADVERTISE, target, neighbour, mac_of(instance))
    assert sent.returncode == 0, sent.stderr


@pytest.mark.slow
def test_a_member_cannot_divert_another_members_ipv6_traffic(settings, worker, members,
                                                            scratch_bridge):
    mallory, _ = started(settings, members(), "mallory")
    bob, bob_progress = started(settings, members(), "bob")
    carol, carol_progress = started(settings, members(), "carol")
    bob_ip6, carol_ip6 = bob_progress["ipv6"], carol_progress["ipv6"]
    run_in(carol, "ping", "-c", "1", "-W", "2", bob_ip6)
    assert neighbour_mac(carol, bob_ip6) == mac_of(bob)

    # Mallory tells Carol (and everyone) that Bob's address is at her MAC.
    advertise(mallory, bob_ip6, carol_ip6)
    run_in(carol, "ping", "-c", "1", "-W", "2", bob_ip6)
    assert neighbour_mac(carol, bob_ip6) == mac_of(bob)

    # Control: without Warren's neighbour guard, LXD's own IPv6 filtering
    # (still on for Mallory's NIC) lets the same advertisements through and
    # Bob's traffic goes to Mallory, so the checks above can fail. (The
    # worker is stopped first: its pass would put the guard back.)
    assert mallory.devices["eth0"]["security.ipv6_filtering"] == "true"
    worker.stop()
    assert firewall.remove_nd_guard(scratch_bridge.name)
    advertise(mallory, bob_ip6, carol_ip6)
    wait_until(lambda: neighbour_mac(carol, bob_ip6) == mac_of(mallory), 5,
               "the unguarded advertisement reaching Carol")


@pytest.mark.slow
def test_turning_ipv6_on_gives_existing_instances_an_address_filtering_and_an_aaaa(
        app, scratch_bridge, members, dig):
    # An instance made by the same Warren while IPv6 was still off.
    before = scratch_bridge.app("isolated", folder_name="warren-isolated-ipv6")
    member = members()
    client = before.test_client()
    Auth(client).login(member.username)
    client.username = member.username
    running = Worker(before).start()
    try:
        _, progress = launch(client, name="old", profile="small", image="busybox")
    finally:
        running.stop()
    assert progress["ipv6"] is None
    instance = member_instance(app.config["WARREN"], member, "old")
    assert "ipv6.address" not in instance.devices["eth0"]

    settings = app.config["WARREN"]
    with app.app_context():
        changed = isolation.filter_existing_nics(get_db(), settings)
        assert changed == [f"NIC filtering turned on for {instance.name} in "
                           f"{project_name(member.username)}"]
        ipv6 = get_db().execute("SELECT ipv6 FROM instances").fetchone()[0]
        assert ipaddress.IPv6Address(ipv6) in ipaddress.IPv6Network(scratch_bridge.prefix6)
        instance.sync()
        assert instance.devices["eth0"]["ipv6.address"] == ipv6
        assert instance.devices["eth0"]["security.ipv6_filtering"] == "true"
        assert instance.status == "Running"  # applied live
        assert take_ipv6_lease(instance) == ipv6

        # Reconcile publishes the AAAA, repairs it when it drifts, then rests.
        assert f"published {progress['fqdn']}" in reconcile.reconcile(get_db(), settings)
        assert dig(progress["fqdn"], "AAAA") == [ipv6]
        dns.publish_address(dns.zone_from_settings(settings), progress["fqdn"], progress["ipv4"],
                            dns_owner(member.username), ipv6="2001:db8::bad")
        assert f"published {progress['fqdn']}" in reconcile.reconcile(get_db(), settings)
        assert dig(progress["fqdn"], "AAAA") == [ipv6]
        assert [line for line in reconcile.reconcile(get_db(), settings)
                if not line.startswith("skipped")] == []
        assert isolation.filter_existing_nics(get_db(), settings) == []


# What an instance's IPv6 connection looks like from the Internet.

@pytest.mark.slow
@pytest.mark.parametrize("mode", ["routed", "nat", "isolated"])
def test_ipv6_meets_the_internet_as_the_network_mode_says(mode, internet, scratch_bridge):
    scratch_bridge.setup(mode, ipv6=True)
    own = str(ipaddress.IPv6Network(scratch_bridge.prefix6)[0x100])
    instance, _ = scratch_bridge.launch(ipv6=own)
    # What the co-op's upstream does in routed mode: route the /64 to the
    # host. Done in every mode: isolated still lets nothing through.
    internet.run("ip", "-6", "route", "add", scratch_bridge.prefix6, "via", internet.host_ip6,
                 check=True)
    reported = serve(internet, PORT, internet.client_ip6)
    code, _, _ = lxd.execute(instance, ["sh", "-c",
                                        f"echo hello | nc -w 3 {internet.client_ip6} {PORT}"])
    expected = {"routed": own, "nat": internet.host_ip6, "isolated": None}[mode]
    assert next_peer(reported, timeout=10 if expected else 2) == expected
    assert (code == 0) == (expected is not None)
