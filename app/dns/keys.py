"""The TSIG keys BIND knows besides Warren's own, and the update-policy
that confines each of them.

- A member key, named after the member's subtree (alice.<zone>.): Warren
  signs the member's records with it, and BIND lets it change only
  CNAME, TXT, MX, AAAA, SRV and CAA records strictly below that subtree.
  Whatever Warren gets wrong, BIND still refuses another member's names,
  Warren's owner markers (under _owner.<zone>) and every A record.
- An ACME key, named exactly _acme-challenge.<name>.<member>.<zone>.: a
  member hands it to certbot's dns-rfc2136 plugin, and BIND lets it change
  only the TXT records at that one name.

Each key is one fragment file in <dns dir>/keys.d (owner-only) saying
which installation made it; several Warrens may share one named (a test
run beside the real one), and each only ever writes or removes its own
fragments. assemble() joins them into the two files named.conf includes:
member-keys.conf (the keys) and update-policy.conf (the zone's whole
update-policy, Warren's own rules first); apply() then has named re-read
its configuration (rndc reconfig). `python -m app.dns.keys` assembles
without reloading (dns/named.sh runs it before it starts named).
"""
import grp
import json
import os
import re
import subprocess
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import BackendUnavailable, Conflict, DnsError
from ..locks import held

MEMBER_TYPES = ("CNAME", "TXT", "MX", "AAAA", "SRV", "CAA")
KINDS = ("member", "acme")
ALGORITHM = "hmac-sha256"
KEY_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)+\.")
SECRET = re.compile(r"[A-Za-z0-9+/]{20,}={0,2}")
KEYS_FILE, POLICY_FILE, FRAGMENTS = "member-keys.conf", "update-policy.conf", "keys.d"


@dataclass(frozen=True)
class Key:
    """One TSIG key BIND should know: its absolute name (with the final
    dot), its kind, its secret (base64) and the installation that made it."""
    name: str
    kind: str
    secret: str
    installation: str

    def check(self) -> "Key":
        if not KEY_NAME.fullmatch(self.name) or self.kind not in KINDS \
                or not SECRET.fullmatch(self.secret):
            raise DnsError(f"not a usable key: {self.name!r} ({self.kind})")
        return self

    def rule(self) -> str:
        """The key's one line in the zone's update-policy."""
        if self.kind == "member":
            return f'grant "{self.name}" wildcard *.{self.name} {" ".join(MEMBER_TYPES)};'
        return f'grant "{self.name}" name {self.name} TXT;'


def member_key_name(username: str, zone_name: str) -> str:
    """The key of a member's subtree: alice.<zone>."""
    return f"{username}.{zone_name}."


def acme_key_name(fqdn: str) -> str:
    """The key certbot uses for one name: _acme-challenge.<fqdn>."""
    return f"_acme-challenge.{fqdn}."


def new_secret() -> str:
    import base64
    import secrets
    return base64.b64encode(secrets.token_bytes(32)).decode()


def policy_text(zone: str, warren_key: str, keys: list[Key]) -> str:
    """The zone's update-policy: the first rule that matches decides."""
    lines = [
        "// Written by Warren (app/dns/keys.py); do not edit: the next change rewrites it.",
        "update-policy {",
        "    // Warren's own key: the owner markers under _owner, and the A and",
        "    // AAAA records of names below the zone; never the apex (SOA, NS,",
        "    // DNSKEY) nor the name server's own name.",
        f"    deny {warren_key} subdomain ns1.{zone}.;",
        f"    deny {warren_key} subdomain _owner.{zone}. A AAAA;",
        f"    grant {warren_key} subdomain _owner.{zone}. TXT;",
        f"    grant {warren_key} wildcard *.{zone}. A AAAA;",
        "    // Members' keys (their subtree, their record types) and ACME keys",
        "    // (TXT at one name each).",
        *(f"    {key.rule()}" for key in keys),
        "};",
    ]
    return "\n".join(lines) + "\n"


def keys_text(keys: list[Key]) -> str:
    return "// Written by Warren (app/dns/keys.py); do not edit.\n" + "".join(
        f'key "{key.name}" {{\n    algorithm {ALGORITHM};\n    secret "{key.secret}";\n}};\n'
        for key in keys)


def _folder(settings) -> Path:
    return Path(settings.dns_dir)


@contextmanager
def _locked(settings):
    """One writer of the key files at a time, across processes."""
    folder = _folder(settings)
    (folder / FRAGMENTS).mkdir(mode=0o700, parents=True, exist_ok=True)
    with held(folder / "keys.lock"):
        yield folder


def _write(path: Path, text: str, mode: int, group_bind: bool = False) -> bool:
    """Write a file atomically unless it already says that; True if written."""
    if path.exists() and path.read_text() == text:
        return False
    temporary = path.with_name(path.name + ".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    os.chmod(temporary, mode)
    if group_bind and os.geteuid() == 0:
        try:
            os.chown(temporary, 0, grp.getgrnam("bind").gr_gid)
        except KeyError:
            pass
    os.replace(temporary, path)
    return True


def fragments(settings) -> list[Key]:
    """Every key in keys.d, of every installation, by name."""
    found = []
    for path in sorted((_folder(settings) / FRAGMENTS).glob("*.json")):
        try:
            found.append(Key(**json.loads(path.read_text())).check())
        except (ValueError, TypeError, DnsError):
            continue  # a broken fragment is left out rather than breaking named
    return found


def assemble(settings) -> bool:
    """Write member-keys.conf and update-policy.conf from the fragments;
    True when either changed. The caller holds the lock (or is named.sh
    before named starts)."""
    from .zone import read_key_file
    keys = fragments(settings)
    warren_key = read_key_file(settings.dns_key_file)[0]
    folder = _folder(settings)
    changed = _write(folder / KEYS_FILE, keys_text(keys), 0o640, group_bind=True)
    changed |= _write(folder / POLICY_FILE, policy_text(settings.dns_zone, warren_key, keys),
                      0o640, group_bind=True)
    return changed


def reconfigure(settings) -> None:
    """Have named read its configuration again (new or removed keys)."""
    command = ["rndc", "-k", f"{settings.dns_dir}/rndc.key", "-s", "127.0.0.1",
               "-p", str(settings.dns_control_port), "reconfig"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendUnavailable(f"rndc reconfig failed: {error}") from error
    if result.returncode != 0:
        raise BackendUnavailable("named did not take the new keys (rndc reconfig: "
                                 f"{(result.stderr or result.stdout).strip()[:300]})")


def _path(folder: Path, name: str) -> Path:
    return folder / FRAGMENTS / f"{name}json"


def apply(settings, installation: str, wanted: list[Key]) -> bool:
    """Make this installation's fragments exactly `wanted` (other
    installations' are left alone; a name another installation holds is a
    Conflict), then reload named if anything changed. True when it did."""
    with _locked(settings) as folder:
        present = {key.name: key for key in fragments(settings)}
        changed = False
        for key in wanted:
            key.check()
            other = present.get(key.name)
            if other is not None and other.installation != installation:
                raise Conflict(f"the DNS key {key.name} belongs to another Warren on this "
                               "name server")
            changed |= _write(_path(folder, key.name), json.dumps(asdict(key), sort_keys=True), 0o600)
        names = {key.name for key in wanted}
        for key in present.values():
            if key.installation == installation and key.name not in names:
                _path(folder, key.name).unlink(missing_ok=True)
                changed = True
        changed |= assemble(settings)
        owed = folder / "reload-owed"  # a reload that failed (named down) is owed still
        if changed or owed.exists():
            owed.touch()
            reconfigure(settings)
            owed.unlink(missing_ok=True)
        return changed


if __name__ == "__main__":  # dns/named.sh: write the include files before named starts
    from ..config import load_settings
    assemble(load_settings())
