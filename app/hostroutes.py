"""This host's routes to the instances on an LXD cluster.

Warren's host-level services (the SSH route, port forwards, the proxy, the
checks of a new instance) connect to instance addresses on whatever member
each instance runs. The members' bridges are one Ethernet segment (a VXLAN,
`app/lxd/host.py`), but LXD 5.0.2 gives every member's bridge the same
gateway address and MAC: an instance answers the gateway's MAC on its own
member, so a member (or a host routed through one) reaches at layer 3 only
the instances on that member. Warren therefore routes each instance's
address (a /32) to the member it runs on, from the locations it records,
and keeps those routes in step as instances are built, moved and evacuated.
The member then delivers it on its own bridge, and the instance answers
through its own member's gateway. Instances on Warren's own member (when
Warren runs on one) need no route.

Routes are marked with their own protocol number, so Warren changes only
its own."""
import ipaddress
import json
import subprocess
from urllib.parse import urlsplit

from . import lxd
from .errors import BackendError
from .locks import Exclusive
from .statuses import RELEASED, sql_list

PROTOCOL = "247"  # `proto` of Warren's routes (unassigned in /etc/iproute2/rt_protos)
_routes = Exclusive("/run/lock/warren-routes.lock")


def _ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise BackendError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def member_addresses(settings, cached: bool = False) -> dict[str, str]:
    """Each cluster member's address (from its cluster URL); {} on one
    server. cached: LXD's list of a few seconds ago will do (a member's
    address does not change while it is a member)."""
    return {member.name: urlsplit(member.url).hostname
            for member in lxd.backend(settings).members_now(cached) if member.url}


def route(settings, address: str, location: str) -> bool:
    """Route one instance's address to its member (a new instance: the
    other routes are as they were); False when none is needed (Warren's own
    member, or one LXD does not list)."""
    gateway = member_addresses(settings, cached=True).get(location)
    if gateway is None or gateway in _own_addresses():
        return False
    with _routes:
        _replace(address, gateway)
    return True


def _replace(address: str, gateway: str) -> None:
    _ip("route", "replace", f"{address}/32", "via", gateway, "proto", PROTOCOL)


def _own_addresses() -> set[str]:
    return {info["local"] for link in json.loads(_ip("-j", "-4", "addr", "show") or "[]")
            for info in link.get("addr_info", [])}


def _placed(db) -> list[tuple[str, str]]:
    """(address, member) of every instance that holds an address on a cluster."""
    return db.execute(f"SELECT ipv4, location FROM instances WHERE ipv4 IS NOT NULL "
                      f"AND location != '' AND status NOT IN {sql_list(RELEASED)}").fetchall()


def present(network_address: str) -> dict[str, str]:
    """Warren's routes (each a /32) in the instances' network: address -> gateway."""
    prefix = ipaddress.IPv4Interface(network_address).network
    routes = json.loads(_ip("-j", "-4", "route", "show", "proto", PROTOCOL) or "[]")
    return {route["dst"]: route.get("gateway", "") for route in routes
            if ipaddress.IPv4Network(route["dst"], strict=False).subnet_of(prefix)}


def sync(db, settings) -> list[str]:
    """Bring Warren's routes in line with where instances run; what changed.
    On one server (no instance has a location) it asks LXD nothing."""
    with _routes:
        have = present(settings.network_address)
        placed = _placed(db)
        if not placed and not have:
            return []
        members, own = member_addresses(settings), _own_addresses()
        want = {address: members[location] for address, location in placed
                if location in members and members[location] not in own}
        done = []
        for address, gateway in want.items():
            if have.get(address) != gateway:
                _replace(address, gateway)
                done.append(f"routed {address} via {gateway}")
        for address in have.keys() - want.keys():
            _ip("route", "del", f"{address}/32", "proto", PROTOCOL, check=False)
            done.append(f"removed the route to {address}")
        return done
