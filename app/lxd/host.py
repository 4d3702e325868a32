"""This host's LXD as Warren sets it up and reads it: storage pool, bridge,
the default profile, drivers, images, resources."""
import ipaddress

import pylxd
from pylxd import exceptions as lxd_exceptions

from ..errors import LxdError
from .client import cached, translated
from .instances import instance_items


DRIVERS = {"container": "lxc", "virtual-machine": "qemu"}


def instance_types(backend) -> dict[str, str | None]:
    """Instance type -> None when this LXD can run it, else the reason LXD
    gives (its "Instance type not operational" warning, e.g. "vhost_vsock
    kernel module not loaded")."""
    def load():
        client = backend.client()
        with translated("reading LXD server info"):
            info = client.api.get().json()["metadata"]["environment"]
            drivers = {driver.strip() for driver in info.get("driver", "").split("|")}
            missing = [kind for kind, driver in DRIVERS.items() if driver not in drivers]
            reasons = []
            if missing:
                warnings = client.api.warnings.get(params={"recursion": 1}).json()["metadata"] or []
                reasons = [warning["last_message"] for warning in warnings
                           if warning["type"] == "Instance type not operational"]
        return {kind: None if kind not in missing else
                (reasons[0] if reasons else f"LXD has no {DRIVERS[kind]} driver on this server")
                for kind in DRIVERS}
    return cached(("instance types", backend.endpoint), load)


def _status(collection, name: str) -> dict | None:
    """A pool's or network's record (status: Created, Pending, Errored;
    locations: the members it is defined on), None if absent."""
    try:
        return collection[name].get().json()["metadata"]
    except lxd_exceptions.NotFound:
        return None


def _create(collection, record: dict | None, member_body: dict, body: dict,
            members: list[str]) -> bool:
    """Create a pool or network (record: its _status, read just now) the
    way a cluster needs: defined on each member first (pending, with only
    the member-specific keys), then created once globally with the rest. On
    a single daemon (no members) it is one request. True if anything was
    done."""
    if record and record.get("status") == "Created":
        return False
    defined = set(record.get("locations") or []) if record else set()
    for member in members:
        if member not in defined:
            try:
                collection.post(json=member_body, target=member)
            except lxd_exceptions.LXDAPIException as error:
                if "already" not in str(error).lower():  # defined by a run that stopped midway
                    raise
    collection.post(json=body)
    return True


def ensure_storage_pool(client: pylxd.Client, name: str, size: str,
                        members: list[str] = ()) -> bool:
    """Create a loop-file btrfs pool unless it exists (on a cluster: on each
    member, each with a loop file of that size); True when created.

    btrfs, not dir: only a quota-capable driver makes root disk sizes real."""
    with translated(f"storage pool {name}"):
        record = _status(client.api.storage_pools, name)
        if record and record.get("driver") != "btrfs":
            raise LxdError(f"storage pool {name} uses the {record.get('driver')} driver; Warren "
                           "needs btrfs so disk limits hold (set WARREN_LXD_STORAGE_POOL to "
                           "another name)")
        member_body = {"name": name, "driver": "btrfs", "config": {"size": size}}
        return _create(client.api.storage_pools, record, member_body,
                       {"name": name, "driver": "btrfs", "config": {} if members else {"size": size}},
                       list(members))


# What each WARREN_NETWORK_MODE changes on the bridge, beyond the keys all
# modes share. "isolated" leaves ipv4.routing at LXD's default on purpose:
# ipv4.routing=false makes LXD reject forwarded traffic in and out of the
# bridge, and where the kernel passes bridged frames through iptables
# (br_netfilter) that rejects instance-to-instance traffic on the bridge too.
# nat and routed say ipv4.routing=true outright, since both need it.
BRIDGE_MODES = {
    "isolated": ({"ipv4.nat": "false"}, "no NAT"),
    "nat": ({"ipv4.nat": "true", "ipv4.routing": "true"}, "outbound NAT"),
    "routed": ({"ipv4.nat": "false", "ipv4.routing": "true"}, "routed prefix"),
}
# With IPv6 on, each mode means for IPv6 what it means for IPv4: isolated has
# no NAT (the forward guard keeps IPv6 in too), nat masquerades outbound
# IPv6 behind the host's address (NAT66: it works with a unique-local prefix
# nobody upstream knows, and keeps the mode's promise that nothing outside
# opens a connection to an instance), routed has no NAT and expects the
# upstream to route the /64 to the host.
BRIDGE_MODES_IPV6 = {
    "isolated": {"ipv6.nat": "false"},
    "nat": {"ipv6.nat": "true", "ipv6.routing": "true"},
    "routed": {"ipv6.nat": "false", "ipv6.routing": "true"},
}


# One network across a cluster's members. LXD 5.0.2 creates the bridge on
# every member with the same address and, since it is safe to, the same MAC
# (the "cluster-wide MAC": one gateway wherever an instance runs, answered by
# its own member's bridge). A VXLAN joins those bridges into one Ethernet
# segment, so an instance keeps its address on any member and reaches the
# others directly. Multicast, because LXD 5.0.2 makes only
# bridge.external_interfaces, parent and the BGP next hops member-specific:
# a unicast tunnel's local and remote would have to differ per member. (OVN
# needs openvswitch, and per-member routed subnets would change an
# instance's address whenever it moves.)
TUNNEL = "vx"  # the tunnel interface is <network>-vx: the network name may have 12 characters
# Every member's dnsmasq hears every DHCP broadcast on the segment. LXD
# writes host entries only for the instances on its own member, and an
# authoritative dnsmasq NAKs a request for an address it does not know
# (measured: an instance on m3 looped DISCOVER, NAK from m1, forever). Each
# member's dnsmasq therefore answers only the clients it has an entry for.
DHCP_KNOWN_ONLY = "dhcp-ignore=tag:!known"


def cluster_tunnel(group: str, vni: int, interface: str = "") -> dict:
    """The bridge keys that join the members' bridges into one segment: a
    multicast VXLAN (over `interface`, else each member's default-route
    interface), and DHCP answered only by the member an instance is on."""
    keys = {f"tunnel.{TUNNEL}.protocol": "vxlan", f"tunnel.{TUNNEL}.group": group,
            f"tunnel.{TUNNEL}.id": str(vni), "raw.dnsmasq": DHCP_KNOWN_ONLY}
    if interface:
        keys[f"tunnel.{TUNNEL}.interface"] = interface
    return keys


def bridge_config(address: str, dhcp_range: str, mode: str = "isolated",
                  ipv6_address: str | None = None, ipv6_range: str | None = None,
                  tunnel: dict | None = None) -> dict:
    """The managed bridge's config: our range, DHCP (static leases for Warren's
    instances, a small dynamic range for the rest), IPv6 only when given, and
    the network mode's keys (NAT off unless the mode is nat).

    dns.mode=none: names are published in Warren's own zone, and without it
    LXD refuses two members' instances that share a name (web.alice and
    web.bob) because dnsmasq's names are per bridge, not per project.

    IPv6 uses stateful DHCPv6: LXD accepts a static ipv6.address on a NIC
    only then, and its router advertisements carry the "managed" flag and
    no SLAAC prefix, so an instance has exactly the address Warren gave it
    (which security.ipv6_filtering then holds it to).

    On a cluster, `tunnel` (cluster_tunnel) joins the members' bridges."""
    if mode not in BRIDGE_MODES:
        raise ValueError(f"unknown network mode {mode!r} (known: {', '.join(BRIDGE_MODES)})")
    config = {"ipv4.address": address, **BRIDGE_MODES[mode][0], "ipv4.dhcp": "true",
              "ipv4.dhcp.ranges": dhcp_range, "ipv6.address": "none", "dns.mode": "none"}
    if ipv6_address:
        config.update({"ipv6.address": ipv6_address, "ipv6.dhcp": "true",
                       "ipv6.dhcp.stateful": "true", "ipv6.dhcp.ranges": ipv6_range,
                       **BRIDGE_MODES_IPV6[mode]})
    return {**config, **(tunnel or {})}


def ensure_network(client: pylxd.Client, name: str, address: str, dhcp_range: str,
                   mode: str = "isolated", ipv6_address: str | None = None,
                   ipv6_range: str | None = None, members: list[str] = (),
                   tunnel: dict | None = None) -> bool:
    """Create the bridge (on a cluster: defined on each member, then
    created), or bring its config back in line with the network mode, the
    IPv6 setting and the cluster's tunnel; True when changed."""
    wanted = bridge_config(address, dhcp_range, mode, ipv6_address, ipv6_range, tunnel)
    description = f"Warren member instances ({BRIDGE_MODES[mode][1]}" \
                  f"{', IPv6' if ipv6_address else ''}{', one segment across members' if tunnel else ''})"
    with translated(f"network {name}"):
        record = _status(client.api.networks, name)
        # Pending or Errored: a cluster setup that stopped midway, resumed below.
        if record and record.get("status") not in ("Pending", "Errored"):
            network = client.networks.get(name)
            if network.type != "bridge" or not network.managed:
                raise LxdError(f"network {name} exists but is not a managed bridge")
            if all(network.config.get(key) == value for key, value in wanted.items()):
                return False
            network.config.update(wanted)
            network.description = description
            network.save(wait=True)
            return True
        return _create(client.api.networks, record, {"name": name, "type": "bridge"},
                       {"name": name, "type": "bridge", "config": wanted,
                        "description": description}, list(members))


def network_range(address: str) -> ipaddress.IPv4Network:
    """The IPv4 network a bridge address belongs to."""
    return ipaddress.IPv4Interface(address).network


def ensure_default_profile(client: pylxd.Client, pool: str, network: str) -> bool:
    """Give the default project's default profile a root disk and a NIC, so
    a plain `lxc launch` by an admin lands on Warren's pool and bridge."""
    with translated("default profile"):
        profile = client.profiles.get("default")
        devices = dict(profile.devices)
        changed = False
        if "root" not in devices:
            devices["root"] = {"type": "disk", "path": "/", "pool": pool}
            changed = True
        if "eth0" not in devices:
            devices["eth0"] = {"type": "nic", "nictype": "bridged", "parent": network, "name": "eth0"}
            changed = True
        if changed:
            profile.devices = devices
            profile.save(wait=True)
        return changed


def network_config(client: pylxd.Client, name: str) -> dict:
    """The config of a managed network."""
    with translated(f"network {name}"):
        return dict(client.networks.get(name).config)


def _nics_on(item: dict, bridge: str):
    """(host-side interface, NIC spec, instance config, device) of each of
    one instance's NICs on the bridge, if it runs (only a running or frozen
    instance has a host-side interface)."""
    if item["status"] not in ("Running", "Frozen"):
        return
    for device, spec in item["expanded_devices"].items():
        if spec.get("type") != "nic" or bridge not in (spec.get("network"), spec.get("parent")):
            continue
        host_name = item["config"].get(f"volatile.{device}.host_name")
        if host_name:
            yield host_name, spec, item["config"], device


def _bridge_nics(client: pylxd.Client, bridge: str):
    """_nics_on for every instance, in every project (one request)."""
    for item in instance_items(client, all_projects=True):
        yield from _nics_on(item, bridge)


def _macs(nics) -> dict[str, str]:
    ports = {}
    for host_name, spec, config, device in nics:
        mac = spec.get("hwaddr") or config.get(f"volatile.{device}.hwaddr")
        if mac:
            ports[host_name] = mac.lower()
    return ports


def _ipv6s(nics) -> dict[str, str]:
    return {host_name: spec["ipv6.address"] for host_name, spec, _config, _device in nics
            if spec.get("ipv6.address")}


def bridge_ports(client: pylxd.Client, bridge: str) -> dict[str, str]:
    """Host-side interface -> MAC address of every running instance NIC on
    the bridge, in every project (one request)."""
    return _macs(_bridge_nics(client, bridge))


def bridge_port_ipv6(client: pylxd.Client, bridge: str) -> dict[str, str]:
    """Host-side interface -> static IPv6 address of every running instance
    NIC on the bridge that has one, in every project (one request)."""
    return _ipv6s(_bridge_nics(client, bridge))


def instance_ports(client: pylxd.Client, name: str, bridge: str) -> tuple[dict, dict]:
    """One instance's NICs on the bridge as bridge_ports and
    bridge_port_ipv6 give them (port -> MAC, port -> IPv6), read now (one
    request in the client's project)."""
    with translated(f"reading instance {name}"):
        item = client.api.instances[name].get().json()["metadata"]
    nics = list(_nics_on(item, bridge))
    return _macs(nics), _ipv6s(nics)


def image_aliases(client: pylxd.Client) -> set[str]:
    """The image aliases known to the server."""
    with translated("listing images"):
        return {alias["name"] for image in client.images.all() for alias in image.aliases}


def image_properties(client: pylxd.Client, alias: str) -> dict:
    """The properties of the image behind an alias (os, warren.cloud-init, ...)."""
    def load():
        with translated(f"image {alias}"):
            return dict(client.images.get_by_alias(alias).properties)
    return cached(("properties", id(client), alias), load)


def host_resources(client: pylxd.Client) -> dict:
    """The host's CPU threads and memory, from /1.0/resources."""
    with translated("reading host resources"):
        resources = client.api.resources.get().json()["metadata"]
    return {"cpu": resources["cpu"]["total"], "memory": resources["memory"]["total"]}
