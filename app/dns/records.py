"""A member's own records in DNS (CNAME, TXT, MX, AAAA, SRV, CAA strictly
below <member>.<zone>), made equal to a desired set: Warren's rows.

Updates are signed with the member's key (app/dns/keys.py), so BIND itself
keeps them inside the member's subtree and to those types. One update per
name replaces exactly the record sets that differ; a CNAME is only added
with the prerequisite that the name has no address (BIND would otherwise
drop it without a word), so a repeat changes nothing and a clash is named.
"""
from dataclasses import dataclass
from typing import Callable

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from ..errors import Conflict
from .keys import MEMBER_TYPES
from .names import OWNER_PREFIX
from .zone import Zone, check, send, update


@dataclass(frozen=True)
class Record:
    """One record as Warren's rows hold it: absolute names in the value."""
    fqdn: str
    rtype: str
    value: str
    ttl: int


def parse(rtype: str, value: str) -> dns.rdata.Rdata:
    """The record's data as dnspython reads it; every name in it is taken
    as absolute (web.example.org means web.example.org.)."""
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value,
                               origin=dns.name.root, relativize=False)


def _warren_marker(rtype: str, rdata) -> bool:
    return rtype == "TXT" and b"".join(rdata.strings).decode(errors="replace").startswith(OWNER_PREFIX)


RecordSets = dict[tuple[str, str], tuple[int, frozenset]]


def in_zone(transferred, subtree: str, keep: Callable[[str, str], bool]) -> RecordSets:
    """(fqdn, type) -> (ttl, data) of the member's record sets strictly below
    subtree in a transferred zone, leaving out what keep(fqdn, type) says is
    not the member's to manage and Warren's own owner markers."""
    top = dns.name.from_text(subtree)
    found = {}
    for name, node in transferred.nodes.items():
        if not name.is_subdomain(top) or name == top:
            continue
        fqdn = name.to_text(omit_final_dot=True)
        for rdataset in node.rdatasets:
            rtype = dns.rdatatype.to_text(rdataset.rdtype)
            if rtype not in MEMBER_TYPES or keep(fqdn, rtype):
                continue
            data = frozenset(rdata for rdata in rdataset if not _warren_marker(rtype, rdata))
            if data:
                found[(fqdn, rtype)] = (rdataset.ttl, data)
    return found


def wanted(records: list[Record]) -> RecordSets:
    """The record sets rows ask for (one TTL per set: the lowest asked)."""
    sets: dict[tuple[str, str], tuple[int, set]] = {}
    for record in records:
        ttl, data = sets.get((record.fqdn, record.rtype), (record.ttl, set()))
        data.add(parse(record.rtype, record.value))
        sets[(record.fqdn, record.rtype)] = (min(ttl, record.ttl), data)
    return {key: (ttl, frozenset(data)) for key, (ttl, data) in sets.items()}


def differing_names(desired: RecordSets, actual: RecordSets) -> list[str]:
    """The names where DNS differs from what is wanted."""
    return sorted({fqdn for fqdn, rtype in set(desired) | set(actual)
                   if desired.get((fqdn, rtype)) != actual.get((fqdn, rtype))})


def sync_name(member_zone: Zone, fqdn: str, desired: RecordSets, actual: RecordSets) -> str:
    """Make one name's record sets what is wanted; a line saying what changed."""
    name = member_zone.relative(fqdn)
    message = update(member_zone)
    changes = []
    for rtype in MEMBER_TYPES:
        want, have = desired.get((fqdn, rtype)), actual.get((fqdn, rtype))
        if want == have:
            continue
        message.delete(name, rtype)
        if want is None:
            changes.append(f"-{rtype}")
            continue
        ttl, data = want
        if rtype == "CNAME":
            message.absent(name, "A")  # an alias cannot sit beside an instance's address
        for rdata in sorted(data, key=lambda item: item.to_text()):
            message.add(name, ttl, rdata)
        changes.append(f"{'~' if have else '+'}{rtype}")
    if not changes:
        return ""
    rcode = send(member_zone, message)
    if rcode == dns.rcode.YXRRSET:
        raise Conflict(f"{fqdn} has an instance's address in DNS; a CNAME cannot sit beside it")
    check(rcode, f"updating the records of {fqdn}")
    return f"{fqdn} {' '.join(changes)}"
