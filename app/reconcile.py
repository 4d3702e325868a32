"""Reconcile: compare the store, LXD and DNS, and repair what drifted.

Run by the worker at start and every WARREN_RECONCILE_SECONDS. It repairs
LXD instances made by Warren that no row wants (deleted), ready rows whose
instance vanished (provisioned again), missing or stale DNS records
(published), Warren's DNS names no row wants (removed), removals owed from
when the DNS server was down, and addresses held by failed rows (freed).
Running it twice in a row changes nothing the second time.
"""
import logging

from . import audit, dns, jobs, lxd
from .errors import BackendUnavailable, Conflict
from .instances import BUSY, RELEASED, lxd_name, record_event
from .projects import PREFIX, dns_owner, installation, member_of
from .store import now, transaction

log = logging.getLogger(__name__)


def reconcile(db, settings) -> list[str]:
    """One pass; returns a line per repair made."""
    actions: list[str] = []
    _free_leaked_addresses(db, actions)
    try:
        _reconcile_lxd(db, settings, actions)
    except BackendUnavailable as error:
        actions.append(f"skipped LXD: {error}")
    try:
        _reconcile_dns(db, settings, actions)
    except BackendUnavailable as error:
        actions.append(f"skipped DNS: {error}")
    for action in actions:
        log.info("reconcile: %s", action)
        if not action.startswith("skipped"):
            audit.record(db, audit.WORKER, "reconcile", action)
    return actions


def _free_leaked_addresses(db, actions):
    cursor = db.execute("UPDATE instances SET ipv4 = NULL WHERE status IN ('failed', 'denied') "
                        "AND ipv4 IS NOT NULL")
    if cursor.rowcount:
        actions.append(f"freed {cursor.rowcount} address(es) held by failed requests")


def _rows(db) -> dict[int, dict]:
    return {row["id"]: row for row in db["instances"].rows}


def _reconcile_lxd(db, settings, actions):
    client = lxd.connect(settings.lxd_socket)
    present = {}  # (project, lxd name) -> warren id, of this installation only
    for project in lxd.project_names(client, PREFIX, installation()):
        scoped = lxd.connect(settings.lxd_socket, project=project)
        for name, config in lxd.instance_configs(scoped).items():
            if "user.warren.id" in config and config.get("user.warren.installation") == installation():
                present[(project, name)] = int(config["user.warren.id"])
    rows = _rows(db)  # read after LXD: a row always exists before its instance
    for (project, name), warren_id in present.items():
        row = rows.get(warren_id)
        if row is None or row["status"] in RELEASED or (row["project"], lxd_name(row)) != (project, name):
            if lxd.delete_instance(lxd.connect(settings.lxd_socket, project=project), name):
                actions.append(f"deleted orphan instance {name} in {project}")
    for row in rows.values():
        if row["status"] == "ready" and (row["project"], lxd_name(row)) not in present:
            with transaction(db):
                db["instances"].update(row["id"], {"status": "queued", "updated_at": now()})
                record_event(db, row["id"], "queued", "The instance was missing from LXD; "
                             "building it again.")
                jobs.enqueue(db, row["id"], "provision")
            actions.append(f"re-queued {row['fqdn']}: missing from LXD")


def _reconcile_dns(db, settings, actions):
    zone = dns.zone_from_settings(settings)
    for fqdn, owner in db.execute("SELECT fqdn, owner FROM dns_removals").fetchall():
        try:
            dns.remove_name(zone, fqdn, owner)
            actions.append(f"removed DNS name {fqdn} (owed)")
        except Conflict:
            pass
        db.execute("DELETE FROM dns_removals WHERE fqdn = ?", [fqdn])
    mine = "@" + installation()
    owned = {fqdn: owner for fqdn, owner in dns.owned_names(zone).items() if owner.endswith(mine)}
    rows = _rows(db)  # read after the zone: names of requests in flight are theirs
    in_flight = {row["fqdn"] for row in rows.values() if row["status"] in BUSY}
    desired = {row["fqdn"]: row for row in rows.values() if row["status"] == "ready"}
    for fqdn, row in desired.items():
        owner = dns_owner(member_of(row["project"]))
        if owned.get(fqdn) == owner and dns.lookup(zone, fqdn) == [row["ipv4"]] \
                and row["dns_state"] == "published":
            continue
        try:
            dns.publish_address(zone, fqdn, row["ipv4"], owner)
        except Conflict as error:
            actions.append(f"cannot publish {fqdn}: {error}")
            continue
        db["instances"].update(row["id"], {"dns_state": "published", "updated_at": now()})
        record_event(db, row["id"], "dns", "DNS name published.")
        actions.append(f"published {fqdn}")
    for fqdn, owner in owned.items():
        if fqdn not in desired and fqdn not in in_flight:
            dns.remove_name(zone, fqdn, owner)
            actions.append(f"removed stale DNS name {fqdn}")
