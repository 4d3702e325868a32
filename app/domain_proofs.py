"""The proof that a custom domain is a member's: a DNS record only whoever
runs the domain's DNS can publish, one of

- TXT at _warren-challenge.<host name> saying "warren-verify=<token>", the
  token random for each claim (so an old record of someone else's claim
  proves nothing);
- CNAME at the host name itself, pointing to one of the member's own
  instances' names in Warren's zone (which only they have).

look() asks the public DNS (app/dns/public.py) and says what it found, in
words the member can act on.
"""
from dataclasses import dataclass

from . import hostnames
from .dns import public as dnslookup
from .errors import LookupFailed

CHALLENGE_LABEL = "_warren-challenge"
TXT_PREFIX = "warren-verify="


@dataclass(frozen=True)
class Finding:
    """What one look found: the proof's kind ('txt', 'cname') or None, and
    what was seen, for the member."""
    proof: str | None
    note: str


def challenge_name(hostname: str) -> str:
    return f"{CHALLENGE_LABEL}.{hostname}"


def challenge_value(token: str) -> str:
    return f"{TXT_PREFIX}{token}"


def instructions(domain: dict, instance_fqdn: str) -> dict:
    """The two records a member may publish, as zone file lines and fields
    (apex: the name is a registered domain itself, where DNS allows no CNAME)."""
    txt_name, txt_value = challenge_name(domain["hostname"]), challenge_value(domain["token"])
    apex = hostnames.is_public_suffix(domain["hostname"].partition(".")[2])
    return {"txt_name": txt_name, "txt_value": txt_value, "apex": apex,
            "txt_line": f'{txt_name}. 300 IN TXT "{txt_value}"',
            "cname_name": domain["hostname"], "cname_target": instance_fqdn,
            "cname_line": f"{domain['hostname']}. 300 IN CNAME {instance_fqdn}."}


def _txt(resolvers, domain: dict) -> tuple[bool, str]:
    name = challenge_name(domain["hostname"])
    try:
        values = dnslookup.txt(resolvers, name)
    except LookupFailed as error:
        return False, f"TXT: {error}"
    if challenge_value(domain["token"]) in values:
        return True, f"found the TXT record at {name}"
    if not values:
        return False, f"no TXT record at {name}"
    return False, f"the TXT record at {name} does not hold {challenge_value(domain['token'])}"


def _cname(resolvers, domain: dict, targets: set[str]) -> tuple[str | None, str]:
    try:
        target = dnslookup.cname(resolvers, domain["hostname"])
    except LookupFailed as error:
        return None, f"CNAME: {error}"
    if target is None:
        return None, f"no CNAME at {domain['hostname']}"
    if target in targets:
        return target, f"found the CNAME to {target}"
    return None, f"the CNAME at {domain['hostname']} points to {target}, not to one of your instances"


def look(resolvers, domain: dict, targets: set[str]) -> Finding:
    """Look for either proof of a domain row; targets are the names in
    Warren's zone a CNAME may point to (the member's own instances)."""
    found, txt_note = _txt(resolvers, domain)
    if found:
        return Finding("txt", txt_note)
    target, cname_note = _cname(resolvers, domain, targets)
    if target:
        return Finding("cname", cname_note)
    return Finding(None, f"{txt_note}; {cname_note}")
