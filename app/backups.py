"""Backups of members' instances: queued on the admin's schedule (or by a
member or an admin, "back up now"), made by the worker through LXD's
backup API, kept as checksummed files in WARREN_BACKUP_DIR with retention.

A backup is a row (queued, running, done or failed) and a `backup` job of
the instance. The job is a background job (app/jobs.py): it runs only when
no member's job waits, one at a time on the host, and after any earlier
job of the same instance, so two backups of one instance never overlap.
It is written atomically (app/backup_files.py); a crash leaves nothing
that looks complete and the job runs again from the start. The row keeps
a manifest of what a restore of the deleted instance needs besides its
disk (app/restores.py).
"""
import json
import logging
import time
from datetime import datetime, timezone

from . import audit, backup_files, jobs, lxd, offsite, warren_state
from .backup_schedule import Made, is_due, to_keep, to_keep_deleted
from .config import current_settings
from .errors import Conflict, NotFound
from .instances import get_instance, record_event
from .names import member_of
from .passes import each_guarded
from .statuses import READY
from .store import get_db, now, transaction
from .units import approximate_size

log = logging.getLogger(__name__)
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
# Columns of the instance row a restore of a deleted instance brings back.
ROW_FIELDS = ("id", "lxd_name", "user_id", "name", "project", "profile", "image", "instance_type",
              "fqdn", "ipv4", "ipv6", "ssh_keys", "cpu", "memory", "disk", "processes",
              "lease_expires_at", "created_at")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def folder_of(instance: dict) -> str:
    """The instance's folder in the backup directory (relative)."""
    return f"instances/{member_of(instance['project'])}/{instance['id']}-{instance['name']}"


def manifest_of(db, instance: dict) -> dict:
    """What a restore of the deleted instance needs besides its disk: its
    row, port forwards, website and the member's DNS records at its name."""
    return {
        "instance": {field: instance[field] for field in ROW_FIELDS},
        "forwards": [{key: row[key] for key in ("protocol", "public_port", "instance_port")}
                     for row in db["forwards"].rows_where("instance_id = ?", [instance["id"]])],
        "site": next(({key: row[key] for key in ("mode", "port")}
                      for row in db["sites"].rows_where("instance_id = ?", [instance["id"]])), None),
        "records": [{key: row[key] for key in ("fqdn", "rtype", "value", "ttl")}
                    for row in db["dns_records"].rows_where(
                        "fqdn = ? AND user_id = ?", [instance["fqdn"], instance["user_id"]])],
    }


def queue(db, instance: dict, reason: str) -> int:
    """Queue a backup of the instance (inside the caller's transaction) unless
    one is waiting or running already; the backup's id."""
    waiting = db.execute("SELECT id FROM backups WHERE instance_id = ? AND state IN (?, ?)",
                         [instance["id"], QUEUED, RUNNING]).fetchone()
    if waiting is not None:
        return waiting[0]
    backup_id = db["backups"].insert({"instance_id": instance["id"], "user_id": instance["user_id"],
                                      "reason": reason, "state": QUEUED,
                                      "created_at": now()}).last_pk
    jobs.enqueue(db, instance["id"], "backup", backup_id=backup_id)
    return backup_id


def back_up_now(user: dict, instance_id, actor: dict | None = None) -> int:
    """Queue a backup of one of the member's ready instances (by `actor`, an
    admin, on the member's behalf when given); its id."""
    instance = get_instance(user, instance_id)
    db = get_db()
    with audit.audited(db, (actor or user)["username"], "instance.backup", instance["fqdn"],
                       member=user["username"]):
        if instance["status"] != READY:
            raise Conflict(f"{instance['name']} is {instance['status']}; back it up once it is ready.")
        with transaction(db):
            backup_id = queue(db, instance, "manual")
            record_event(db, instance["id"], "backup", "Backup queued.")
    jobs.wake_worker(current_settings())
    return backup_id


def run(db, instance: dict, backup_id: int) -> None:
    """The backup job: LXD makes the backup, Warren streams it into the
    backup directory (atomically, checksummed), then retention runs."""
    from .provisioning import checkpoint
    settings = current_settings()
    backup = db["backups"].get(backup_id)
    if backup["state"] == DONE:
        return  # done before a crash, between the row and the job
    db["backups"].update(backup_id, {"state": RUNNING, "started_at": now(), "error": None})
    folder = folder_of(instance)
    backup_files.clean_partial(settings.backup_dir, folder)
    client = lxd.backend(settings).client(instance["project"])
    optimized = lxd.pool_driver(lxd.backend(settings).client(),
                                settings.lxd_storage_pool) in lxd.OPTIMIZED_DRIVERS
    name = f"warren-{backup_id}"
    started = time.monotonic()
    with jobs.lease_held(settings.database, jobs.current.get()):
        lxd.create_backup(client, instance["lxd_name"], name, optimized=optimized)
    made = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    relative = f"{folder}/{stamp}-{backup_id}{backup_files.COMPRESSIONS[settings.backup_compression]}"

    def fill(write):
        def counted(chunk):
            write(chunk)
            checkpoint("mid-backup")
        backup_files.compressed(counted, settings.backup_compression, lambda into: lxd.export_backup(
            client, instance["lxd_name"], name, into))

    try:
        with jobs.lease_held(settings.database, jobs.current.get()):
            size, checksum = backup_files.write_backup(settings.backup_dir, relative, fill)
    finally:
        lxd.delete_backup(client, instance["lxd_name"], name)
    log.info("backup %d of %s: LXD made it in %.1f s, %s written in %.1f s", backup_id,
             instance["fqdn"], made - started, approximate_size(size), time.monotonic() - made)
    with transaction(db):
        db["backups"].update(backup_id, {
            "state": DONE, "file": relative, "size": size, "sha256": checksum,
            "manifest": json.dumps(manifest_of(db, instance)), "finished_at": now()})
        record_event(db, instance["id"], "backup", f"Backed up ({size // 1024} KiB).")
    prune_instance(db, settings, instance["id"])


def failed(db, instance: dict, backup_id: int, error) -> None:
    """A backup job failed: the row says why (the admin's page shows it)."""
    with transaction(db):
        db["backups"].update(backup_id, {"state": FAILED, "error": str(error), "finished_at": now()})
        record_event(db, instance["id"], "backup", f"Backup failed: {error}")


def prune_instance(db, settings, instance_id: int) -> list[str]:
    """Retention for one instance's backups: files and rows of the good
    backups it does not keep go; the newest good one of a live instance
    always stays."""
    good = list(db["backups"].rows_where("instance_id = ? AND state = ?", [instance_id, DONE]))
    made = [Made(row["id"], _parse(row["created_at"])) for row in good]
    live = db["instances"].count_where("id = ?", [instance_id])
    if not live:  # its jobs went with it: nothing is coming for these rows
        db.execute("UPDATE backups SET state = ?, error = 'the instance was deleted first' "
                   "WHERE instance_id = ? AND state IN (?, ?)", [FAILED, instance_id, QUEUED, RUNNING])
    if live:
        keep = to_keep(made, settings.backup_keep_daily, settings.backup_keep_weekly)
    else:
        keep = to_keep_deleted(made, settings.backup_keep_daily, settings.backup_keep_weekly,
                               datetime.now(timezone.utc))
    removed = []
    for row in good:
        if row["id"] not in keep:
            backup_files.remove(settings.backup_dir, row["file"])
            db.execute("DELETE FROM backups WHERE id = ?", [row["id"]])
            removed.append(row["file"])
    # Failures older than the newest good backup have nothing more to say.
    newest = max((row["id"] for row in good if row["id"] in keep), default=None)
    if newest is not None or not live:
        db.execute("DELETE FROM backups WHERE instance_id = ? AND state = ? AND id < ?",
                   [instance_id, FAILED, newest if newest is not None else 2 ** 62])
    return removed


def schedule(db, settings) -> list[str]:
    """The periodic pass: queue the backups that are due (one per ready
    instance per interval) and apply retention to every instance's backups,
    deleted instances' too."""
    lines = []
    stamp = datetime.now(timezone.utc)
    last = dict(db.execute("SELECT instance_id, max(created_at) FROM backups GROUP BY instance_id"))

    def queue_due(row):
        if is_due(_parse(last[row["id"]]) if row["id"] in last else None, stamp,
                  settings.backup_interval_hours):
            with transaction(db):
                queue(db, row, "schedule")
            lines.append(f"queued a backup of {row['fqdn']}")

    each_guarded(list(db["instances"].rows_where("status = ?", [READY])),
                 lambda row: f"scheduling a backup of {row['fqdn']}", queue_due)
    for (instance_id,) in db.execute("SELECT DISTINCT instance_id FROM backups").fetchall():
        lines += [f"removed backup {path} (retention)"
                  for path in prune_instance(db, settings, instance_id)]
    return lines


def of_instance(db, instance_id: int, every_state: bool = False) -> list[dict]:
    """An instance's complete backups (with every_state, the queued,
    running and failed ones too), newest first."""
    states = (QUEUED, RUNNING, DONE, FAILED) if every_state else (DONE,)
    return list(db["backups"].rows_where(
        f"instance_id = ? AND state IN ({', '.join('?' * len(states))})", [instance_id, *states],
        order_by="id DESC"))


def of_instance_for(user: dict, instance_id, every_state: bool = False) -> list[dict]:
    """The complete backups of one of the member's instances (with
    every_state, the others too), newest first."""
    return of_instance(get_db(), get_instance(user, instance_id)["id"], every_state)


def own_backup(user: dict, instance_id, backup_id) -> tuple[dict, dict]:
    """(instance, backup) when both are the member's and the backup is of
    that instance and complete; NotFound otherwise."""
    instance = get_instance(user, instance_id)
    rows = list(get_db()["backups"].rows_where("id = ? AND instance_id = ? AND user_id = ? "
                                               "AND state = ?",
                                               [backup_id, instance["id"], user["id"], DONE]))
    if not rows:
        raise NotFound("No such backup.")
    return instance, rows[0]


def age(stamp: str | None) -> str:
    """How long ago a time was, for people: 5 min, 3 h, 2 d."""
    if not stamp:
        return ""
    seconds = (datetime.now(timezone.utc) - _parse(stamp)).total_seconds()
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def overview(db) -> list[dict]:
    """Per instance that has or had backups (deleted instances too): its
    member and name, its last good backup (when, age, size), how many are
    kept, and the last failure since then."""
    found = []
    for (instance_id,) in db.execute("SELECT DISTINCT instance_id FROM backups ORDER BY instance_id"):
        rows = list(db["backups"].rows_where("instance_id = ?", [instance_id], order_by="id DESC"))
        good = [row for row in rows if row["state"] == DONE]
        last_good = good[0] if good else None
        failure = next((row for row in rows if row["state"] == FAILED
                        and (last_good is None or row["id"] > last_good["id"])), None)
        live = list(db["instances"].rows_where("id = ?", [instance_id]))
        manifest = json.loads(last_good["manifest"]) if last_good else {}
        member = db.execute("SELECT username FROM users WHERE id = ?", [rows[0]["user_id"]]).fetchone()
        found.append({
            "instance_id": instance_id, "member": member[0] if member else "?",
            "name": live[0]["name"] if live else manifest.get("instance", {}).get("name", "?"),
            "deleted": not live, "last_good": last_good, "age": age(last_good and last_good["finished_at"]),
            "kept": len(good), "good": good, "failure": failure,
            "pending": any(row["state"] in (QUEUED, RUNNING) for row in rows)})
    return found


def _meta(db, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _set_meta(db, key: str, value: str) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
               "SET value = excluded.value", [key, value])


def state_copy_due(settings) -> bool:
    """Whether the scheduled copy of Warren's own state is due."""
    made = warren_state.copies(settings)
    last = datetime.strptime(made[-1].name, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) \
        if made else None
    return is_due(last, datetime.now(timezone.utc), settings.backup_interval_hours)


def offsite_status(db) -> dict:
    """When the off-host copy last worked, and its last error since."""
    return {"at": _meta(db, "offsite.at"), "error": _meta(db, "offsite.error"),
            "added": _meta(db, "offsite.added")}


def copy_offsite(db, settings) -> list[str]:
    """Copy the backup directory off the host when something new was
    written since the last copy."""
    if not offsite.enabled(settings):
        return []
    last = _meta(db, "offsite.at") or ""
    newest = db.execute("SELECT max(finished_at) FROM backups WHERE state = ?", [DONE]).fetchone()[0]
    made = warren_state.copies(settings)
    state_stamp = datetime.strptime(made[-1].name, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=timezone.utc).isoformat() if made else ""
    if max(newest or "", state_stamp) <= last:
        return []
    try:
        summary = offsite.copy(settings)
    except Exception as error:
        _set_meta(db, "offsite.error", f"{now()}: {error}")
        raise
    _set_meta(db, "offsite.at", now())
    _set_meta(db, "offsite.added", str(summary.get("data_added", 0)))
    db.execute("DELETE FROM meta WHERE key = 'offsite.error'")
    return [f"copied the backups off the host ({summary.get('data_added', 0)} bytes added)"]


def periodic(db, settings) -> list[str]:
    """The backups pass: instances' backups that are due and retention, the
    copy of Warren's own state when due, and the off-host copy."""
    lines = schedule(db, settings)
    if state_copy_due(settings):
        lines.append(f"copied Warren's state to {warren_state.back_up(settings)}")
    lines += [f"removed the copy of Warren's state {name}" for name in warren_state.prune(settings)]
    busy = db.execute("SELECT count(*) FROM backups WHERE state IN (?, ?)", [QUEUED, RUNNING]).fetchone()[0]
    if not busy:  # one copy after the scheduled backups are all written
        lines += copy_offsite(db, settings)
    return lines


def back_up_all(actor: dict) -> int:
    """Queue a backup of every ready instance now (the admin's button); how many."""
    db = get_db()
    with audit.audited(db, actor["username"], "backup.all", "every instance") as note:
        with transaction(db):
            count = len([queue(db, row, "manual")
                         for row in db["instances"].rows_where("status = ?", [READY])])
        note["detail"] = f"{count} instance(s)"
    jobs.wake_worker(current_settings())
    return count
