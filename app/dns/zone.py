"""The zone's authoritative server as dnspython sees it: where it is, the
TSIG key an update is signed with, signed updates over TCP, plain queries
and signed zone transfers. Every other module of the package builds on
these; nothing above the package catches a dnspython error.
"""
import re
import socket
from dataclasses import dataclass, replace

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.zone

from ..errors import BackendUnavailable, ConfigError, DnsError

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

    @property
    def origin(self) -> dns.name.Name:
        return dns.name.from_text(self.name)

    def relative(self, fqdn: str) -> dns.name.Name:
        """The name relative to the zone; refuses names outside it."""
        name = dns.name.from_text(fqdn)
        if not name.is_subdomain(self.origin) or name == self.origin:
            raise DnsError(f"{fqdn} is not a name inside the zone {self.name}")
        return name.relativize(self.origin)

    def signed_by(self, key_name: str, secret: str) -> "Zone":
        """The same zone, with updates signed by another key (a member's)."""
        return replace(self, key_name=key_name, secret=secret)


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
    """The configured zone, with Warren's own TSIG key read from its file."""
    name, algorithm, secret = read_key_file(settings.dns_key_file)
    return Zone(settings.dns_zone, settings.dns_server, settings.dns_port, name, algorithm,
                secret, settings.dns_ttl)


def unreachable(zone: Zone, error: Exception) -> BackendUnavailable:
    return BackendUnavailable(f"the DNS server {zone.server}:{zone.port} is not reachable ({error})")


def send(zone: Zone, update: dns.update.UpdateMessage) -> int:
    """Send a signed update over TCP; return its rcode, raising on transport
    and TSIG failures."""
    try:
        response = dns.query.tcp(update, zone.server, port=zone.port, timeout=TIMEOUT)
    except (dns.tsig.PeerBadKey, dns.tsig.PeerBadSignature, dns.tsig.PeerBadTime) as error:
        raise DnsError(f"the DNS server rejected Warren's TSIG key {zone.key_name!r}: "
                       f"{type(error).__name__}") from error
    except (ConnectionError, socket.timeout, dns.exception.Timeout, OSError) as error:
        raise unreachable(zone, error) from error
    return response.rcode()


def update(zone: Zone) -> dns.update.UpdateMessage:
    """An empty update of the zone, signed with the zone's key."""
    return dns.update.UpdateMessage(zone.name, keyring=zone.keyring, keyname=zone.key_name,
                                    keyalgorithm=zone.algorithm)


def check(rcode: int, action: str) -> None:
    if rcode != dns.rcode.NOERROR:
        raise DnsError(f"{action}: the DNS server answered {dns.rcode.to_text(rcode)}")


def query(zone: Zone, fqdn: str, rdtype: str, dnssec: bool = False) -> dns.message.Message:
    """Ask the zone's server itself (over UDP); raises on errors other than
    NXDOMAIN."""
    message = dns.message.make_query(fqdn, rdtype, want_dnssec=dnssec)
    try:
        response = dns.query.udp(message, zone.server, port=zone.port, timeout=TIMEOUT)
    except (ConnectionError, dns.exception.Timeout, OSError) as error:
        raise unreachable(zone, error) from error
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DnsError(f"looking up {fqdn}: {dns.rcode.to_text(response.rcode())}")
    return response


def lookup(zone: Zone, fqdn: str, rdtype: str = "A") -> list[str]:
    """The records of one type at a name, asked of the zone's server itself."""
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(item.to_text() for rrset in query(zone, fqdn, rdtype).answer
                  if rrset.rdtype == wanted for item in rrset)


def transfer(zone: Zone) -> dns.zone.Zone:
    """The whole zone, by a TSIG-signed zone transfer; names are absolute."""
    try:
        return dns.zone.from_xfr(dns.query.xfr(zone.server, zone.name, port=zone.port,
                                               keyring=zone.keyring, keyname=zone.key_name,
                                               keyalgorithm=zone.algorithm, timeout=TIMEOUT,
                                               relativize=False), relativize=False)
    except (ConnectionError, dns.exception.Timeout, OSError) as error:
        raise unreachable(zone, error) from error
    except dns.exception.DNSException as error:
        raise DnsError(f"reading the zone {zone.name}: {error}") from error
