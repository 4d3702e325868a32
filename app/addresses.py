"""Instance addresses on Warren's bridge: a static pool for Warren and a
small dynamic DHCP range (the top quarter) for anything an admin launches
by hand, so the two never collide.

With IPv6 on (WARREN_NETWORK_IPV6_PREFIX, a /64) the same split holds:
the bridge takes the prefix's first address, Warren hands out
<prefix>::2 to <prefix>::ffff, and LXD's DHCPv6 has <prefix>::1:0 to
<prefix>::1:ffff for hand-launched instances."""
import ipaddress

from .statuses import RELEASED, sql_list
from .store import transaction

IPV6_STATIC = range(2, 0x10000)
IPV6_DYNAMIC = (0x10000, 0x1ffff)


def _hosts(bridge_address: str) -> list[ipaddress.IPv4Address]:
    interface = ipaddress.IPv4Interface(bridge_address)
    return [host for host in interface.network.hosts() if host != interface.ip]


def static_pool(bridge_address: str) -> list[str]:
    """Addresses Warren hands out, in order."""
    hosts = _hosts(bridge_address)
    return [str(host) for host in hosts[:len(hosts) * 3 // 4]]


def dynamic_range(bridge_address: str) -> str:
    """LXD's ipv4.dhcp.ranges value for hand-launched instances."""
    hosts = _hosts(bridge_address)
    rest = hosts[len(hosts) * 3 // 4:]
    return f"{rest[0]}-{rest[-1]}"


def allocate(db, bridge_address: str) -> str | None:
    """The first free pool address (call inside the reservation transaction)."""
    taken = {row[0] for row in db.execute("SELECT ipv4 FROM instances WHERE ipv4 IS NOT NULL")}
    return next((address for address in static_pool(bridge_address) if address not in taken), None)


def ipv6_gateway(prefix: str) -> str:
    """The bridge's own IPv6 address with its prefix length (LXD's ipv6.address)."""
    network = ipaddress.IPv6Network(prefix)
    return f"{network[1]}/{network.prefixlen}"


def ipv6_dynamic_range(prefix: str) -> str:
    """LXD's ipv6.dhcp.ranges value for hand-launched instances."""
    network = ipaddress.IPv6Network(prefix)
    return f"{network[IPV6_DYNAMIC[0]]}-{network[IPV6_DYNAMIC[1]]}"


def allocate_ipv6(db, prefix: str) -> str | None:
    """The first free static IPv6 address (inside the reservation
    transaction); a row holds it until it is deleted or fails."""
    network = ipaddress.IPv6Network(prefix)
    taken = {row[0] for row in db.execute("SELECT ipv6 FROM instances WHERE ipv6 IS NOT NULL")}
    return next((str(network[index]) for index in IPV6_STATIC
                 if str(network[index]) not in taken), None)


def reserve_ipv6(db, instance_id: int, prefix: str) -> str | None:
    """Give an instance made before IPv6 was on its static IPv6 address
    (its own, if it already holds one)."""
    with transaction(db):
        held = db.execute(f"SELECT ipv6 FROM instances WHERE id = ? AND status NOT IN "
                          f"{sql_list(RELEASED)}", [instance_id]).fetchone()
        if held is None or held[0]:
            return held[0] if held else None
        address = allocate_ipv6(db, prefix)
        if address:
            db.execute("UPDATE instances SET ipv6 = ? WHERE id = ?", [address, instance_id])
        return address


def ipv6_of(instance: dict, settings) -> str | None:
    """The instance's IPv6 address while IPv6 is on, else None."""
    return instance.get("ipv6") if settings.network_ipv6_prefix else None
