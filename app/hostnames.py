"""Host names members bring from outside (www.their-domain.org): what a
valid one looks like, and the public suffixes (org, co.uk, github.io) that
nobody owns as a whole.

The suffixes come from the Public Suffix List as Debian's `publicsuffix`
package installs it; without that file only top-level domains count as
public suffixes. Only the ASCII form of a name is taken (xn-- labels for
internationalised names), as DNS carries it.
"""
import functools
import ipaddress
import re
from pathlib import Path

from .units import shown

LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MAX_LENGTH = 253
PUBLIC_SUFFIX_LIST = Path("/usr/share/publicsuffix/public_suffix_list.dat")
# Top-level names that never lead to a public DNS answer (RFC 6761, 6762,
# 7686, 8375 and ICANN's .internal): nobody can prove anything with them.
NOT_PUBLIC = ("localhost", "local", "invalid", "arpa", "onion", "internal", "alt")
EXAMPLE = "such as www.example.org"


def normalised(text: str | None) -> str:
    """A host name as Warren stores it: trimmed, lower case, no final dot."""
    return (text or "").strip().lower().rstrip(".")


def _is_ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _label_problem(label: str) -> str | None:
    if not label:
        return "It has an empty label (two dots in a row, or a dot at the start)."
    if len(label) > 63:
        return f"The label {shown(label)!r} is longer than 63 characters."
    if not LABEL.fullmatch(label):
        return (f"The label {shown(label)!r} may hold only letters, digits and inner hyphens "
                "(no underscores, spaces or other signs).")
    if label[2:4] == "--" and not label.startswith("xn--"):
        return (f"The label {shown(label)!r} has -- in third and fourth place, which is "
                "reserved for xn-- (internationalised) labels.")
    return None


def problems(hostname: str) -> list[str]:
    """Everything wrong with the form of a (normalised) host name; empty
    when it is a valid name of the public DNS."""
    if not hostname:
        return [f"Give a host name, {EXAMPLE}."]
    if not hostname.isascii():
        return ["Write an internationalised name in its ASCII form (labels starting with "
                "xn--), as your DNS provider shows it."]
    if _is_ip_literal(hostname):
        return [f"{shown(hostname)!r} is an IP address; give a host name, {EXAMPLE}."]
    if "*" in hostname:
        return ["Wildcards are not supported: add each host name on its own."]
    found = []
    if len(hostname) > MAX_LENGTH:
        found.append(f"A host name has at most {MAX_LENGTH} characters; this one has "
                     f"{len(hostname)}.")
    labels = hostname.split(".")
    if len(labels) < 2:
        found.append(f"Give a full host name with its domain, {EXAMPLE}.")
    found += list(dict.fromkeys(problem for problem in map(_label_problem, labels) if problem))
    top = labels[-1]
    if len(labels) > 1 and top.isdigit():
        found.append("The last label cannot be all digits.")
    elif len(labels) > 1 and top in NOT_PUBLIC:
        found.append(f".{top} names are not in the public DNS.")
    return found


def inside(hostname: str, domain: str) -> bool:
    """Whether hostname is domain itself or a name below it."""
    domain = normalised(domain)
    return bool(domain) and (hostname == domain or hostname.endswith("." + domain))


@functools.cache
def _suffix_rules() -> tuple[frozenset, frozenset, frozenset]:
    """(rules, wildcard parents, exceptions) of the Public Suffix List, in ASCII."""
    rules, wildcards, exceptions = set(), set(), set()
    try:
        text = PUBLIC_SUFFIX_LIST.read_text(encoding="utf-8")
    except OSError:
        return frozenset(), frozenset(), frozenset()
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("//"):
            continue
        rule = words[0].lower()
        try:
            rule = ".".join(label if label in ("*", "!") or label.isascii()
                            else label.encode("idna").decode() for label in rule.split("."))
        except UnicodeError:  # a label Python's IDNA 2003 codec cannot write: no member name has it
            continue
        if rule.startswith("!"):
            exceptions.add(rule[1:])
        elif rule.startswith("*."):
            wildcards.add(rule[2:])
        else:
            rules.add(rule)
    return frozenset(rules), frozenset(wildcards), frozenset(exceptions)


def is_public_suffix(hostname: str) -> bool:
    """Whether the name is a public suffix itself (org, co.uk, github.io):
    names are registered below it, and nobody holds it as a whole."""
    rules, wildcards, exceptions = _suffix_rules()
    if hostname in exceptions:
        return False
    if hostname in rules or hostname.partition(".")[2] in wildcards:
        return True
    return "." not in hostname  # the list's default rule: every top-level domain
