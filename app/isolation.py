"""Isolation between instances on Warren's shared bridge.

Members are root in their containers, and every container sits on the one
bridge, so each could claim a neighbour's address or MAC, or answer
neighbours' DHCP. Three defences, each where it can be enforced:

- LXD's NIC filtering on every instance's eth0 (security.mac_filtering,
  security.ipv4_filtering, and security.ipv6_filtering where the bridge has
  IPv6): frames only from the instance's MAC, ARP and IPv4 only from its
  own address, neighbour advertisements and IPv6 only for and from its own
  IPv6 address. New instances get it from provisioning.nic_device; the ones
  made before that (or before IPv6 was turned on) get it, and their
  addresses, from filter_existing_nics.
- Warren's DHCP guard (firewall.ensure_dhcp_guard): no DHCP server replies
  or router advertisements from instances; the host's DHCP still answers.
- Warren's MAC guard (firewall.sync_mac_guard): each port may only send
  from its instance's MAC before the bridge learns addresses, so nobody
  can draw a neighbour's traffic to their own port by taking its MAC.
  With IPv6 on, its neighbour guard (firewall.sync_nd_guard): each port may
  only advertise its own IPv6 address, which LXD's IPv6 filtering lets
  slip.
"""
import logging

from . import addresses, audit, firewall, lxd
from .names import PROJECT_PREFIX, member_of
from .passes import each_guarded
from .projects import installation
from .statuses import BUSY

log = logging.getLogger(__name__)
NIC = "eth0"
# What every instance NIC carries on any bridge (IPv6 filtering is added
# where the bridge has IPv6: filtering_keys).
IPV4_FILTERING = {"security.mac_filtering": "true", "security.ipv4_filtering": "true"}
IPV6_FILTERING = {"security.ipv6_filtering": "true"}


def filtering_keys(network_config: dict) -> dict[str, str]:
    """The NIC keys every instance on a bridge with this config must carry.

    IPv6 filtering only where the bridge has IPv6: LXD 5.0.2 (xtables
    driver) refuses it on a bridge without, as the chain its NDP rules go
    into only exists for IPv6 bridges."""
    keys = dict(IPV4_FILTERING)
    if has_ipv6(network_config):
        keys.update(IPV6_FILTERING)
    return keys


def has_ipv6(network_config: dict) -> bool:
    """Whether a bridge with this config has IPv6."""
    return network_config.get("ipv6.address", "none") not in ("", "none")


def _wanted(db, settings, warren_id: int, nic: dict, keys: dict) -> dict:
    """The keys eth0 must carry: the filtering keys, and the addresses
    Warren reserved for it where the NIC lacks them (an instance made
    before IPv6 was on gets its IPv6 address reserved now)."""
    wanted = dict(keys)
    row = db.execute("SELECT ipv4, ipv6, status FROM instances WHERE id = ?",
                     [warren_id]).fetchone()
    if row is None:
        return wanted
    if row[2] in BUSY:  # its job is changing it: an update now would fail its start
        return {}
    if not nic.get("ipv4.address") and row[0]:
        wanted["ipv4.address"] = row[0]
    if "security.ipv6_filtering" in keys and settings.network_ipv6_prefix:
        address = row[1] or addresses.reserve_ipv6(db, warren_id, settings.network_ipv6_prefix)
        if address:
            wanted["ipv6.address"] = address
    return wanted


def _unfiltered(db, settings, keys: dict) -> list[tuple[str, str, dict]]:
    """(project, LXD name, keys to set) of this Warren's instances whose
    eth0 lacks some of the keys, found by user.warren.id, not by name."""
    client = lxd.backend(settings).client()
    found = []
    for project in lxd.project_names(client, PROJECT_PREFIX, installation()):
        scoped = lxd.backend(settings).client(project)
        for name, item in lxd.instance_devices(scoped).items():
            config = item["config"] or {}  # None: on an offline cluster member
            if config.get("user.warren.installation") != installation() \
                    or not config.get("user.warren.id", "").isdigit():
                continue
            nic = item["expanded_devices"].get(NIC)
            if nic is None or nic.get("type") != "nic":
                continue
            wanted = _wanted(db, settings, int(config["user.warren.id"]), nic, keys)
            if any(nic.get(key) != value for key, value in wanted.items()):
                found.append((project, name, wanted))
    return found


def filter_existing_nics(db, settings) -> list[str]:
    """Turn LXD's NIC filtering on for this Warren's instances whose eth0
    lacks it (LXD applies it live to a running instance, on the same veth);
    a line per instance changed. One instance LXD refuses is logged and
    skipped."""
    keys = filtering_keys(lxd.network_config(lxd.backend(settings).client(),
                                             settings.lxd_network))
    changed = []

    def apply(item):
        project, name, wanted = item
        if not lxd.set_device(lxd.backend(settings).client(project), name, NIC, wanted):
            return
        line = f"NIC filtering turned on for {name} in {project}"
        audit.record(db, audit.WORKER, "filter nic", name, member=member_of(project),
                     detail=", ".join(f"{key}={value}" for key, value in sorted(wanted.items())))
        log.info("isolation: %s", line)
        changed.append(line)

    each_guarded(_unfiltered(db, settings, keys), lambda item: f"NIC filtering of {item[1]}", apply)
    return changed


def guard_bridge(settings) -> list[str]:
    """Put the DHCP guard back if it went missing, the forward guard in line
    with the network mode, and hold every running
    instance's port on the bridge to its MAC, and with IPv6 on to
    advertising its own IPv6 address only (ports of stopped instances are
    dropped); a line per change. A port gets its rule only when this runs,
    so run it right after starting instances as well as periodically."""
    lines = []
    if firewall.ensure_dhcp_guard(settings.lxd_network, settings.network_address):
        lines.append(f"DHCP guard on {settings.lxd_network} (re)installed")
    if firewall.ensure_forward_guard(settings.lxd_network, settings.network_mode == "isolated"):
        lines.append(f"forward guard on {settings.lxd_network} brought in line")
    client = lxd.backend(settings).client()
    # Read and sync under one hold of the tables: a port guarded by its job
    # between this reading and the sync would otherwise lose its rule.
    with firewall.held():
        ports = lxd.bridge_ports(client, settings.lxd_network)
        lines += [f"{settings.lxd_network}: {line}"
                  for line in firewall.sync_mac_guard(settings.lxd_network, ports)]
        if settings.network_ipv6_prefix:
            lines += [f"{settings.lxd_network}: {line}" for line in firewall.sync_nd_guard(
                settings.lxd_network, lxd.bridge_port_ipv6(client, settings.lxd_network))]
    for line in lines:
        log.info("isolation: %s", line)
    return lines


def guard_started(settings, client, name: str) -> list[str]:
    """Hold the NIC of an instance that has just started (`name` in the
    client's project) to its MAC (and IPv6 address) at once, without listing
    every instance's port: one read of the instance, one ebtables listing.
    The periodic guard_bridge keeps the whole bridge in line (and removes
    the rules of stopped ports)."""
    macs, ipv6 = lxd.instance_ports(client, name, settings.lxd_network)
    lines = []
    for port, mac in macs.items():
        lines += firewall.guard_mac_port(settings.lxd_network, port, mac)
    if settings.network_ipv6_prefix:
        for port, address in ipv6.items():
            lines += firewall.guard_nd_port(settings.lxd_network, port, address)
    for line in lines:
        log.info("isolation: %s: %s", settings.lxd_network, line)
    return lines
