"""Host-level guards on Warren's bridge that LXD's NIC filtering leaves out.

The only module that runs ebtables, iptables, ip6tables and nft (the port
forwards of a cluster, app/hostforwards.py, go through nft() here). In isolated mode
a forward guard (iptables and ip6tables FORWARD, `ensure_forward_guard`)
keeps everything from crossing between the bridge and any other interface,
but the connections that port forwards let in: LXD turns on the host's
forwarding for its bridges (IPv6 forwarding too, once the bridge has
IPv6), so without it an instance could send packets out of the host's
uplink (unanswered, but sent). A drop in any
nf_tables base chain is final, so LXD's own accepts (its nftables driver's
`table inet lxd`) cannot undo it. Traffic between instances on the bridge
is bridged, not forwarded by IP, unless the kernel passes bridged frames
to iptables: hence `! -o bridge`.

The ebtables guards: Two chains per bridge in ebtables' `nat`
table, each entered from PREROUTING:

- WARREN_DHCP_<bridge> (static, `ensure_dhcp_guard`): DHCP server traffic
  and router advertisements sent by instances. LXD's ipv4 filtering lets an
  instance send anything from its own address, DHCP offers included.
- WARREN_MAC_<bridge> (follows the running instances, `sync_mac_guard`):
  each port may only send frames from its instance's MAC. LXD's own MAC
  check runs in the `filter` table, after the bridge has already learned the
  forged source address, so a container that takes a neighbour's MAC would
  still draw that neighbour's traffic to its own port.

With IPv6 on, one more guard (nft, `sync_nd_guard`, table `bridge warren`,
a chain per bridge hooked at prerouting): each port may only send neighbour
advertisements for its instance's own IPv6 address. LXD 5.0.2's
security.ipv6_filtering accepts anything sent from the instance's own
address before it looks at a neighbour advertisement's target, so an
instance could tell its neighbours that another instance's address is at
its MAC and draw that traffic to itself (tests/test_ipv6.py shows both).
The target is read after any extension headers (`@th`), so padding the
packet cannot move it out of view.

Why ebtables `nat` PREROUTING: it is the hook that runs before the bridge
learns source addresses, and LXD never touches it (its nftables driver
keeps its rules in its own `bridge lxd` and `inet lxd` tables, hooked at
input and forward, after learning), so LXD rewriting its rules for the
bridge leaves ours alone, and a DROP here is final whatever LXD accepts
elsewhere. ebtables is the nf_tables build from Debian's `ebtables` package.

This kernel has no bridge-name match (CONFIG_NFT_BRIDGE_META is off, so
`--logical-in` is refused), so the DHCP rules are scoped by the bridge's
IPv4 network instead: LXD's ipv4 filtering makes an instance's packets
carry its own address, so "from an address of this network" means "from an
instance on this bridge". IPv6 server messages come from link-local
addresses, which name no network: those rules match LXD's MAC prefix
(00:16:3e, which LXD's MAC filtering holds every instance to) on any
bridge of the host.
"""
import functools
import ipaddress
import logging
import subprocess

from .errors import BackendError
from .locks import Exclusive

log = logging.getLogger(__name__)

TABLE = "nat"
ENTRY = "PREROUTING"
LXD_MACS = "00:16:3e:00:00:00/ff:ff:ff:00:00:00"

# Each change reads the tables, then edits them: a job guarding the port of
# the instance it just started and the periodic pass syncing the bridge
# must not interleave (two creations of one chain fail; two whole-chain nft
# rewrites each from its own reading would drop the other's rule). The
# tables are the host's, so the lock is too.
_tables = Exclusive("/run/lock/warren-firewall.lock")


def held() -> Exclusive:
    """The tables' lock, for a caller whose reading must stay true until
    its change is made (`with firewall.held():`)."""
    return _tables


def _exclusive(change):
    """Run a read-modify-write of the host's tables alone."""
    @functools.wraps(change)
    def run(*args, **kwargs):
        with _tables:
            return change(*args, **kwargs)
    return run


def dhcp_chain(bridge: str) -> str:
    """The DHCP guard chain of a bridge (ebtables names stop at 31 characters)."""
    return f"WARREN_DHCP_{bridge}"


def mac_chain(bridge: str) -> str:
    """The MAC guard chain of a bridge."""
    return f"WARREN_MAC_{bridge}"


def dhcp_rules(network_address: str) -> list[str]:
    """The DHCP guard's rules, written the way ebtables lists them."""
    network = ipaddress.IPv4Interface(network_address).network
    return [
        # DHCPv4 servers and relays answer from port 67; clients listen on 68
        # and some (busybox udhcpc) take a reply from any source port.
        f"-p IPv4 --ip-src {network} --ip-proto udp --ip-sport 67 -j DROP",
        f"-p IPv4 --ip-src {network} --ip-proto udp --ip-dport 68 -j DROP",
        # IPv6 (WARREN_NETWORK_IPV6_PREFIX): DHCPv6 servers (547 -> 546) and RAs.
        f"-p IPv6 -s {LXD_MACS} --ip6-proto udp --ip6-sport 547 -j DROP",
        f"-p IPv6 -s {LXD_MACS} --ip6-proto udp --ip6-dport 546 -j DROP",
        f"-p IPv6 -s {LXD_MACS} --ip6-proto ipv6-icmp --ip6-icmp-type router-advertisement -j DROP",
    ]


def mac_rule(port: str, mac: str) -> str:
    """Drop what a port sends from any MAC but its instance's."""
    return f"-s ! {mac.lower()} -i {port} -j DROP"


# Connections LXD's network forwards let in (port forwards, app/forwards.py)
# are destination-NATed; conntrack marks both directions of them DNAT, so
# the guard lets exactly those through and instances still open nothing.
NOT_FORWARDED = ["-m", "conntrack", "!", "--ctstate", "DNAT"]


def forward_rules(bridge: str) -> list[list[str]]:
    """The forward guard: nothing from the bridge to elsewhere, or back,
    but the connections of port forwards."""
    return [["-i", bridge, "!", "-o", bridge, *NOT_FORWARDED, "-j", "DROP"],
            ["-o", bridge, "!", "-i", bridge, *NOT_FORWARDED, "-j", "DROP"]]


def _older_forward_rules(bridge: str) -> list[list[str]]:
    """The guard as it was before port forwards: taken off where found."""
    return [["-i", bridge, "!", "-o", bridge, "-j", "DROP"],
            ["-o", bridge, "!", "-i", bridge, "-j", "DROP"]]


# Both families, whether or not the bridge has IPv6 now: the guard is in
# place before IPv6 is turned on, and costs nothing while it is off.
IPTABLES = ("iptables", "ip6tables")


def _iptables(*args: str, binary: str = "iptables") -> subprocess.CompletedProcess:
    try:
        return subprocess.run([binary, "-w", "10", *args], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendError(f"{binary} {' '.join(args)}: {error}") from None


@_exclusive
def ensure_forward_guard(bridge: str, isolated: bool) -> bool:
    """Put the forward guard on the bridge when it is isolated, take it off
    when it is not (nat or routed), for IPv4 and IPv6; True if anything
    changed."""
    changed = False
    for binary in IPTABLES:
        for rule in forward_rules(bridge):
            present = _iptables("-C", "FORWARD", *rule, binary=binary).returncode == 0
            if isolated and not present:
                result = _iptables("-I", "FORWARD", "1", *rule, binary=binary)
                if result.returncode:
                    raise BackendError(f"{binary} refused the forward guard: "
                                       f"{result.stderr.strip()}")
                changed = True
            elif not isolated and present:
                _iptables("-D", "FORWARD", *rule, binary=binary)
                changed = True
        for rule in _older_forward_rules(bridge):
            if _iptables("-C", "FORWARD", *rule, binary=binary).returncode == 0:
                _iptables("-D", "FORWARD", *rule, binary=binary)
                changed = True
    return changed


def _ebtables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["ebtables", "-t", TABLE, *args], capture_output=True,
                                text=True, timeout=30, check=False)
    except FileNotFoundError as error:
        raise BackendError("ebtables is not installed (Debian package iptables); Warren needs "
                           "it to guard its bridge") from error
    except subprocess.TimeoutExpired as error:
        raise BackendError(f"ebtables {' '.join(args)} did not finish in 30 s") from error
    if check and result.returncode != 0:
        raise BackendError(f"ebtables {' '.join(args)} failed: "
                           f"{(result.stderr or result.stdout).strip()}")
    return result


def _chains() -> dict[str, list[str]]:
    """Chain -> its rules as ebtables lists them, for the whole table."""
    chains: dict[str, list[str]] = {}
    current = None
    for line in _ebtables("-L").stdout.splitlines():
        line = line.strip()
        if line.startswith("Bridge chain: "):
            current = line.removeprefix("Bridge chain: ").split(",", 1)[0]
            chains[current] = []
        elif line and current and not line.startswith("Bridge "):
            chains[current].append(" ".join(line.split()))
    return chains


def _ensure_chain(chains: dict, chain: str) -> bool:
    """The chain exists and is entered once from PREROUTING; True if changed."""
    changed = False
    if chain not in chains:
        _ebtables("-N", chain, "-P", "RETURN")
        chains[chain] = []
        changed = True
    jump = f"-j {chain}"
    jumps = [rule for rule in chains.get(ENTRY, []) if rule == jump]
    for _extra in jumps[1:]:
        _ebtables("-D", ENTRY, "-j", chain, check=False)
        changed = True
    if not jumps:
        _ebtables("-I", ENTRY, "1", "-j", chain)
        changed = True
    return changed


def _set_rules(chains: dict, chain: str, wanted: list[str]) -> tuple[list[str], list[str]]:
    """Make the chain hold exactly the wanted rules, adding and deleting one
    by one so the others never stop applying; (added, removed)."""
    present = chains[chain]
    removed = []
    seen = set()
    for rule in present:
        if rule in wanted and rule not in seen:
            seen.add(rule)
            continue
        # Another process may have removed it meanwhile: that is fine.
        _ebtables("-D", chain, *rule.split(), check=False)
        removed.append(rule)
    added = [rule for rule in wanted if rule not in seen]
    for rule in added:
        _ebtables("-A", chain, *rule.split())
    return added, removed


@_exclusive
def ensure_dhcp_guard(bridge: str, network_address: str) -> bool:
    """Stop instances on the bridge from acting as DHCP servers or IPv6
    routers, while the host's dnsmasq (which sends from the bridge device,
    not from a port) still answers. Idempotent; True if anything changed."""
    chains = _chains()
    chain = dhcp_chain(bridge)
    changed = _ensure_chain(chains, chain)
    added, removed = _set_rules(chains, chain, dhcp_rules(network_address))
    if added or removed:
        log.info("DHCP guard on %s: %d rule(s) added, %d removed", bridge, len(added), len(removed))
    return changed or bool(added or removed)


@_exclusive
def sync_mac_guard(bridge: str, ports: dict[str, str]) -> list[str]:
    """Hold each port (host-side interface -> its instance's MAC) to its own
    MAC before the bridge learns addresses; rules of ports that are gone are
    removed. Returns a line per change."""
    chains = _chains()
    chain = mac_chain(bridge)
    changes = ["MAC guard installed"] if _ensure_chain(chains, chain) else []
    added, removed = _set_rules(chains, chain, [mac_rule(port, mac)
                                                for port, mac in sorted(ports.items())])
    changes += [f"MAC guard for {rule.split(' -i ')[1].split()[0]} added" for rule in added]
    changes += [f"MAC guard for {rule.split(' -i ')[1].split()[0]} removed"
                if " -i " in rule else f"stray rule removed: {rule}" for rule in removed]
    return changes


@_exclusive
def guard_mac_port(bridge: str, port: str, mac: str) -> list[str]:
    """Hold one new port to its MAC at once (an instance just started),
    replacing a rule a former holder of the port's name left; the others
    are left to sync_mac_guard. A line per change."""
    chains = _chains()
    chain = mac_chain(bridge)
    changes = ["MAC guard installed"] if _ensure_chain(chains, chain) else []
    mine = [rule for rule in chains[chain] if f" -i {port} " in f" {rule} "]
    wanted = mac_rule(port, mac)
    for rule in mine:
        if rule != wanted:
            _ebtables("-D", chain, *rule.split(), check=False)
            changes.append(f"stale MAC guard for {port} removed")
    if wanted not in mine:
        _ebtables("-A", chain, *wanted.split())
        changes.append(f"MAC guard for {port} added")
    return changes


ND_TABLE = "warren"


def nd_chain(bridge: str) -> str:
    """The neighbour advertisement guard chain of a bridge (in nft's `bridge warren`)."""
    return f"nd_{bridge}"


def nd_rule(port: str, address: str) -> str:
    """Drop neighbour advertisements a port sends for any target but its address."""
    return (f'iifname "{port}" icmpv6 type nd-neighbor-advert '
            f"@th,64,128 != {int(ipaddress.IPv6Address(address)):#034x} drop")


def nft(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run nft with these arguments, reading script (when given) as its
    input; the result, whatever nft answered."""
    try:
        result = subprocess.run(["nft", *args, "-f", "-"] if script else ["nft", *args],
                                input=script or None, capture_output=True, text=True,
                                timeout=30, check=False)
    except FileNotFoundError as error:
        raise BackendError("nft is not installed (Debian package nftables); Warren needs it "
                           "to guard its bridge's IPv6 neighbours and for port forwards on a "
                           "cluster") from error
    except subprocess.TimeoutExpired as error:
        raise BackendError("nft did not finish in 30 s") from error
    return result


def _nd_rules(bridge: str) -> list[str]:
    """The guard's rules as nft lists them ([] when there is no chain)."""
    listing = nft("", "list", "chain", "bridge", ND_TABLE, nd_chain(bridge))
    return [line.strip() for line in listing.stdout.splitlines()
            if line.strip().startswith("iifname ")] if listing.returncode == 0 else []


@_exclusive
def sync_nd_guard(bridge: str, addresses: dict[str, str],
                  present: list[str] | None = None) -> list[str]:
    """Hold each port (host-side interface -> its instance's IPv6 address)
    to advertising its own address only; ports that are gone lose their
    rule. Replaced in one nft transaction, so no rule ever lapses. A line
    per change. present: the rules as listed just now, if the caller has
    them."""
    wanted = [nd_rule(port, address) for port, address in sorted(addresses.items())]
    present = _nd_rules(bridge) if present is None else present
    if present == wanted:
        return []
    chain = nd_chain(bridge)
    script = (f"table bridge {ND_TABLE} {{\n  chain {chain} {{ type filter hook prerouting "
              f"priority -300; policy accept; }}\n}}\nflush chain bridge {ND_TABLE} {chain}\n"
              + "".join(f"add rule bridge {ND_TABLE} {chain} {rule}\n" for rule in wanted))
    result = nft(script)
    if result.returncode:
        raise BackendError(f"nft refused the neighbour guard on {bridge}: {result.stderr.strip()}")
    return ([f"neighbour guard for {_port(rule)} added" for rule in wanted if rule not in present]
            + [f"neighbour guard for {_port(rule)} removed" for rule in present
               if rule not in wanted])


@_exclusive
def guard_nd_port(bridge: str, port: str, address: str) -> list[str]:
    """Hold one new port to advertising its own IPv6 address at once; the
    other ports' rules stay as they are (sync_nd_guard keeps them all)."""
    present = _nd_rules(bridge)
    return sync_nd_guard(bridge, {**{_port(rule): _address(rule) for rule in present}, port: address},
                         present)


def _address(rule: str) -> str:
    return str(ipaddress.IPv6Address(int(rule.split("!= ")[1].split()[0], 16)))


def _port(rule: str) -> str:
    return rule.split('"')[1]


@_exclusive
def remove_nd_guard(bridge: str) -> bool:
    """Remove the neighbour advertisement guard of a bridge."""
    return nft("", "delete", "chain", "bridge", ND_TABLE, nd_chain(bridge)).returncode == 0


@_exclusive
def _remove_chain(chain: str) -> bool:
    chains = _chains()
    if chain not in chains:
        return False
    for rule in chains.get(ENTRY, []):
        if rule == f"-j {chain}":
            _ebtables("-D", ENTRY, "-j", chain, check=False)
    _ebtables("-F", chain)
    _ebtables("-X", chain)
    return True


def remove_dhcp_guard(bridge: str) -> bool:
    """Remove the DHCP guard (tests use it to show what it prevents)."""
    return _remove_chain(dhcp_chain(bridge))


def remove_mac_guard(bridge: str) -> bool:
    """Remove the MAC guard of a bridge."""
    return _remove_chain(mac_chain(bridge))
