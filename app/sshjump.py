"""SSH from outside through one public address: OpenSSH's own jump host.

Warren's sshd (ssh/sshd.sh) lets members in as one host account with no
shell and no files. sshd asks `python -m app.sshjump FINGERPRINT` (its
AuthorizedKeysCommand) which keys it may accept, at every connection, so a
key added, removed, or belonging to a member who is disabled takes effect
at once. Each key may only open TCP connections to port 22 of its member's
own ready instances (`permitopen`), nothing else: no shell, no pty, no
agent or X11 forwarding, no listening ports (`restrict`). Members then use
`ProxyJump`, which needs no more than that.
"""
import sys

from .statuses import READY

# What a key may do on the jump host: forward to the listed addresses only.
OPTIONS = 'restrict,port-forwarding,command="/bin/false"'


def authorized_keys(db, fingerprint: str) -> list[str]:
    """authorized_keys lines for the key with this fingerprint: one per
    enabled member who saved it, allowed to reach their ready instances."""
    lines = []
    for user_id, public_key in db.execute(
            "SELECT k.user_id, k.public_key FROM ssh_keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.fingerprint = ? AND u.disabled = 0 AND u.deleting = 0 ORDER BY u.id",
            [fingerprint]).fetchall():
        addresses = [address for row in db.execute(
            "SELECT ipv4, ipv6 FROM instances WHERE user_id = ? AND status = ? AND ipv4 IS NOT NULL "
            "ORDER BY id", [user_id, READY]) for address in row if address]
        if addresses:
            # OpenSSH writes an IPv6 address in brackets: [2001:db8::5]:22.
            permits = ",".join(f'permitopen="{address}:22"' if ":" not in address
                               else f'permitopen="[{address}]:22"' for address in addresses)
            lines.append(f"{OPTIONS},{permits} {public_key}")
    return lines


def jump_host(settings) -> str:
    """user@host:port members jump through."""
    host = settings.ssh_public_name or settings.ssh_address
    return f"{settings.ssh_user}@{host}:{settings.ssh_port}"


def config_snippet(instance: dict, settings) -> str:
    """What a member pastes into ~/.ssh/config to reach an instance by name.

    Through the jump host by its IPv4 address, which works in every network
    mode; with IPv6 on, a comment names the IPv6 address (reached directly
    in routed mode, or as HostName through the jump host too)."""
    ipv6 = instance.get("ipv6") if settings.network_ipv6_prefix else None
    return (f"Host {instance['fqdn']}\n"
            + (f"    # IPv6: {ipv6}\n" if ipv6 else "")
            + f"    HostName {instance['ipv4']}\n"
            f"    HostKeyAlias {instance['fqdn']}\n"
            f"    User root\n"
            f"    ProxyJump {jump_host(settings)}\n")


def main(argv: list[str]) -> int:
    """AuthorizedKeysCommand: print the lines for the offered key's fingerprint.

    Reads the database read-only and never fails loudly: sshd treats any
    output as keys, so errors go to stderr (sshd's log) and nothing to stdout."""
    from .config import load_settings
    from .store import connect_readonly
    if len(argv) != 2:
        print("usage: python -m app.sshjump FINGERPRINT", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        db = connect_readonly(settings.database)
        try:
            lines = authorized_keys(db, argv[1])
        finally:
            db.close()
    except Exception as error:  # sshd logs stderr; it must get no keys from a failure
        print(f"warren: no keys: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
