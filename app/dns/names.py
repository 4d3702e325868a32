"""Instance names: the A (and AAAA) records of <name>.<member>.<zone> and
the owner marker that says which Warren and member they belong to.

The marker is a TXT record at <name>.<member>._owner.<zone>, outside every
member's subtree: a member's records (and the key BIND confines them to,
app/dns/keys.py) can never reach it. Updates are guarded by RFC 2136
prerequisites on the marker, so Warren never overwrites or deletes a name
it does not own, and repeating an update changes nothing (safe to retry).
Markers of older Warrens sat at the instance's name itself ("legacy");
move_legacy_marker() carries one over.
"""
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from ..errors import Conflict
from .zone import Zone, check, lookup, send, transfer, update

OWNER_LABEL = "_owner"
OWNER_PREFIX = "warren owner="


def owner_text(owner: str) -> str:
    """The TXT value that marks a name as Warren's, for one owner."""
    return f'"{OWNER_PREFIX}{owner}"'


def marker_name(zone: Zone, fqdn: str) -> dns.name.Name:
    """Where fqdn's owner marker lives (relative): web.alice -> web.alice._owner."""
    return dns.name.Name(zone.relative(fqdn).labels + (OWNER_LABEL,))


def publish_address(zone: Zone, fqdn: str, address: str, owner: str,
                    ipv6: str | None = None) -> None:
    """Point fqdn at address (and at ipv6 with an AAAA record, or at no IPv6
    address when ipv6 is None), unless the name belongs to someone else or
    holds a CNAME (which no other data may share)."""
    name, marker_at, marker = zone.relative(fqdn), marker_name(zone, fqdn), owner_text(owner)
    fresh = update(zone)
    fresh.absent(marker_at)  # prerequisites: nobody claims the name,
    fresh.absent(name, "A")  # it has no address,
    fresh.absent(name, "CNAME")  # and is no alias
    fresh.add(name, zone.ttl, "A", address)
    if ipv6:
        fresh.add(name, zone.ttl, "AAAA", ipv6)
    fresh.add(marker_at, zone.ttl, "TXT", marker)
    rcode = send(zone, fresh)
    if rcode in (dns.rcode.YXDOMAIN, dns.rcode.YXRRSET):
        ours = update(zone)
        ours.present(marker_at, "TXT", marker)  # prerequisite: it carries our marker
        ours.absent(name, "CNAME")
        ours.replace(name, zone.ttl, "A", address)
        if ipv6:
            ours.replace(name, zone.ttl, "AAAA", ipv6)
        else:
            ours.delete(name, "AAAA")
        rcode = send(zone, ours)
        if rcode == dns.rcode.NXRRSET:
            raise Conflict(f"{fqdn} is already in use in DNS and not by {owner}")
        if rcode == dns.rcode.YXRRSET:
            raise Conflict(f"{fqdn} is a CNAME record in DNS; an address cannot sit beside it")
    check(rcode, f"publishing {fqdn}")


def remove_name(zone: Zone, fqdn: str, owner: str) -> bool:
    """Delete fqdn's addresses and marker if it is ours; False when already
    gone. A member's own records at the name are theirs (app/records.py)."""
    name, marker_at = zone.relative(fqdn), marker_name(zone, fqdn)
    removal = update(zone)
    removal.present(marker_at, "TXT", owner_text(owner))
    removal.delete(name, "A")
    removal.delete(name, "AAAA")
    removal.delete(marker_at, "TXT")
    rcode = send(zone, removal)
    if rcode == dns.rcode.NXRRSET:
        if lookup(zone, fqdn, "A") == [] and lookup(zone, f"{marker_at}.{zone.name}", "TXT") == []:
            return False
        raise Conflict(f"{fqdn} is not Warren's record for {owner}; left as it is")
    check(rcode, f"removing {fqdn}")
    return True


def _markers(transferred, zone: Zone):
    """(name, owner, legacy) of every owner marker in a transferred zone."""
    origin = zone.origin
    owner_zone = dns.name.Name((OWNER_LABEL,)).concatenate(origin)
    for name, node in transferred.nodes.items():
        rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
        for rdata in rdataset or []:
            text = b"".join(rdata.strings).decode(errors="replace")
            if not text.startswith(OWNER_PREFIX):
                continue
            owner = text.removeprefix(OWNER_PREFIX)
            if name.is_subdomain(owner_zone) and name != owner_zone:
                relative = name.relativize(owner_zone)
                yield relative.concatenate(origin).to_text(omit_final_dot=True), owner, False
            elif len(name.relativize(origin)) == 2:  # where older Warrens put it: <name>.<member>
                yield name.to_text(omit_final_dot=True), owner, True


def owned_names(zone: Zone, transferred=None) -> dict[str, str]:
    """fqdn -> owner of every name in the zone carrying Warren's marker
    (read by a TSIG-signed zone transfer unless one is given)."""
    transferred = transferred if transferred is not None else transfer(zone)
    return {fqdn: owner for fqdn, owner, legacy in _markers(transferred, zone) if not legacy}


def legacy_names(zone: Zone, transferred) -> dict[str, str]:
    """fqdn -> owner of names still marked where older Warrens put the marker."""
    return {fqdn: owner for fqdn, owner, legacy in _markers(transferred, zone) if legacy}


def move_legacy_marker(zone: Zone, member_zone: Zone, fqdn: str, owner: str) -> None:
    """Put the marker of a name an older Warren published at its new place,
    then take the old one away with the member's key (Warren's own key may no
    longer write TXT records at members' names). Each step is guarded by a
    prerequisite, so a repeat changes nothing."""
    name, marker_at, marker = zone.relative(fqdn), marker_name(zone, fqdn), owner_text(owner)
    moved = update(zone)
    moved.present(name, "TXT", marker)
    moved.absent(marker_at)
    moved.add(marker_at, zone.ttl, "TXT", marker)
    rcode = send(zone, moved)
    if rcode not in (dns.rcode.NOERROR, dns.rcode.YXDOMAIN, dns.rcode.NXRRSET):
        check(rcode, f"moving the owner marker of {fqdn}")
    dropped = update(member_zone)
    dropped.present(marker_at, "TXT", marker)
    dropped.delete(name, "TXT", marker)
    rcode = send(member_zone, dropped)
    if rcode == dns.rcode.NXRRSET:
        raise Conflict(f"{fqdn}: the owner marker at {marker_at} is not {owner}'s")
    check(rcode, f"dropping the old owner marker of {fqdn}")
