"""The ingress proxy's routes: which host name goes where, and sync(),
which makes the proxy (app/haproxy.py) serve exactly that.

The desired state is one function, routes(pairs, settings): from
(host name, instance) pairs, where the instance row carries its site's
mode and port, it makes the routes of terminating sites (host -> the
instance's address and HTTP port), of passthrough sites (host -> the
instance's address, ports 443 and 80) and Warren's own host name. Both the
maps and the certificates (app/certificates.py) follow it. Today the pairs
are every published site under its instance's DNS name (site_pairs);
verified custom domains are more pairs for the same function.

The rows are what should be; sync() runs as a worker job after every
change and as a periodic pass (so a restarted or hand-edited proxy is put
right), and writes the files the proxy reads when it starts as well.
"""
import ipaddress
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from . import acme_client, domains, forwards, haproxy
from .statuses import READY

log = logging.getLogger(__name__)
TERMINATE, PASSTHROUGH = "terminate", "passthrough"
MODES = (TERMINATE, PASSTHROUGH)
_sync_lock = threading.Lock()  # one sync at a time in this process (the worker)
_challenge_lock = threading.Lock()


@dataclass(frozen=True)
class Route:
    """Where the proxy sends one host name. For terminate, port is the
    instance's HTTP port; passthrough always goes to 443 (and 80)."""
    hostname: str
    mode: str
    address: str
    port: int
    instance_id: int | None  # None: Warren itself


@dataclass(frozen=True)
class Paths:
    """The files the proxy reads (ingress/haproxy.cfg.in names the same)."""
    socket: str
    sites_map: str
    passthrough_map: str
    challenges_map: str
    certs: str
    crt_list: str
    account_key: str


def paths(settings) -> Paths:
    """Where the proxy's files live under WARREN_INGRESS_DIR."""
    base = Path(settings.ingress_dir)
    return Paths(socket=str(base / "haproxy.sock"), sites_map=str(base / "sites.map"),
                 passthrough_map=str(base / "passthrough.map"),
                 challenges_map=str(base / "challenges.map"), certs=str(base / "certs"),
                 crt_list=str(base / "certs" / "sites.crt-list"),
                 account_key=str(base / "acme" / "account.pem"))


def certificate_path(settings, hostname: str) -> str:
    """The file holding a host name's chain and key (owner-only)."""
    return str(Path(paths(settings).certs) / f"{hostname}.pem")


def public_address(settings) -> str | None:
    """The address the proxy serves on, or None while it is off (no
    public address configured yet: it would be a loopback one). Without
    an ingress address of its own, the port forwards' public address."""
    address = settings.ingress_address
    if not address:
        return forwards.public_address(settings)
    return None if ipaddress.ip_address(address).is_loopback else address


def site_pairs(db) -> list[tuple[str, dict]]:
    """(host name, instance) for every published site of a ready
    instance, under the instance's DNS name; the instance row carries
    site_mode and site_port."""
    rows = db.query(
        "SELECT i.*, s.mode AS site_mode, s.port AS site_port FROM sites s "
        "JOIN instances i ON i.id = s.instance_id WHERE i.status = ? AND i.ipv4 IS NOT NULL "
        "ORDER BY s.id", [READY])
    return [(row["fqdn"], row) for row in rows]


def routes(pairs: list[tuple[str, dict]], settings) -> list[Route]:
    """The proxy's routes for (host name, instance) pairs, and Warren's
    own host name (WARREN_PUBLIC_HOSTNAME) first. A host name is routed
    once: a later pair for a name already taken is left out (and logged)."""
    found: dict[str, Route] = {}
    if settings.public_hostname:
        found[settings.public_hostname] = Route(settings.public_hostname, TERMINATE,
                                                settings.listen_host, settings.listen_port, None)
    for hostname, instance in pairs:
        hostname = hostname.lower().rstrip(".")
        if hostname in found:
            log.warning("%s is routed already; not to instance %s too", hostname, instance["id"])
            continue
        if instance["site_mode"] == PASSTHROUGH:
            found[hostname] = Route(hostname, PASSTHROUGH, instance["ipv4"], 443, instance["id"])
        else:
            found[hostname] = Route(hostname, TERMINATE, instance["ipv4"], instance["site_port"],
                                    instance["id"])
    return list(found.values())


def domain_pairs(db) -> list[tuple[str, dict]]:
    """(host name, instance) for every routable custom domain (verified, on a
    ready instance of an active member: domains.routable), served the way
    the instance's site is (terminate to port 80 while it has none)."""
    routable = domains.routable(db)
    rows = {row["id"]: row for row in db.query(
        "SELECT i.*, coalesce(s.mode, ?) AS site_mode, coalesce(s.port, 80) AS site_port "
        "FROM instances i LEFT JOIN sites s ON s.instance_id = i.id WHERE i.ipv4 IS NOT NULL "
        "AND i.id IN (SELECT value FROM json_each(?))",
        [TERMINATE, json.dumps([instance_id for _hostname, instance_id in routable])])}
    return [(hostname, rows[instance_id]) for hostname, instance_id in routable
            if instance_id in rows]


def desired_routes(db, settings) -> list[Route]:
    """Every route the proxy should have now: instances' own names first,
    then members' verified custom domains."""
    return routes(site_pairs(db) + domain_pairs(db), settings)


def _serve_certificates(db, settings, wanted: list[Route]) -> set[str]:
    """Files of the valid certificates of the terminating routes."""
    terminating = {route.hostname for route in wanted if route.mode == TERMINATE}
    valid = {row[0] for row in db.execute("SELECT hostname FROM certificates WHERE state = 'valid'")}
    return {certificate_path(settings, hostname) for hostname in sorted(terminating & valid)
            if Path(certificate_path(settings, hostname)).exists()}


def _same_serial(loaded: str | None, pem: str) -> bool:
    return loaded is not None and loaded.lstrip("0") == acme_client.facts(pem).serial.lstrip("0")


def sync(db, settings) -> list[str]:
    """Make the proxy's maps and certificates match the routes, in its
    files and in the running process (without a reload); lines saying
    what changed. BackendUnavailable when the proxy is not running (its
    files are right, so it starts with the routes)."""
    if public_address(settings) is None:
        return []
    files = paths(settings)
    with _sync_lock:
        wanted = desired_routes(db, settings)
        maps = {
            files.sites_map: {route.hostname: f"{route.address}:{route.port}"
                              for route in wanted if route.mode == TERMINATE},
            files.passthrough_map: {route.hostname: route.address
                                    for route in wanted if route.mode == PASSTHROUGH},
        }
        served = _serve_certificates(db, settings, wanted)
        Path(files.certs).mkdir(mode=0o700, parents=True, exist_ok=True)
        for path, entries in maps.items():
            haproxy.write_file(path, haproxy.map_text(entries))
        haproxy.write_file(files.crt_list, "".join(f"{path}\n" for path in sorted(served)))
        runtime = haproxy.Runtime(files.socket)
        done = []
        for path, entries in maps.items():
            loaded = runtime.show_map(path)
            if loaded != entries:
                runtime.replace_map(path, entries)
                done += [f"route {key} -> {value} set" for key, value in sorted(entries.items())
                         if loaded.get(key) != value]
                done += [f"route {key} removed" for key in sorted(set(loaded) - set(entries))]
        listed = set(runtime.crt_list(files.crt_list))
        for path in sorted(listed - served):
            runtime.remove_certificate(files.crt_list, path)
            done.append(f"certificate {Path(path).stem} no longer served")
        for path in sorted(served):
            pem = Path(path).read_text()
            if path not in listed or not _same_serial(runtime.certificate_serial(path), pem):
                runtime.put_certificate(files.crt_list, path, pem)
                done.append(f"certificate {Path(path).stem} served")
        return done


def publish_challenge(settings, token: str, key_authorization: str) -> None:
    """Answer an ACME HTTP-01 challenge on port 80 from now on."""
    _change_challenge(settings, token, key_authorization)


def withdraw_challenge(settings, token: str) -> None:
    """Stop answering a challenge."""
    _change_challenge(settings, token, None)


def _change_challenge(settings, token: str, key_authorization: str | None) -> None:
    path = paths(settings).challenges_map
    with _challenge_lock:
        entries = haproxy.read_map(path)
        if key_authorization is None:
            entries.pop(token, None)
        else:
            entries[token] = key_authorization
        haproxy.write_file(path, haproxy.map_text(entries))
        runtime = haproxy.Runtime(paths(settings).socket)
        if key_authorization is None:
            runtime.delete_map_entry(path, token)
        else:
            runtime.set_map_entry(path, token, key_authorization)
