"""The zone's DNSSEC key as its parent needs it: the DS record to hand to
whoever runs the parent zone, computed from the DNSKEY named serves."""
import dns.dnssec
import dns.rdatatype

from ..errors import DnsError
from .zone import Zone, query

SEP = 0x0001  # the key-signing (secure entry point) flag: 257 = zone key + SEP


def ds_records(zone: Zone) -> list[str]:
    """The DS records (SHA-256) of the zone's key-signing keys, as a parent
    zone file writes them; empty while the zone is not signed yet."""
    response = query(zone, zone.name, "DNSKEY")
    found = []
    for rrset in response.answer:
        if rrset.rdtype != dns.rdatatype.DNSKEY:
            continue
        for key in rrset:
            if key.flags & SEP:
                try:
                    ds = dns.dnssec.make_ds(zone.origin, key, "SHA256")
                except dns.dnssec.UnsupportedAlgorithm as error:
                    raise DnsError(f"the zone's key uses an algorithm dnspython cannot hash: {error}")
                found.append(f"{zone.name}. IN DS {ds.to_text()}")
    return sorted(found)
