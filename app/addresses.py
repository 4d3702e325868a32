"""Instance addresses on Warren's bridge: a static pool for Warren and a
small dynamic DHCP range (the top quarter) for anything an admin launches
by hand, so the two never collide."""
import ipaddress


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
