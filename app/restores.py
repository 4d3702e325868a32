"""Restores from backups: a member puts one of their instances back to a
retained backup; an admin brings back a deleted instance (within
retention) into its member's project with its name, address (or a new one
when it is taken), DNS name and records, port forwards and website; the
reconcile pass and `flask restore` bring back instances missing from LXD.

Before anything is touched the backup file is read whole against its
checksum: a damaged or truncated backup is refused and the instance stays
as it was. Then the instance is stopped, replaced by LXD's import of the
backup (same LXD name, so it keeps its Warren identity), given its row's
address and started; its DNS name is published and its forwards and
website synced by their jobs. Every restore is in the audit log.
"""
import json
import logging
from pathlib import Path

from . import (accounts, addresses, audit, backup_files, backups, dns, hostroutes, instances, isolation,
               jobs, lxd, offline, projects, quotas, sites)
from .backup_files import CorruptBackup
from .config import current_settings
from .errors import Conflict, NotFound, ValidationError
from .instances import record_event
from .names import member_of
from .profiles import current_profiles
from .provisioning import nic_device
from .statuses import READY, RESTORING
from .store import get_db, now, transaction

log = logging.getLogger(__name__)


def what_is_lost(instance: dict, backup: dict, state: str) -> str:
    """The confirmation a member reads before restoring."""
    when = backup["created_at"][:16].replace("T", " ")
    text = (f"Everything written to {instance['name']} after {when} UTC "
            f"({backups.age(backup['created_at'])} ago) will be lost: files, installed "
            "packages, databases inside it.")
    if state == "Running":
        text += " It is running now: it will be stopped, replaced and started again."
    return text


def restore_plan(user: dict, instance_id, backup_id) -> tuple[dict, dict, str]:
    """(instance, backup, what a restore loses) for one of the member's
    complete backups; NotFound for anyone else's."""
    instance, backup = backups.own_backup(user, instance_id, backup_id)
    state = {row["id"]: row["state"] for row in instances.list_instances(user)}.get(instance["id"])
    return instance, backup, what_is_lost(instance, backup, state)


def _check_file(settings, backup: dict) -> None:
    """Cheap checks at request time (the whole checksum is read by the job)."""
    path = Path(settings.backup_dir, backup["file"])
    if not path.is_file() or path.stat().st_size != backup["size"]:
        raise CorruptBackup(f"the backup of {backup['created_at'][:16]} is missing or truncated "
                            f"on the backup disk ({backup['file']}); it cannot be restored")


def request_restore(user: dict, instance_id, backup_id, actor: dict | None = None,
                    confirmed: bool = True) -> None:
    """Queue the restore of one of the member's instances from one of its
    backups (on the member's behalf by `actor`, an admin, when given).
    Unconfirmed (the API: no page showed what is lost), refused, naming
    what would be lost."""
    instance, backup = backups.own_backup(user, instance_id, backup_id)
    if not confirmed:
        raise ValidationError({"confirm": ["Confirm that you accept this: "
                                           + restore_plan(user, instance_id, backup_id)[2]]})
    db = get_db()
    with audit.audited(db, (actor or user)["username"], "instance.restore", instance["fqdn"],
                       member=user["username"], detail=f"backup {backup['id']} of "
                       f"{backup['created_at']}"):
        if instance["status"] != READY:
            raise Conflict(f"{instance['name']} is {instance['status']}; restore it once it is ready.")
        _check_file(current_settings(), backup)
        with transaction(db):
            db["instances"].update(instance["id"], {"status": RESTORING, "updated_at": now()})
            record_event(db, instance["id"], RESTORING, "Restoring the backup of "
                         f"{backup['created_at'][:16].replace('T', ' ')} UTC.")
            jobs.enqueue(db, instance["id"], "restore", backup_id=backup["id"])
    jobs.wake_worker(current_settings())


def _free_or_new(db, settings, instance: dict) -> tuple[str, str | None]:
    """The deleted instance's old addresses where no one holds them now, else new ones."""
    ipv4 = instance["ipv4"]
    if not ipv4 or db["instances"].count_where("ipv4 = ?", [ipv4]) \
            or ipv4 not in addresses.static_pool(settings.network_address):
        ipv4 = addresses.allocate(db, settings.network_address)
    ipv6 = None
    if settings.network_ipv6_prefix:
        ipv6 = instance.get("ipv6")
        if not ipv6 or db["instances"].count_where("ipv6 = ?", [ipv6]):
            ipv6 = addresses.allocate_ipv6(db, settings.network_ipv6_prefix)
    if ipv4 is None:
        raise Conflict("No free addresses are left on Warren's network.")
    return ipv4, ipv6


def _bring_back_extras(db, settings, user: dict, instance: dict, manifest: dict) -> list[str]:
    """Forwards, website and records of a deleted instance, where their
    ports and names are still free and the quota allows; what was left out."""
    left_out = []
    for forward in manifest.get("forwards", []):
        taken = db["forwards"].count_where("protocol = ? AND public_port = ?",
                                           [forward["protocol"], forward["public_port"]])
        over = quotas.usage(db, user["id"])["forwards"] >= quotas.quota_for(db, user).forwards
        if taken or over:
            left_out.append(f"forward {forward['public_port']}/{forward['protocol']} "
                            f"({'port taken' if taken else 'over quota'})")
            continue
        db["forwards"].insert({**forward, "instance_id": instance["id"], "created_at": now()})
    if manifest.get("site"):
        db["sites"].insert({**manifest["site"], "instance_id": instance["id"], "created_at": now()})
    for record in manifest.get("records", []):
        over = quotas.usage(db, user["id"])["records"] >= quotas.quota_for(db, user).records
        if over or db["dns_records"].count_where("fqdn = ? AND rtype = ? AND value = ?",
                                                 [record["fqdn"], record["rtype"], record["value"]]):
            left_out.append(f"record {record['rtype']} {record['value'][:40]}"
                            + (" (over quota)" if over else ""))
            continue
        db["dns_records"].insert({**record, "user_id": user["id"], "created_at": now()})
    return left_out


def restore_deleted(admin: dict, backup_id) -> dict:
    """Bring a deleted instance back from one of its retained backups, into
    its member's project; the restored row."""
    db = get_db()
    rows = list(db["backups"].rows_where("id = ? AND state = ?", [backup_id, backups.DONE]))
    if not rows:
        raise NotFound("No such backup.")
    backup = rows[0]
    manifest = json.loads(backup["manifest"])
    old = manifest["instance"]
    user = accounts.get_user(old["user_id"])
    settings = current_settings()
    with audit.audited(db, admin["username"], "instance.restore-deleted", old["fqdn"],
                       member=user["username"], detail=f"backup {backup['id']} of "
                       f"{backup['created_at']}") as note:
        _check_file(settings, backup)
        with transaction(db):
            if db["instances"].count_where("id = ?", [old["id"]]):
                raise Conflict(f"{old['name']} of {user['username']} exists; the member restores "
                               "it from their instance's page.")
            if db["instances"].count_where("user_id = ? AND name = ?", [user["id"], old["name"]]):
                raise ValidationError({"backup": [
                    f"{user['username']} has a new instance named {old['name']}; delete or "
                    "rename it first."]})
            ipv4, ipv6 = _free_or_new(db, settings, old)
            db["instances"].insert({**old, "ipv4": ipv4, "ipv6": ipv6, "status": RESTORING,
                                    "error": None, "dns_state": "pending", "updated_at": now()})
            quotas.check_within(quotas.quota_for(db, user), quotas.usage(db, user["id"]))
            left_out = _bring_back_extras(db, settings, user, old, manifest)
            record_event(db, old["id"], RESTORING, "Restoring the deleted instance from the "
                         f"backup of {backup['created_at'][:16].replace('T', ' ')} UTC"
                         + (f" at the new address {ipv4}" if ipv4 != old["ipv4"] else "") + ".")
            if left_out:
                record_event(db, old["id"], RESTORING, "Not brought back: " + "; ".join(left_out))
            jobs.enqueue(db, old["id"], "restore", backup_id=backup["id"])
        note["detail"] += f"; address {ipv4}" + (f"; left out: {'; '.join(left_out)}" if left_out else "")
    jobs.wake_worker(settings)
    return db["instances"].get(old["id"])


def bring_back(db, settings, instance: dict, backup: dict) -> str:
    """Put the instance in LXD back to the backup: check the file whole,
    then replace the instance (if any) by the backup's import, with the
    row's addresses, and start it. Returns the cluster member it runs on
    ("" on one server)."""
    with jobs.lease_held(settings.database, jobs.current.get()):
        path = backup_files.verify(settings.backup_dir, backup["file"], backup["sha256"])
    user = accounts.get_user(instance["user_id"])
    projects.forget_applied(instance["project"])  # it may have gone since this process made it
    projects.ensure_member_project(settings, user["username"], quotas.quota_for(db, user),
                                   current_profiles())
    client = lxd.backend(settings).client(instance["project"])
    found = lxd.get_instance(client, instance["lxd_name"])
    if found is not None and found.config.get("user.warren.id") != str(instance["id"]):
        raise Conflict(f"an LXD instance named {instance['lxd_name']} exists in "
                       f"{instance['project']} and is not this one")
    if found is not None:
        lxd.delete_instance(client, instance["lxd_name"])
    with jobs.lease_held(settings.database, jobs.current.get()):
        lxd.import_backup(client, backup_files.tarball(path), settings.lxd_storage_pool, instance["lxd_name"],
                          lock_path=lxd.idmap_lock_path(lxd.backend(settings)))
    where = _back_in_place(settings, client, instance)
    lxd.set_device(client, instance["lxd_name"], "eth0",
                   nic_device(settings.lxd_network, instance["ipv4"],
                              addresses.ipv6_of(instance, settings)))
    lxd.set_power(lxd.get_instance(client, instance["lxd_name"]), "start")
    isolation.guard_bridge(settings)
    return where


def _back_in_place(settings, client, instance: dict) -> str:
    """On a cluster, LXD 5.0.2 imports a backup on the member that received
    the upload, not where the instance ran: move the (stopped) import back
    to its member when that one is online, so its placement group still
    holds; otherwise it stays where it landed. Where it runs now."""
    landed = lxd.location(lxd.get_instance(client, instance["lxd_name"]))
    was = instance.get("location") or ""
    if not landed or not was or landed == was:
        return landed
    if offline.member_state(settings, was) != "Online":
        return landed
    lxd.move_instance(client, instance["lxd_name"], was)
    return was


def run(db, instance: dict, backup_id: int) -> None:
    """The restore job: bring the instance back, publish its name, and let
    its forwards, website and the member's records follow."""
    settings = current_settings()
    backup = db["backups"].get(backup_id)
    where = bring_back(db, settings, instance, backup)
    ipv4, ipv6 = sites.name_addresses(db, settings, instance)
    dns_state = "published"
    try:
        dns.publish_address(dns.zone_from_settings(settings), instance["fqdn"], ipv4,
                            projects.dns_owner(member_of(instance["project"])), ipv6=ipv6)
    except Conflict as error:
        log.warning("restored %s without its name: %s", instance["fqdn"], error)
        dns_state = "pending"
    except Exception as error:  # named down: the reconcile pass publishes it later
        log.warning("restored %s; its name follows: %s", instance["fqdn"], error)
        dns_state = "pending"
    with transaction(db):
        db["instances"].update(instance["id"], {"status": READY, "dns_state": dns_state, "error": None,
                                                "location": where, "updated_at": now()})
        record_event(db, instance["id"], READY, "Restored from the backup of "
                     f"{backup['created_at'][:16].replace('T', ' ')} UTC; running again"
                     + (f" on {where}." if where and where != instance.get("location") else "."))
        jobs.enqueue(db, instance["id"], "forwards")
        jobs.enqueue_member(db, instance["user_id"], "records")
    hostroutes.sync(db, settings)  # on a cluster, its address is routed to its member
    instance["status"] = READY
    sites.after_ready(db, instance)


def failed(db, instance: dict, backup_id: int, error) -> None:
    """A restore failed. A refused backup (its checksum) changed nothing: the
    instance is as it was. After that, the instance may be gone from LXD:
    the reconcile pass restores it again from its newest good backup."""
    refused = isinstance(error, CorruptBackup)
    with transaction(db):
        if refused:  # no longer offered, and the admin's page says why
            db["backups"].update(backup_id, {"state": backups.FAILED, "error": str(error)})
        db["instances"].update(instance["id"], {"status": READY, "updated_at": now()})
        record_event(db, instance["id"], "restore",
                     f"Restore refused, nothing was changed: {error}" if refused
                     else f"Restore failed: {error}")


def latest_good(db, instance_id: int) -> dict | None:
    """The instance's newest complete backup, or None."""
    rows = backups.of_instance(db, instance_id)
    return rows[0] if rows else None


def queue_missing(db, instance: dict) -> bool:
    """A ready instance vanished from LXD: queue its restore from its newest
    backup (inside the caller's transaction); False when it has none."""
    backup = latest_good(db, instance["id"])
    if backup is None:
        return False
    db["instances"].update(instance["id"], {"status": RESTORING, "updated_at": now()})
    record_event(db, instance["id"], RESTORING, "The instance was missing from LXD; restoring "
                 f"its backup of {backup['created_at'][:16].replace('T', ' ')} UTC.")
    jobs.enqueue(db, instance["id"], "restore", backup_id=backup["id"])
    return True



def restore_missing(db, settings) -> list[str]:
    """Bring back every ready instance missing from LXD from its newest
    backup, here and now (`flask restore`, before the worker starts);
    instances present in LXD are left alone, so running it twice changes
    nothing. A line per instance."""
    lines = []
    for instance in db["instances"].rows_where(f"status IN ('{READY}', '{RESTORING}')",
                                               order_by="id"):
        client = lxd.backend(settings).client(instance["project"])
        try:
            present = lxd.get_instance(client, instance["lxd_name"]) is not None
        except NotFound:  # the member's project is gone too
            present = False
        if present:
            lines.append(f"{instance['fqdn']}: present in LXD, left as it is")
            continue
        backup = latest_good(db, instance["id"])
        if backup is None:
            lines.append(f"{instance['fqdn']}: no backup; the worker builds it anew, empty")
            continue
        member = member_of(instance["project"])
        with audit.audited(db, "cli", "instance.restore", instance["fqdn"], member=member,
                           detail=f"backup {backup['id']} of {backup['created_at']}"):
            run(db, instance, backup["id"])
        lines.append(f"{instance['fqdn']}: restored from the backup of {backup['created_at']}")
    return lines
