"""Warren's configuration: one table of keys, read from WARREN_* variables
and an optional TOML file, checked at start-up.

Every key has a default, a type and a one-line description; README.md lists
them all. A bad value, or an unknown WARREN_* variable or file key, stops
start-up with a message naming the key. The shell scripts read the same
resolved values through ``python -m app.config --shell`` so no default is
written twice.
"""
import ipaddress
import os
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

PREFIX = "WARREN_"
REPO_DIR = Path(__file__).resolve().parent.parent
LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SIZE = re.compile(r"^[1-9][0-9]*(B|KiB|MiB|GiB|TiB)$")
NETWORK_MODES = ("isolated", "nat", "routed")


def _text(value: str) -> str:
    return value


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {low}..{high}")
        return number
    return parse


def _boolean(value: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _ipv4(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


def _loopback(value: str) -> str:
    address = _ipv4(value)
    if not ipaddress.IPv4Address(address).is_loopback:
        raise ValueError(f"{address} is not a loopback address (127.0.0.0/8)")
    return address


def _gateway(value: str) -> str:
    """A bridge address with its prefix, e.g. 10.87.0.1/24."""
    try:
        interface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address/prefix like 10.87.0.1/24") from None
    if interface.ip == interface.network.network_address or interface.network.prefixlen > 29:
        raise ValueError(f"{value!r} needs a host address and a prefix of /29 or shorter")
    return str(interface)


def _zone(value: str) -> str:
    zone = value.strip().rstrip(".").lower()
    labels = zone.split(".")
    if len(labels) < 2 or not all(LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a DNS zone name like vm.example.org")
    return zone


def _url(value: str) -> str:
    """Empty, or an https:// URL."""
    value = value.strip()
    if value and not re.fullmatch(r"https://[^\s/]+(/\S*)?", value):
        raise ValueError(f"{value!r} is not an https:// URL")
    return value


def _email(value: str) -> str:
    value = value.strip()
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _hostname(value: str) -> str:
    """Empty, or a DNS name like warren.example.org."""
    if not value.strip():
        return ""
    try:
        return _zone(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a host name like warren.example.org") from None


def _label(value: str) -> str:
    if not LABEL.match(value):
        raise ValueError(f"{value!r} must be lower-case letters, digits and inner hyphens")
    return value


def _size(value: str) -> str:
    if not SIZE.match(value):
        raise ValueError(f"{value!r} is not a size like 20GiB")
    return value


def _ipv6_prefix(value: str) -> str:
    """Empty (IPv6 off) or one /64 for the bridge, e.g. 2001:db8:0:1::/64."""
    value = value.strip()
    if not value:
        return ""
    try:
        network = ipaddress.IPv6Network(value)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError):
        raise ValueError(f"{value!r} is not an IPv6 prefix like 2001:db8:0:1::/64 "
                         "(leave it empty to keep IPv6 off)") from None
    except ValueError:
        raise ValueError(f"{value!r} has bits set after the prefix length: give the "
                         f"network itself, e.g. {ipaddress.IPv6Network(value, strict=False)}") from None
    if network.prefixlen != 64:
        raise ValueError(f"{value!r} is a /{network.prefixlen}; give one /64 (DHCPv6 and router "
                         "advertisements on a bridge need a /64; from a larger routed prefix, "
                         "pick one /64 of it)")
    if network.is_link_local or network.is_multicast or network.is_loopback \
            or network.is_unspecified or network.subnet_of(ipaddress.IPv6Network("::ffff:0:0/96")):
        raise ValueError(f"{value!r} is not a unicast prefix an instance can be reached at "
                         "(use a global or unique-local /64)")
    return str(network)


def _multicast_ipv4(value: str) -> str:
    address = _ipv4(value)
    if not ipaddress.IPv4Address(address).is_multicast:
        raise ValueError(f"{value!r} is not an IPv4 multicast group (use one in 239.0.0.0/8)")
    return address


INTERFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _optional_interface(value: str) -> str:
    if value and not INTERFACE.match(value):
        raise ValueError(f"{value!r} is not a network interface name (up to 15 letters, digits, . _ -)")
    return value


def _network_mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in NETWORK_MODES:
        raise ValueError(f"{value!r} is not a network mode (use {', '.join(NETWORK_MODES)})")
    return mode


BACKUP_COMPRESSIONS = ("zstd", "none")


def _compression(value: str) -> str:
    algorithm = value.strip().lower()
    if algorithm not in BACKUP_COMPRESSIONS:
        raise ValueError(f"{value!r} is not a compression Warren offers for backups (use "
                         f"{', '.join(BACKUP_COMPRESSIONS)})")
    return algorithm


def _optional_ipv4(value: str) -> str:
    return _ipv4(value) if value.strip() else ""


@dataclass(frozen=True)
class PortRange:
    """Ports low..high, both included; written 20000-29999."""
    low: int
    high: int

    def __contains__(self, port: int) -> bool:
        return self.low <= port <= self.high

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


def _port_range(value: str) -> PortRange:
    """Two ports like 20000-29999 (unprivileged: 1024 or above)."""
    match = re.fullmatch(r"\s*([0-9]{1,5})\s*-\s*([0-9]{1,5})\s*", value)
    if not match:
        raise ValueError(f"{value!r} is not a port range like 20000-29999")
    low, high = int(match[1]), int(match[2])
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"{value!r} must run from a lower to a higher port within 1024..65535")
    return PortRange(low, high)


def _endpoints(value: str) -> tuple[str, ...]:
    """Space-separated IPv4 addresses with an optional port (default 53),
    written back as address:port."""
    found = []
    for word in value.split():
        address, _, port = word.partition(":")
        try:
            found.append(f"{_ipv4(address)}:{_integer(1, 65535)(port or '53')}")
        except ValueError as error:
            raise ValueError(f"{word!r}: {error} (use address or address:port)") from None
    return tuple(found)


def nameserver(text: str) -> tuple[str, int]:
    """(address, port) of a resolver written 192.0.2.53, 192.0.2.53:5300,
    2001:db8::53 or [2001:db8::53]:5300 (port 53 when none is given)."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::([0-9]{1,5}))?|([0-9.]+)(?::([0-9]{1,5}))?|"
                         r"([0-9a-fA-F:]*:[0-9a-fA-F:.]*)", text)
    if not match:
        raise ValueError(f"{text!r} is not a resolver address like 192.0.2.53 or 192.0.2.53:5300")
    address = match[1] or match[3] or match[5]
    port = int(match[2] or match[4] or 53)
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise ValueError(f"{text!r} is not a resolver address like 192.0.2.53 or "
                         "[2001:db8::53]:5300") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r} has a port outside 1..65535")
    return address, port


def _resolvers(value: str) -> tuple[str, ...]:
    """Space-separated resolver addresses, each checked by nameserver()."""
    for word in value.split():
        nameserver(word)
    return tuple(value.split())


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _networks(value: str) -> tuple[str, ...]:
    """Space-separated addresses or prefixes, e.g. 127.0.0.1 10.0.0.0/8."""
    found = []
    for word in value.split():
        try:
            found.append(str(ipaddress.ip_network(word, strict=False)))
        except ValueError:
            raise ValueError(f"{word!r} is not an IP address or prefix") from None
    return tuple(found)


@dataclass(frozen=True)
class Key:
    name: str
    default: str
    parse: Callable[[str], Any]
    help: str


# Defaults may refer to other keys as {data_dir} or {repo}; they are expanded
# after the referenced key is resolved, so order matters.
KEYS = (
    Key("data_dir", "/var/lib/warren", _text,
        "Warren's state: database, secret key, DNS zone and keys, image cache."),
    Key("log_dir", "/var/log/warren", _text,
        "Logs: app.log and access.log (gunicorn), lxd.log, named.log."),
    Key("database", "{data_dir}/warren.sqlite3", _text, "The SQLite database file."),
    Key("secret_key_file", "{data_dir}/secret-key", _text,
        "File holding the key that signs cookies and CSRF tokens; created by bin/up."),
    Key("secret_key", "", _text, "The signing key itself; overrides secret_key_file when set."),
    Key("listen_host", "127.0.0.1", _loopback, "Address gunicorn listens on."),
    Key("listen_port", "8080", _integer(1024, 65535), "Port gunicorn listens on."),
    Key("workers", "4", _integer(1, 64), "Number of gunicorn worker processes."),
    Key("web_threads", "32", _integer(2, 1000),
        "Threads per gunicorn worker: requests one worker serves at once, open consoles included."),
    Key("session_hours", "12", _integer(1, 24 * 90), "How long a login session lasts."),
    Key("cookie_secure", "false", _boolean,
        "Mark cookies Secure; set to true when Warren is served over TLS."),
    Key("admin_user", "admin", _label, "Name of the first admin account bin/up creates."),
    Key("admin_password", "", _text,
        "Its password; when empty one is generated and printed once."),
    Key("lxd_socket", "/var/lib/lxd/unix.socket", _text,
        "The LXD daemon's unix socket (used when lxd_url is empty)."),
    Key("lxd_url", "", _url,
        "A cluster member's HTTPS address (https://10.0.0.11:8443): Warren then talks to the "
        "LXD cluster over HTTPS with the three files below instead of the unix socket."),
    Key("lxd_cert", "{data_dir}/lxd-client.crt", _text,
        "Warren's client certificate for lxd_url (the cluster must trust it)."),
    Key("lxd_key", "{data_dir}/lxd-client.key", _text, "The key of that certificate."),
    Key("lxd_server_cert", "{data_dir}/lxd-cluster.crt", _text,
        "The cluster's certificate, pinned: the only one Warren accepts from lxd_url."),
    Key("lxd_storage_pool", "warren", _label, "LXD storage pool for instances (btrfs, loop file)."),
    Key("lxd_pool_size", "20GiB", _size, "Size of that pool's loop file when it is created."),
    Key("lxd_network", "warrenbr0", _label, "Managed LXD bridge for member instances (outbound NAT only in nat mode)."),
    Key("network_address", "10.87.0.1/24", _gateway,
        "The bridge's address and prefix; instance addresses come from this range."),
    Key("network_mode", "isolated", _network_mode,
        "How instances meet the Internet: isolated (NAT off), nat (outbound IPv4 masqueraded "
        "to the host's address) or routed (the upstream routes the bridge's prefix to this host)."),
    Key("network_ipv6_prefix", "", _ipv6_prefix,
        "The bridge's IPv6 /64 (e.g. 2001:db8:0:1::/64), beside any network mode: each instance "
        "gets a static address in it and an AAAA record; empty keeps IPv6 off."),
    Key("cluster_vxlan_group", "239.0.0.1", _multicast_ipv4,
        "On an LXD cluster: the multicast group of the VXLAN that joins every member's bridge "
        "into one segment (LXD's default group)."),
    Key("cluster_vxlan_interface", "", _optional_interface,
        "On an LXD cluster: the members' interface the VXLAN runs over (the same name on every "
        "member); empty uses each member's default-route interface."),
    Key("cluster_vxlan_id", "1", _integer(1, 16777215),
        "On an LXD cluster: the VXLAN's network identifier (VNI)."),
    Key("images", "debian-12 busybox", _words, "Images bin/up builds and imports (folders of images/)."),
    Key("vm_images", "debian-12-vm vm-tiny", _words,
        "VM images bin/up builds and imports when LXD can run VMs."),
    Key("image_cache", "{data_dir}/images", _text, "Where built image tarballs are kept."),
    Key("debian_mirror", "", _text,
        "Debian mirror for image builds; empty means the host's apt mirror."),
    Key("dns_zone", "vm.example.test", _zone, "The delegated zone instance names live under."),
    Key("dns_server", "127.0.0.1", _loopback, "Address of the zone's authoritative server (named)."),
    Key("dns_port", "5353", _integer(1024, 65535), "Port named answers DNS on."),
    Key("dns_control_port", "5354", _integer(1024, 65535), "Port of named's rndc control channel."),
    Key("dns_dir", "{data_dir}/dns", _text, "named's working directory: config, zone, journal, keys."),
    Key("dns_key_name", "warren", _label, "Name of the TSIG key Warren signs updates with."),
    Key("dns_key_file", "{dns_dir}/{dns_key_name}.key", _text, "The TSIG key file (generated on first run)."),
    Key("dns_ttl", "300", _integer(0, 86400), "TTL of the records Warren publishes."),
    Key("profiles_dir", "{repo}/profiles", _text, "Folder of profile YAML files."),
    Key("worker_socket", "{data_dir}/worker.sock", _text,
        "Unix socket the web app uses to wake the provisioning worker."),
    Key("worker_threads", "8", _integer(1, 32),
        "Jobs the worker runs at the same time, at most; how many of them are builds is measured as it works."),
    Key("event_max_instances", "150", _integer(1, 5000),
        "Instances one event may have in all (teams x machines); more is refused when the event is made."),
    Key("event_memory_share", "300", _integer(1, 1000),
        "Percent of the host's memory an event's machines' memory limits may add up to (limits are ceilings: 300 lets them overcommit 3 times)."),
    Key("worker_poll_seconds", "2", _integer(1, 60),
        "How often the worker looks for jobs when nobody wakes it."),
    Key("reconcile_seconds", "60", _integer(1, 86400),
        "How often the worker compares the store, LXD and DNS and repairs drift."),
    Key("trusted_proxies", "", _networks,
        "Reverse proxies (addresses or prefixes, space-separated) whose X-Forwarded-For is believed; empty believes none."),
    Key("member_consoles", "2", _integer(1, 50),
        "Consoles one member may have open at once; each holds a web server thread while open."),
    Key("member_job_limit", "10", _integer(1, 1000),
        "Start, stop and restart requests one member may have waiting at once; more are refused until some run."),
    Key("job_retention_days", "14", _integer(1, 3650), "Finished jobs older than this are deleted."),
    Key("audit_retention_days", "400", _integer(1, 36500), "Audit entries older than this are deleted."),
    Key("events_per_instance", "200", _integer(20, 100000),
        "Progress lines kept per instance; the oldest go first."),
    Key("ssh_address", "127.0.0.1", _ipv4,
        "Address Warren's SSH jump server listens on: the co-op's public address in production."),
    Key("ssh_port", "2222", _integer(1, 65535), "Port of the SSH jump server."),
    Key("ssh_public_name", "", _text,
        "Host name members put in their ssh config to reach the jump server; empty means ssh_address."),
    Key("ssh_user", "warren-jump", _label, "The host account members jump through (no shell, no files)."),
    Key("ssh_dir", "{data_dir}/ssh", _text,
        "The jump server's config, host keys and key lookup command (root-owned, as sshd requires)."),
    Key("forward_address", "", _optional_ipv4,
        "Public address port forwards listen on; empty means ssh_address. Forwards are off "
        "while that is a loopback address."),
    Key("forward_ports", "20000-29999", _port_range,
        "The public ports members may forward (TCP and UDP), like 20000-29999."),
    Key("ingress_address", "", _optional_ipv4,
        "Public address the ingress proxy (HAProxy) serves websites on; empty means "
        "forward_address, then ssh_address. The proxy is off while that is a loopback address."),
    Key("ingress_http_port", "80", _integer(1, 65535), "Port of the ingress proxy's plain HTTP."),
    Key("ingress_https_port", "443", _integer(1, 65535), "Port of the ingress proxy's HTTPS."),
    Key("ingress_dir", "{data_dir}/ingress", _text,
        "The ingress proxy's config, route maps, runtime socket, certificates and ACME account."),
    Key("acme_directory", "", _url,
        "ACME directory URL certificates come from (e.g. Let's Encrypt's "
        "https://acme-v02.api.letsencrypt.org/directory); empty: no automatic certificates."),
    Key("acme_email", "", _email, "Contact address of the ACME account (expiry notices); may be empty."),
    Key("acme_ca_file", "", _text,
        "Extra CA certificate (PEM) to trust for the ACME directory's HTTPS, e.g. a test CA; "
        "empty: the system's CAs."),
    Key("public_hostname", "", _hostname,
        "Host name Warren's own web UI is served at through the ingress proxy, with an automatic "
        "certificate; empty: not served there."),
    Key("dns_public_address", "", _optional_ipv4,
        "Public address named also answers on (port 53) for the zone; empty: loopback only."),
    Key("dns_secondaries", "", _endpoints,
        "Secondary name servers (address[:port], space-separated) that get NOTIFY and a "
        "TSIG-signed zone transfer."),
    Key("public_resolvers", "", _resolvers,
        "Recursive resolvers (address or address:port, space-separated) Warren asks for the "
        "proofs of members' custom domains; empty means the system's (/etc/resolv.conf)."),
    Key("domain_lookup_seconds", "3", _integer(1, 30),
        "How long one lookup of a custom domain's proof may take, all resolvers and retries included."),
    Key("domain_recheck_minutes", "60", _integer(1, 10080),
        "How often the worker looks again at the proof of a verified custom domain."),
    Key("domain_grace_hours", "72", _integer(1, 2160),
        "How long a verified custom domain's proof may be missing before the domain lapses (no longer routed)."),
    Key("api_rate_per_minute", "300", _integer(1, 1_000_000),
        "Requests one API token may make per minute; more get 429 until the next minute."),
    Key("api_idempotency_hours", "24", _integer(1, 720),
        "How long the API remembers an Idempotency-Key and the answer it gave."),
    Key("backup_dir", "{data_dir}/backups", _text,
        "Where backups of instances and of Warren's own state are kept (owner-only); best on "
        "another disk than the data directory."),
    Key("backup_interval_hours", "24", _integer(0, 8760),
        "How often every instance, and Warren's own state, is backed up; 0 turns the schedule off."),
    Key("backup_keep_daily", "7", _integer(1, 366),
        "Backups kept per instance: the newest of each of this many last days."),
    Key("backup_keep_weekly", "4", _integer(0, 520),
        "Besides, the newest of each of this many last weeks."),
    Key("backup_compression", "zstd", _compression,
        "How Warren compresses instance backups as it writes them: zstd or none (none suits an "
        "off-host copy, which compresses and deduplicates by itself)."),
    Key("backup_offsite_repository", "", _text,
        "restic repository the backup directory is copied to after new backups (a path on another "
        "disk or a mounted remote; deduplicated and encrypted); empty: no off-host copy."),
    Key("backup_offsite_password_file", "{data_dir}/offsite-password", _text,
        "File holding the password of that restic repository (made on first use; keep a copy "
        "off the host, the repository cannot be read without it)."),
    Key("fault_at", "", _text,
        "Test harness only: the worker kills itself (SIGKILL) at this step. Leave empty."),
)
# Read by the scripts only (bin/test and bin/bench: their own bridge; the VM
# test daemon's tests/vmhost/vmhost.sh), not by the app.
SCRIPT_ONLY = {PREFIX + name for name in (
    "CONFIG", "TEST_NETWORK", "TEST_NETWORK_ADDRESS", "TEST_WORKERS",
    "VMHOST_DIR", "VMHOST_NETWORK", "VMHOST_ADDRESS", "VMHOST_DHCP_RANGE")}
KNOWN = {PREFIX + key.name.upper() for key in KEYS} | SCRIPT_ONLY


class Settings(dict):
    """Resolved configuration; keys are also readable as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def current_settings() -> Settings:
    """The running app's settings (inside an app context)."""
    from flask import current_app
    return current_app.config["WARREN"]


def _read_file(path: str) -> dict[str, str]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"{PREFIX}CONFIG: cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{PREFIX}CONFIG: {path} is not valid TOML: {error}") from None
    names = {key.name for key in KEYS}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})")
    return {name: str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in data.items()}


def load_settings(overrides: dict | None = None, environ: dict | None = None) -> Settings:
    """Resolve every key from overrides, WARREN_* variables, the file, then defaults."""
    environ = os.environ if environ is None else environ
    unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in KNOWN)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (see README.md for the list)")
    from_file = _read_file(environ[PREFIX + "CONFIG"]) if environ.get(PREFIX + "CONFIG") else {}
    overrides = {name.lower(): value for name, value in (overrides or {}).items()}
    settings = Settings()
    for key in KEYS:
        env_name = PREFIX + key.name.upper()
        if key.name in overrides:
            raw, origin = overrides[key.name], key.name
        elif env_name in environ:
            raw, origin = environ[env_name], env_name
        elif key.name in from_file:
            raw, origin = from_file[key.name], f"{key.name} in {environ[PREFIX + 'CONFIG']}"
        else:
            raw, origin = key.default.format(repo=REPO_DIR, **settings), env_name
        if not isinstance(raw, str):
            settings[key.name] = raw  # already typed (tests pass Python values)
            continue
        try:
            settings[key.name] = key.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{origin}: {error}") from None
    unexpected = sorted(set(overrides) - {key.name for key in KEYS})
    if unexpected:
        raise ConfigError(f"{unexpected[0]}: unknown setting")
    return settings


def read_secret_key(settings: Settings) -> str:
    """The cookie signing key, from secret_key or the file bin/up creates."""
    if settings.secret_key:
        return settings.secret_key
    try:
        key = Path(settings.secret_key_file).read_text().strip()
    except OSError:
        raise ConfigError(f"{PREFIX}SECRET_KEY_FILE: cannot read {settings.secret_key_file} "
                          f"(run bin/up, or set {PREFIX}SECRET_KEY)") from None
    if len(key) < 32:
        raise ConfigError(f"{PREFIX}SECRET_KEY_FILE: {settings.secret_key_file} holds a key "
                          "shorter than 32 characters")
    return key


def shell_exports(settings: Settings) -> str:
    """The resolved settings as shell assignments for the setup scripts."""
    lines = []
    for key in KEYS:
        value = settings[key.name]
        if isinstance(value, tuple):
            value = " ".join(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        lines.append(f"export {PREFIX}{key.name.upper()}={shlex.quote(str(value))}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the resolved configuration (--shell for the scripts)."""
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"warren: configuration error: {error}", file=sys.stderr)
        return 2
    if argv[1:] == ["--shell"]:
        print(shell_exports(settings))
    else:
        for key in KEYS:
            shown = "(set)" if key.name in ("secret_key", "admin_password") and settings[key.name] \
                else settings[key.name]
            print(f"{PREFIX}{key.name.upper()} = {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
