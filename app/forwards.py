"""Port forwards: a TCP or UDP port of the co-op's public address that
reaches a port of one of a member's instances (an IRC bouncer, a game
server, a VPN).

The rows in the forwards table are what should be; LXD's network forward
on the public address (app/lxd/forwards.py) is made to match them by
sync(), which the worker runs as a job after every change and as a
periodic pass, so drift in LXD is repaired and a crash loses nothing.

A member's request is checked in one BEGIN IMMEDIATE transaction: the
instance is theirs and ready, the public port is in the configured range
and free for that protocol (a UNIQUE index says so too, and LXD refuses
a listen port twice), and the count stays within the share tier's
`forwards` allowance. LXD has no per-project limit on forwards (they
belong to the bridge, in the default project, which members' restricted
projects cannot touch), so the count is Warren's to keep.
"""
import ipaddress
import logging
import re
import threading

from . import audit, hostforwards, jobs, lxd, quotas
from .config import current_settings
from .errors import Conflict, ValidationError
from .instances import get_instance, record_event
from .statuses import READY, RELEASED, sql_list
from .store import get_db, now, transaction

log = logging.getLogger(__name__)
PROTOCOLS = ("tcp", "udp")
PORT = re.compile(r"[0-9]{1,5}")
DESCRIPTION = "Warren port forwards"
_sync_lock = threading.Lock()  # one sync at a time per process; LXD's ETag guards across processes


def public_address(settings) -> str | None:
    """The address forwards listen on, or None while forwards are off (no
    public address configured: ssh_address is still a loopback one)."""
    address = settings.forward_address or settings.ssh_address
    return None if ipaddress.ip_address(address).is_loopback else address


def of_instance(db, instance_id: int) -> list[dict]:
    """An instance's forwards, by protocol and public port."""
    return list(db["forwards"].rows_where("instance_id = ?", [instance_id],
                                          order_by="protocol, public_port"))


def _port(text, field: str, errors: dict, allowed=None) -> int | None:
    text = str(text if text is not None else "").strip()
    if not PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        errors[field] = ["Give a port number from 1 to 65535."]
        return None
    port = int(text)
    if allowed is not None and port not in allowed:
        errors[field] = [f"Public ports come from {allowed}; choose one there, or leave it "
                         "empty for the first free one."]
        return None
    return port


def _free_port(db, protocol: str, allowed, reserved: set[int]) -> int | None:
    taken = {row[0] for row in db.execute("SELECT public_port FROM forwards WHERE protocol = ?",
                                          [protocol])} | reserved
    return next((port for port in range(allowed.low, allowed.high + 1) if port not in taken), None)


def _reserved_ports(settings, address: str) -> set[int]:
    """Ports the host itself serves on the public address."""
    ssh_address = settings.ssh_address
    return {settings.ssh_port} if ssh_address in (address, "0.0.0.0") else set()


def add(user: dict, instance_id, protocol: str, instance_port, public_port=None) -> dict:
    """Forward a public port (the given one, or the first free one) to a
    port of one of the member's ready instances; the new row."""
    instance = get_instance(user, instance_id)
    settings = current_settings()
    address = public_address(settings)
    if address is None:
        raise Conflict("Port forwards are off on this server: it has no public address yet "
                       "(an admin sets WARREN_FORWARD_ADDRESS).")
    errors: dict[str, list[str]] = {}
    protocol = (protocol or "").strip().lower()
    if protocol not in PROTOCOLS:
        errors["protocol"] = ["Choose tcp or udp."]
    target = _port(instance_port, "instance_port", errors)
    wanted = None
    if str(public_port or "").strip():
        wanted = _port(public_port, "public_port", errors, settings.forward_ports)
        if wanted is not None and wanted in _reserved_ports(settings, address):
            errors["public_port"] = [f"Port {wanted} is the co-op's SSH jump server; choose another."]
    if errors:
        raise ValidationError(errors)
    if instance["status"] != READY:
        raise Conflict(f"{instance['name']} is {instance['status']}; add forwards once it is ready.")
    db = get_db()
    with audit.audited(db, user["username"], "forward.add", instance["fqdn"],
                       member=user["username"]) as note:
        with transaction(db):
            quotas.check_one_more(db, user, "forwards")
            port = wanted or _free_port(db, protocol, settings.forward_ports,
                                        _reserved_ports(settings, address))
            if port is None:
                raise Conflict(f"Every public {protocol} port in {settings.forward_ports} is "
                               "taken; ask an admin.")
            if db.execute("SELECT 1 FROM forwards WHERE protocol = ? AND public_port = ?",
                          [protocol, port]).fetchone():
                raise ValidationError({"public_port": [
                    f"Port {port}/{protocol} is already forwarded to another instance; choose "
                    "another, or leave it empty for the first free one."]})
            forward_id = db["forwards"].insert({
                "instance_id": instance["id"], "protocol": protocol, "public_port": port,
                "instance_port": target, "created_at": now()}).last_pk
            record_event(db, instance["id"], "forward",
                         f"Forwarding {address}:{port}/{protocol} to port {target}.")
            jobs.enqueue(db, instance["id"], "forwards")
        note["detail"] = f"{address}:{port}/{protocol} -> {target}"
    jobs.wake_worker(settings)
    return db["forwards"].get(forward_id)


def remove(user: dict, instance_id, forward_id) -> dict:
    """Stop forwarding one of the member's ports; the removed row."""
    instance = get_instance(user, instance_id)
    db = get_db()
    rows = list(db["forwards"].rows_where("id = ? AND instance_id = ?", [forward_id, instance["id"]]))
    if not rows:
        raise Conflict("That forward is gone already.")
    row = rows[0]
    with audit.audited(db, user["username"], "forward.remove", instance["fqdn"],
                       member=user["username"],
                       detail=f"{row['public_port']}/{row['protocol']} -> {row['instance_port']}"):
        with transaction(db):
            db.execute("DELETE FROM forwards WHERE id = ?", [row["id"]])
            record_event(db, instance["id"], "forward",
                         f"Stopped forwarding port {row['public_port']}/{row['protocol']}.")
            jobs.enqueue(db, instance["id"], "forwards")
    jobs.wake_worker(current_settings())
    return row


def withdraw(db, settings, instance: dict) -> None:
    """Before an instance goes away (or gives up its address): drop its
    forwards and take them out of LXD, so no port leads to an address
    that another instance may get next."""
    with transaction(db):
        db.execute("DELETE FROM forwards WHERE instance_id = ?", [instance["id"]])
    sync(db, settings)


def desired_ports(db) -> list[dict]:
    """Every forward that should be in LXD, as LXD writes its ports."""
    rows = db.execute(
        "SELECT f.protocol, f.public_port, i.ipv4, f.instance_port, i.fqdn FROM forwards f "
        f"JOIN instances i ON i.id = f.instance_id WHERE i.ipv4 IS NOT NULL "
        f"AND i.status NOT IN {sql_list(RELEASED)} ORDER BY f.protocol, f.public_port").fetchall()
    return [lxd.port_entry(protocol, port, ipv4, target, fqdn)
            for protocol, port, ipv4, target, fqdn in rows]


def _key(port: dict) -> tuple:
    return (port["protocol"], str(port["listen_port"]), port["target_address"],
            str(port["target_port"]))


def sync(db, settings) -> list[str]:
    """Make the forwards match the rows: on one server LXD's forward on the
    public address holds exactly the wanted ports and any other address
    Warren used before holds none; on a cluster Warren's host forwards them
    (app/hostforwards.py) and LXD holds none of Warren's. Lines saying what
    changed."""
    backend = lxd.backend(settings)
    client, on_cluster = backend.client(), backend.clustered()
    network, address = settings.lxd_network, public_address(settings)
    done = []
    with _sync_lock:
        for stale in lxd.forward_addresses(client, network, DESCRIPTION):
            if stale != address or on_cluster:
                lxd.delete_forward(client, network, stale)
                done.append(f"removed LXD's forwards of {stale}" + (
                    ": this host forwards on a cluster" if on_cluster and stale == address
                    else ", no longer the public address"))
        if on_cluster:
            return done + hostforwards.sync(address, settings.network_address, network,
                                            desired_ports(db) if address else [])
        if address is None:
            return done
        return done + _sync_lxd(client, network, address, desired_ports(db))


def _sync_lxd(client, network: str, address: str, wanted: list[dict]) -> list[str]:
    """LXD's forward on the public address: exactly the wanted ports."""
    for attempt in range(3):
        current = lxd.forward_ports(client, network, address)
        ports, etag = current if current is not None else ([], None)
        if current is not None and sorted(map(_key, ports)) == sorted(map(_key, wanted)):
            return []
        if current is None and not wanted:
            return []
        try:
            lxd.set_forward_ports(client, network, address, wanted, etag, current is not None,
                                  DESCRIPTION)
        except Conflict:  # another process wrote meanwhile: read again
            if attempt == 2:
                raise
            continue
        added = {_key(port) for port in wanted} - {_key(port) for port in ports}
        removed = {_key(port) for port in ports} - {_key(port) for port in wanted}
        return ([f"forward {port}/{protocol} -> {target}:{target_port} set"
                 for protocol, port, target, target_port in sorted(added)]
                + [f"forward {port}/{protocol} -> {target}:{target_port} removed"
                   for protocol, port, target, target_port in sorted(removed)])
    return []
