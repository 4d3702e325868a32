"""Port forwards on an LXD cluster, done by Warren's host in nftables.

On one server LXD's network forwards do the job (app/lxd/forwards.py). On
a cluster they cannot: LXD 5.0.2 makes a bridge's forwards member-specific,
so the DNAT happens on one member, and an instance on another member
answers through its own member's gateway (every member's bridge is the
gateway, app/hostroutes.py), so the answer never meets the connection
tracking that would undo the DNAT. Warren's host, which holds the public
address and a route to every instance, forwards instead:

    table ip warren_forwards
      prerouting, output (nat): ip daddr PUBLIC tcp dport P dnat to INSTANCE:Q
      postrouting (nat): ct status dnat ip daddr NETWORK oifname != BRIDGE masquerade

The masquerade sends the instance's answer back to this host whatever
member it runs on: a forwarded connection to an instance on another member
comes from this host's address (the instance does not see the client's);
one to an instance on this host's own member, through its bridge, keeps
the client's address. Each DNAT rule carries its port as a comment (and the
masquerade rule the public address), so the table is read back and
rewritten (in one nft transaction) only when it differs from what should
be; the forwards pass repairs drift.
"""
import ipaddress
import json
from collections import Counter

from . import firewall
from .errors import BackendError

TABLE = "warren_forwards"
MASQUERADE = "masquerade"  # the comment of the postrouting rule


def key(port: dict) -> str:
    """A port (as LXD writes forward ports) as its rules' comment."""
    return (f"{port['protocol']} {port['listen_port']} {port['target_address']} "
            f"{port['target_port']}")


def ruleset(public: str, network_address: str, bridge: str, ports: list[dict]) -> str:
    """The whole table as an nft script that replaces any earlier one."""
    network = ipaddress.IPv4Interface(network_address).network
    dnat = [f"ip daddr {public} {port['protocol']} dport {port['listen_port']} dnat to "
            f"{port['target_address']}:{port['target_port']} comment \"{key(port)}\"" for port in ports]
    lines = [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", f"table ip {TABLE} {{",
             "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
             *(f"    {rule}" for rule in dnat), "  }",
             "  chain output {", "    type nat hook output priority -100; policy accept;",
             *(f"    {rule}" for rule in dnat), "  }",
             "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
             f"    ct status dnat ip daddr {network} oifname != \"{bridge}\" masquerade "
             f"comment \"{_masquerade_tag(public, network, bridge)}\"", "  }", "}"]
    return "\n".join(lines) + "\n"


def _masquerade_tag(public: str, network, bridge: str) -> str:
    """The masquerade rule's comment: it also names the public address, so
    the comments alone tell whether the table is the one wanted."""
    return f"{MASQUERADE} {network} {bridge} for {public}"


def _wanted(public: str, network_address: str, bridge: str, ports: list[dict]) -> list[str]:
    """The comments ruleset() writes: each port's in prerouting and in output."""
    network = ipaddress.IPv4Interface(network_address).network
    return [key(port) for port in ports] * 2 + [_masquerade_tag(public, network, bridge)]


def present() -> list[str] | None:
    """The comments of the table's rules (None when there is no table)."""
    result = firewall.nft("", "-j", "list", "table", "ip", TABLE)
    if result.returncode != 0:
        if "No such file or directory" in result.stderr:
            return None
        raise BackendError(f"nft could not list table ip {TABLE}: {result.stderr.strip()}")
    return [item["rule"].get("comment", "") for item in json.loads(result.stdout)["nftables"]
            if "rule" in item]


def sync(public: str | None, network_address: str, bridge: str, ports: list[dict]) -> list[str]:
    """Make the table hold exactly these forwards (none, and no table, when
    public is None); lines saying what changed."""
    with firewall.held():
        have = present()
        if public is None or not ports:
            if have is None:
                return []
            _run(f"delete table ip {TABLE}\n")
            return _lines(set(have), "removed")
        want = _wanted(public, network_address, bridge, ports)
        if have is not None and sorted(have) == sorted(want):
            return []
        _run(ruleset(public, network_address, bridge, ports))
        had, wanted = Counter(have or ()), Counter(want)
        return _lines(set(wanted - had), "set") + _lines(set(had - wanted), "removed")


def _lines(rules: set[str], verb: str) -> list[str]:
    """What changed, in the words of the forwards pass."""
    ports = sorted(rule.split() for rule in rules if rule and not rule.startswith(MASQUERADE))
    return [f"forward {port}/{protocol} -> {target}:{target_port} {verb}"
            for protocol, port, target, target_port in ports]


def _run(script: str) -> None:
    result = firewall.nft(script)
    if result.returncode != 0:
        raise BackendError(f"nft refused the port forwards: {result.stderr.strip()}")
