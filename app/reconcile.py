"""Reconcile: compare the store, LXD and DNS, and repair what drifted.

Run by the worker at start and every WARREN_RECONCILE_SECONDS. It repairs
LXD instances made by Warren that no row wants (deleted), instances found
under another name than their row's (renamed: the upgrade to host-unique
names), ready rows whose instance vanished (restored from their newest
backup, or provisioned again when they have none), missing or
stale DNS records, A and AAAA (published), Warren's DNS names no row wants (removed),
removals owed from when the DNS server was down, and addresses held by
failed rows (freed). Each instance and each name is repaired in its own
guard, so one that cannot be repaired never stops the others. Running it
twice in a row changes nothing the second time.
"""
import logging

from . import audit, dns, jobs, lxd, restores, sites
from .errors import BackendUnavailable, Conflict
from .instances import record_event
from .names import PROJECT_PREFIX, member_of
from .passes import each_guarded
from .projects import dns_owner, installation
from .statuses import BUSY, QUEUED, READY, RELEASED, sql_list
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
    cursor = db.execute(f"UPDATE instances SET ipv4 = NULL, ipv6 = NULL WHERE status IN "
                        f"{sql_list(RELEASED)} AND (ipv4 IS NOT NULL OR ipv6 IS NOT NULL)")
    if cursor.rowcount:
        actions.append(f"freed {cursor.rowcount} address(es) held by failed requests")


def _rows(db) -> dict[int, dict]:
    return {row["id"]: row for row in db["instances"].rows}


def _present(settings) -> tuple[dict[tuple[str, str], int], set[tuple[str, str]]]:
    """(project, LXD name) -> warren id of every instance this Warren made;
    and the (project, LXD name) of instances LXD lists but cannot read (on
    an offline cluster member): there, so never rebuilt or removed."""
    client = lxd.backend(settings).client()
    present, unreadable = {}, set()
    for project in lxd.project_names(client, PROJECT_PREFIX, installation()):
        scoped = lxd.backend(settings).client(project)
        for name, config in lxd.instance_configs(scoped).items():
            if config is None:
                unreadable.add((project, name))
            elif "user.warren.id" in config \
                    and config.get("user.warren.installation") == installation():
                present[(project, name)] = int(config["user.warren.id"])
    return present, unreadable


def _reconcile_lxd(db, settings, actions):
    present, unreadable = _present(settings)
    rows = _rows(db)  # read after LXD: a row always exists before its instance

    def repair(item):
        (project, name), warren_id = item
        row = rows.get(warren_id)
        scoped = lxd.backend(settings).client(project)
        if row is not None and row["status"] not in RELEASED and row["project"] == project \
                and row["lxd_name"] != name:
            if (project, row["lxd_name"]) in present:
                return  # a second copy: the one under the row's name is the instance
            lxd.rename_instance(scoped, name, row["lxd_name"])
            actions.append(f"renamed instance {name} to {row['lxd_name']} in {project}")
            present[(project, row["lxd_name"])] = warren_id
        elif row is None or row["status"] in RELEASED or row["project"] != project:
            if lxd.delete_instance(scoped, name):
                actions.append(f"deleted orphan instance {name} in {project}")

    each_guarded(list(present.items()), lambda item: f"LXD instance {item[0][1]} in {item[0][0]}",
                 repair)

    def rebuild(row):
        with transaction(db):
            if restores.queue_missing(db, row):
                actions.append(f"restoring {row['fqdn']} from its backup: missing from LXD")
                return
            db["instances"].update(row["id"], {"status": QUEUED, "updated_at": now()})
            record_event(db, row["id"], QUEUED, "The instance was missing from LXD; "
                         "building it again.")
            jobs.enqueue(db, row["id"], "provision")
        actions.append(f"re-queued {row['fqdn']}: missing from LXD")

    missing = [row for row in rows.values()
               if row["status"] == READY and (row["project"], row["lxd_name"]) not in present
               and (row["project"], row["lxd_name"]) not in unreadable]
    each_guarded(missing, lambda row: f"re-queueing {row['fqdn']}", rebuild)


def _reconcile_dns(db, settings, actions):
    zone = dns.zone_from_settings(settings)

    def remove_owed(item):
        fqdn, owner = item
        try:
            dns.remove_name(zone, fqdn, owner)
            actions.append(f"removed DNS name {fqdn} (owed)")
        except Conflict:
            pass
        db.execute("DELETE FROM dns_removals WHERE fqdn = ?", [fqdn])

    each_guarded(db.execute("SELECT fqdn, owner FROM dns_removals").fetchall(),
                 lambda item: f"owed removal of {item[0]}", remove_owed)
    mine = "@" + installation()
    owned = {fqdn: owner for fqdn, owner in dns.owned_names(zone).items() if owner.endswith(mine)}
    rows = _rows(db)  # read after the zone: names of requests in flight are theirs
    in_flight = {row["fqdn"] for row in rows.values() if row["status"] in BUSY}
    desired = {row["fqdn"]: row for row in rows.values() if row["status"] == READY}

    def publish(row):
        fqdn, owner = row["fqdn"], dns_owner(member_of(row["project"]))
        ipv4, ipv6 = sites.name_addresses(db, settings, row)
        if owned.get(fqdn) == owner and dns.lookup(zone, fqdn) == [ipv4] \
                and dns.lookup(zone, fqdn, "AAAA") == ([ipv6] if ipv6 else []) \
                and row["dns_state"] == "published":
            return
        try:
            dns.publish_address(zone, fqdn, ipv4, owner, ipv6=ipv6)
        except Conflict as error:
            actions.append(f"cannot publish {fqdn}: {error}")
            return
        db["instances"].update(row["id"], {"dns_state": "published", "updated_at": now()})
        record_event(db, row["id"], "dns", "DNS name published.")
        actions.append(f"published {fqdn}")

    each_guarded(list(desired.values()), lambda row: f"publishing {row['fqdn']}", publish)

    def remove_stale(item):
        fqdn, owner = item
        dns.remove_name(zone, fqdn, owner)
        actions.append(f"removed stale DNS name {fqdn}")

    stale = [(fqdn, owner) for fqdn, owner in owned.items()
             if fqdn not in desired and fqdn not in in_flight]
    each_guarded(stale, lambda item: f"removing stale DNS name {item[0]}", remove_stale)
