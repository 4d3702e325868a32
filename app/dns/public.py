"""Lookups in the public DNS (through dnspython's stub resolver): what the
world sees at a member's own domain, asked of the recursive resolvers in
WARREN_PUBLIC_RESOLVERS (or the system's). Warren's own zone is zone.py's.

Every lookup is bounded by WARREN_DOMAIN_LOOKUP_SECONDS in all, nothing is
cached (a member who just published a record is believed at once), and
the answers are plain: no such name or record is an empty answer, while a
timeout, SERVFAIL or refusal raises LookupFailed (neither yes nor no).
"""
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ..config import nameserver
from ..errors import ConfigError, LookupFailed


@dataclass(frozen=True)
class Resolvers:
    """Where and how long to ask: (address, port) pairs, empty for the system's."""
    servers: tuple[tuple[str, int], ...]
    lifetime: float


def from_settings(settings) -> Resolvers:
    """The configured resolvers and lookup bound."""
    return Resolvers(tuple(nameserver(text) for text in settings.public_resolvers),
                     float(settings.domain_lookup_seconds))


def _resolver(resolvers: Resolvers) -> dns.resolver.Resolver:
    try:
        resolver = dns.resolver.Resolver(configure=not resolvers.servers)
    except dns.resolver.NoResolverConfiguration:
        raise ConfigError("WARREN_PUBLIC_RESOLVERS is empty and the system has no resolver "
                          "(/etc/resolv.conf); name one") from None
    if resolvers.servers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)
                                for address, port in resolvers.servers]
    resolver.cache = None
    resolver.lifetime = resolvers.lifetime
    resolver.timeout = resolvers.lifetime
    resolver.retry_servfail = False
    return resolver


def _answer(resolvers: Resolvers, name: str, rdtype: str):
    """The answer's rrset of that type at the name, or None when the name
    or the type is not there."""
    try:
        answer = _resolver(resolvers).resolve(dns.name.from_text(name), rdtype, search=False,
                                              raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return None
    except dns.resolver.LifetimeTimeout:
        raise LookupFailed(f"no answer for {name} {rdtype} within "
                           f"{resolvers.lifetime:g} s") from None
    except dns.resolver.NoNameservers as error:
        raise LookupFailed(f"the name servers gave no usable answer for {name} {rdtype} "
                           f"({_reasons(error)})") from None
    except dns.exception.DNSException as error:
        raise LookupFailed(f"looking up {name} {rdtype}: {error}") from None
    return answer.rrset


def _reasons(error: dns.resolver.NoNameservers) -> str:
    """What the resolvers answered (SERVFAIL, REFUSED, ...), in short."""
    return ", ".join(sorted({str(item[3]) for item in error.kwargs.get("errors") or []})) \
        or "no answer"


def txt(resolvers: Resolvers, name: str) -> list[str]:
    """The TXT strings at a name (each record's strings joined), following
    a CNAME there as resolvers do; [] when there are none."""
    rrset = _answer(resolvers, name, "TXT")
    if rrset is None or rrset.rdtype != dns.rdatatype.TXT:
        return []
    return [b"".join(record.strings).decode(errors="replace") for record in rrset]


def cname(resolvers: Resolvers, name: str) -> str | None:
    """Where a CNAME at the name points (lower case, no final dot), or None."""
    rrset = _answer(resolvers, name, "CNAME")
    if rrset is None or rrset.rdtype != dns.rdatatype.CNAME:
        return None
    return rrset[0].target.to_text(omit_final_dot=True).lower()
