"""The only module that talks DNS (through dnspython): RFC 2136 updates signed
with TSIG, sent to the zone's authoritative server, and plain queries.

Each published name carries a TXT owner record next to its A record (and
its AAAA record, with IPv6 on). Updates
are guarded by prerequisites so Warren never overwrites or deletes a name it
does not own, and repeating an update changes nothing (safe to retry).
"""
import re
import socket
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.zone
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from .errors import BackendUnavailable, Conflict, ConfigError, DnsError

KEY_FILE = re.compile(r'key\s+"?(?P<name>[^"\s]+)"?\s*\{\s*algorithm\s+"?(?P<algorithm>[\w-]+)"?\s*;'
                      r'\s*secret\s+"(?P<secret>[^"]+)"\s*;', re.S)
TIMEOUT = 5.0


@dataclass(frozen=True)
class Zone:
    """Where and how to update one delegated zone."""
    name: str
    server: str
    port: int
    key_name: str
    algorithm: str
    secret: str
    ttl: int = 300

    @property
    def keyring(self):
        return dns.tsigkeyring.from_text({self.key_name: (self.algorithm, self.secret)})

    def relative(self, fqdn: str) -> dns.name.Name:
        """The name relative to the zone; refuses names outside it."""
        name = dns.name.from_text(fqdn)
        origin = dns.name.from_text(self.name)
        if not name.is_subdomain(origin) or name == origin:
            raise DnsError(f"{fqdn} is not a name inside the zone {self.name}")
        return name.relativize(origin)


def read_key_file(path: str) -> tuple[str, str, str]:
    """(name, algorithm, secret) from a BIND key file made by tsig-keygen."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"WARREN_DNS_KEY_FILE: cannot read {path}: {error.strerror} "
                          "(bin/up creates it)") from None
    match = KEY_FILE.search(text)
    if not match:
        raise ConfigError(f"WARREN_DNS_KEY_FILE: {path} is not a BIND key file")
    return match["name"], match["algorithm"], match["secret"]


def zone_from_settings(settings) -> Zone:
    """The configured zone, with the TSIG key read from its file."""
    name, algorithm, secret = read_key_file(settings.dns_key_file)
    return Zone(settings.dns_zone, settings.dns_server, settings.dns_port, name, algorithm,
                secret, settings.dns_ttl)


def _send(zone: Zone, update: dns.update.UpdateMessage) -> int:
    """Send a signed update over TCP; return its rcode, raising on transport
    and TSIG failures."""
    try:
        response = dns.query.tcp(update, zone.server, port=zone.port, timeout=TIMEOUT)
    except (dns.tsig.PeerBadKey, dns.tsig.PeerBadSignature, dns.tsig.PeerBadTime) as error:
        raise DnsError(f"the DNS server rejected Warren's TSIG key {zone.key_name!r}: "
                       f"{type(error).__name__}") from error
    except (ConnectionError, socket.timeout, dns.exception.Timeout, OSError) as error:
        raise BackendUnavailable(
            f"the DNS server {zone.server}:{zone.port} is not reachable ({error})") from error
    return response.rcode()


def _update(zone: Zone) -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage(zone.name, keyring=zone.keyring, keyname=zone.key_name,
                                    keyalgorithm=zone.algorithm)


def _check(rcode: int, action: str) -> None:
    if rcode != dns.rcode.NOERROR:
        raise DnsError(f"{action}: the DNS server answered {dns.rcode.to_text(rcode)}")


def owner_text(owner: str) -> str:
    """The TXT value that marks a name as Warren's, for one owner."""
    return f'"warren owner={owner}"'


def publish_address(zone: Zone, fqdn: str, address: str, owner: str,
                    ipv6: str | None = None) -> None:
    """Point fqdn at address (and at ipv6 with an AAAA record, or at no IPv6
    address when ipv6 is None), unless the name belongs to someone else."""
    name = zone.relative(fqdn)
    marker = owner_text(owner)
    fresh = _update(zone)
    fresh.absent(name)  # prerequisite: the name is not in use at all
    fresh.add(name, zone.ttl, "A", address)
    if ipv6:
        fresh.add(name, zone.ttl, "AAAA", ipv6)
    fresh.add(name, zone.ttl, "TXT", marker)
    rcode = _send(zone, fresh)
    if rcode == dns.rcode.YXDOMAIN:
        ours = _update(zone)
        ours.present(name, "TXT", marker)  # prerequisite: it carries our marker
        ours.replace(name, zone.ttl, "A", address)
        if ipv6:
            ours.replace(name, zone.ttl, "AAAA", ipv6)
        else:
            ours.delete(name, "AAAA")
        rcode = _send(zone, ours)
        if rcode == dns.rcode.NXRRSET:
            raise Conflict(f"{fqdn} is already in use in DNS and not by {owner}")
    _check(rcode, f"publishing {fqdn}")


def remove_name(zone: Zone, fqdn: str, owner: str) -> bool:
    """Delete every record of fqdn if it is ours; False when already gone."""
    name = zone.relative(fqdn)
    update = _update(zone)
    update.present(name, "TXT", owner_text(owner))
    update.delete(name)
    rcode = _send(zone, update)
    if rcode == dns.rcode.NXRRSET:
        if all(lookup(zone, fqdn, rdtype) == [] for rdtype in ("TXT", "A", "AAAA")):
            return False
        raise Conflict(f"{fqdn} is not Warren's record for {owner}; left as it is")
    _check(rcode, f"removing {fqdn}")
    return True


def lookup(zone: Zone, fqdn: str, rdtype: str = "A") -> list[str]:
    """The records of one type at a name, asked of the zone's server itself."""
    query = dns.message.make_query(fqdn, rdtype)
    try:
        response = dns.query.udp(query, zone.server, port=zone.port, timeout=TIMEOUT)
    except (ConnectionError, dns.exception.Timeout, OSError) as error:
        raise BackendUnavailable(
            f"the DNS server {zone.server}:{zone.port} is not reachable ({error})") from error
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DnsError(f"looking up {fqdn}: {dns.rcode.to_text(response.rcode())}")
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(item.to_text() for rrset in response.answer if rrset.rdtype == wanted
                  for item in rrset)


def owned_names(zone: Zone) -> dict[str, str]:
    """fqdn -> owner of every name in the zone carrying Warren's TXT marker
    (a TSIG-signed zone transfer)."""
    try:
        transferred = dns.zone.from_xfr(dns.query.xfr(zone.server, zone.name, port=zone.port,
                                                      keyring=zone.keyring, keyname=zone.key_name,
                                                      keyalgorithm=zone.algorithm, timeout=TIMEOUT))
    except (ConnectionError, dns.exception.Timeout, OSError) as error:
        raise BackendUnavailable(
            f"the DNS server {zone.server}:{zone.port} is not reachable ({error})") from error
    except dns.exception.DNSException as error:
        raise DnsError(f"reading the zone {zone.name}: {error}") from error
    owners = {}
    for name, node in transferred.nodes.items():
        rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT)
        for rdata in rdataset or []:
            text = b"".join(rdata.strings).decode(errors="replace")
            if text.startswith("warren owner="):
                owners[f"{name}.{zone.name}"] = text.removeprefix("warren owner=")
    return owners
