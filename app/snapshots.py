"""Snapshots of members' instances: take one (named, or named by Warren),
list them with sizes and dates, restore one, delete one. Profiles may also
have LXD take them on a schedule (snapshots.schedule, .expiry, .pattern).

A request is checked and recorded in one BEGIN IMMEDIATE transaction (a
row in `snapshots` with the action the worker still has to do) and the
LXD work is a `snapshots` job of the instance, so the member's jobs on an
instance run in order and a crash loses nothing: the worker picks the
rows up again. A failed take leaves no row and no LXD snapshot.

Space: on btrfs LXD 5.0.2 reports what each snapshot alone holds; the sum
per instance (instances.snapshot_bytes, measured by the worker and before
each take) counts against the member's disk quota together with the root
disks' sizes. LXD's own project limit (limits.disk) sums only the root
disks' sizes and never snapshots, so Warren also switches the member's
project between restricted.snapshots=allow and block (projects.py): once
the disk quota is full, LXD itself refuses every new snapshot, the
scheduled ones too. The manual snapshot cap is Warren's count (LXD has
no per-project count of snapshots).
"""
import logging
import re
from datetime import datetime, timezone

from . import audit, isolation, jobs, lxd, projects, quotas
from .config import current_settings
from .errors import Conflict, NotFound, QuotaExceeded, ValidationError, WarrenError
from .instances import get_instance, record_event
from .names import PROJECT_PREFIX, project_name
from .passes import each_guarded
from .profiles import current_profiles
from .statuses import READY
from .store import get_db, now, transaction
from .units import show_size

log = logging.getLogger(__name__)
# A subset of what LXD accepts (no space, '/', '?', '&' or '+'): safe in a URL path.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
NAME_RULE = ("Use 1 to 63 letters, digits, dots, hyphens and underscores, starting with a letter "
             "or digit; or leave it empty for a name with the date and time.")


def _client(instance: dict):
    return lxd.backend(current_settings()).client(instance["project"])


def _ready(instance: dict, doing: str) -> None:
    if instance["status"] != READY:
        raise Conflict(f"{instance['name']} is {instance['status']}; {doing} once it is ready.")


def schedule_of(profile) -> dict | None:
    """The profile's snapshot schedule as members read it, or None."""
    if profile is None or "snapshots.schedule" not in profile.config:
        return None
    return {"schedule": profile.config["snapshots.schedule"],
            "expiry": profile.config.get("snapshots.expiry"),
            "pattern": profile.config.get("snapshots.pattern", "snap%d"),
            "stopped": profile.config.get("snapshots.schedule.stopped") == "true"}


def snapshots_of(user: dict, instance_id) -> tuple[dict, list[dict], str | None]:
    """One of the member's instances, its snapshots (LXD's, with Warren's
    pending actions; manual or scheduled) and LXD's error if it did not answer."""
    instance = get_instance(user, instance_id)
    rows = {row["name"]: row for row in
            get_db()["snapshots"].rows_where("instance_id = ?", [instance["id"]], order_by="id")}
    error, found = None, []
    try:
        found = lxd.list_snapshots(_client(instance), instance["lxd_name"])
    except NotFound:
        pass  # no LXD instance (yet)
    except WarrenError as problem:
        error = str(problem)
    listed = []
    for snapshot in found:
        row = rows.pop(snapshot["name"], None)
        listed.append({**snapshot, "manual": bool(row and row["manual"]),
                       "action": row["action"] if row else None})
    listed += [{"name": name, "size": 0, "created_at": row["created_at"], "expires_at": None,
                "manual": bool(row["manual"]), "action": row["action"]}
               for name, row in rows.items() if row["action"] == "take"]
    return instance, listed, error


def _find(user: dict, instance_id, name: str) -> tuple[dict, dict, list[dict]]:
    """The instance, the named snapshot and all of its snapshots; NotFound
    for a name the instance has no snapshot of."""
    instance, listed, error = snapshots_of(user, instance_id)
    if error:
        raise Conflict(f"LXD did not answer, try again: {error}")
    snapshot = next((item for item in listed if item["name"] == name), None)
    if snapshot is None:
        raise NotFound("No such snapshot.")
    return instance, snapshot, listed


def _automatic_name(taken: set[str]) -> str:
    base = "snap-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}-{number}"
    return name


def take(user: dict, instance_id, name: str = "") -> dict:
    """Queue a snapshot of one of the member's ready instances; refused over
    the manual snapshot cap or when the disk quota (snapshots included) is full."""
    instance, listed, error = snapshots_of(user, instance_id)
    name = (name or "").strip()
    if name and not NAME.fullmatch(name):
        raise ValidationError({"name": [NAME_RULE]})
    _ready(instance, "take snapshots")
    if error:
        raise Conflict(f"LXD did not answer, try again: {error}")
    taken = {item["name"] for item in listed}
    if name in taken:
        raise ValidationError({"name": [f"{instance['name']} has a snapshot named {name} "
                                        "already; choose another name."]})
    name = name or _automatic_name(taken)
    db = get_db()
    measure(db, current_settings(), user)  # what the snapshots hold now counts
    with audit.audited(db, user["username"], "snapshot.take", f"{instance['fqdn']}/{name}",
                       member=user["username"]):
        with transaction(db):
            quotas.check_one_more(db, user, "snapshots")
            quota, used = quotas.quota_for(db, user), quotas.usage(db, user["id"])
            if used["disk"] >= quota.disk:
                raise QuotaExceeded(
                    f"Over quota — disk: your root disks and snapshots use "
                    f"{show_size(used['disk'])} of your {show_size(quota.disk)}, and "
                    "snapshots count against it; delete snapshots or ask for more first.")
            if db["snapshots"].count_where("instance_id = ? AND name = ?", [instance["id"], name]):
                raise ValidationError({"name": [f"A snapshot named {name} is on its way already."]})
            row_id = db["snapshots"].insert({"instance_id": instance["id"], "name": name,
                                             "manual": 1, "action": "take",
                                             "created_at": now()}).last_pk
            record_event(db, instance["id"], "snapshot", f"Snapshot {name} requested.")
            jobs.enqueue(db, instance["id"], "snapshots")
    jobs.wake_worker(current_settings())
    return db["snapshots"].get(row_id)


def restore_warnings(instance: dict, snapshot: dict, listed: list[dict], state: str) -> list[str]:
    """What a restore to this snapshot loses (and keeps), as the member reads it."""
    when = snapshot["created_at"][:19].replace("T", " ")
    warnings = [f"Everything written to {instance['name']}'s disk since {when} UTC is lost, "
                "and its settings go back to what they were then (Warren sets its address "
                "and limits again)."]
    if state == "Running":
        warnings.append(f"{instance['name']} is running: it is shut down (cleanly, forced after "
                        "30 s) and started again after the restore. Its running programs and "
                        "anything they have not saved are lost.")
    newer = [item["name"] for item in listed if item["created_at"] > snapshot["created_at"]
             and item["action"] != "take"]
    if newer:
        warnings.append(f"Newer snapshots ({', '.join(newer)}) are kept: on this server's btrfs "
                        "storage LXD does not delete them on a restore (it would on ZFS). What you "
                        "wrote after this snapshot survives only in them.")
    return warnings


def restore_plan(user: dict, instance_id, name: str) -> tuple[dict, dict, list[str], bool]:
    """The instance, the snapshot, what restoring it loses, and whether
    the member must confirm (the instance runs, or newer snapshots exist)."""
    instance, snapshot, listed = _find(user, instance_id, name)
    try:
        state = lxd.instance_states(_client(instance)).get(instance["lxd_name"], "-")
    except WarrenError:
        state = "Running"  # unknown: assume the worst
    warnings = restore_warnings(instance, snapshot, listed, state)
    return instance, snapshot, warnings, len(warnings) > 1


def _queue(user: dict, instance: dict, snapshot: dict, action: str) -> None:
    db = get_db()
    with audit.audited(db, user["username"], f"snapshot.{action}",
                       f"{instance['fqdn']}/{snapshot['name']}", member=user["username"]):
        with transaction(db):
            rows = list(db["snapshots"].rows_where("instance_id = ? AND name = ?",
                                                   [instance["id"], snapshot["name"]]))
            if rows and rows[0]["action"]:
                raise Conflict(f"Snapshot {snapshot['name']} is being "
                               f"{ {'take': 'taken', 'restore': 'restored', 'delete': 'deleted'}[rows[0]['action']]} "
                               "already; wait until that is done.")
            if rows:
                db["snapshots"].update(rows[0]["id"], {"action": action})
            else:  # a scheduled snapshot: recorded while the worker acts on it
                db["snapshots"].insert({"instance_id": instance["id"], "name": snapshot["name"],
                                        "manual": 0, "action": action, "created_at": now()})
            record_event(db, instance["id"], "snapshot",
                         f"{'Restore to' if action == 'restore' else 'Deletion of'} snapshot "
                         f"{snapshot['name']} requested.")
            jobs.enqueue(db, instance["id"], "snapshots")
    jobs.wake_worker(current_settings())


def restore(user: dict, instance_id, name: str, confirmed: bool, always_confirm: bool = False) -> list[str]:
    """Queue a restore of one of the member's snapshots; without confirmation,
    refused (naming what would be lost) when the instance runs or newer
    snapshots exist, or in any case with always_confirm (the API: no page
    showed the warnings before the request). The warnings, as shown."""
    instance, snapshot, warnings, must_confirm = restore_plan(user, instance_id, name)
    _ready(instance, "restore snapshots")
    if (must_confirm or always_confirm) and not confirmed:
        unseen = warnings if always_confirm else warnings[1:]  # the page shows the first one
        raise ValidationError({"confirm": ["Confirm that you accept this: " + " ".join(unseen)]})
    _queue(user, instance, snapshot, "restore")
    return warnings


def remove(user: dict, instance_id, name: str) -> None:
    """Queue the deletion of one of the member's snapshots."""
    instance, snapshot, _listed = _find(user, instance_id, name)
    _queue(user, instance, snapshot, "delete")


def apply(db, settings, instance: dict, after_restore) -> None:
    """The worker's part: the instance's pending snapshot actions, in the
    order asked. after_restore(client) sets again what Warren manages on
    the instance (LXD put back the snapshot's config). A failed action is
    undone and told in the history; the others still run; the first error
    is raised at the end."""
    client = lxd.backend(settings).client(instance["project"])
    first_error = None
    for row in list(db["snapshots"].rows_where("instance_id = ? AND action IS NOT NULL",
                                               [instance["id"]], order_by="id")):
        try:
            message = _act(client, settings, instance, row, after_restore)
        except WarrenError as error:
            first_error = first_error or error
            _undo(db, client, instance, row, error)
            continue
        with transaction(db):
            if row["action"] == "delete" or not row["manual"]:
                db.execute("DELETE FROM snapshots WHERE id = ?", [row["id"]])
            else:
                db["snapshots"].update(row["id"], {"action": None})
            record_event(db, instance["id"], "snapshot", message)
    _settle_space(db, settings, instance)
    if first_error:
        raise first_error


def _act(client, settings, instance: dict, row: dict, after_restore) -> str:
    name, lxd_name = row["name"], instance["lxd_name"]
    if row["action"] == "take":
        if name not in {item["name"] for item in lxd.list_snapshots(client, lxd_name)}:
            lxd.take_snapshot(client, lxd_name, name)
        return f"Snapshot {name} taken."
    if row["action"] == "delete":
        lxd.delete_snapshot(client, lxd_name, name)
        return f"Snapshot {name} deleted."
    found = lxd.get_instance(client, lxd_name)
    if found is None or found.config.get("user.warren.id") != str(instance["id"]):
        raise Conflict(f"{lxd_name} is missing from LXD")
    running = found.status == "Running"
    if running:
        lxd.set_power(found, "stop")
    lxd.restore_snapshot(client, lxd_name, name)
    after_restore(client)
    if running:
        lxd.set_power(found, "start")
        isolation.guard_bridge(settings)  # a new port: held to its MAC
    return f"Restored to snapshot {name}" + (" and started again." if running else ".")


def _undo(db, client, instance: dict, row: dict, error: WarrenError) -> None:
    """Leave nothing half-done: a snapshot that could not be taken is not
    kept (in LXD either); a restore or deletion that failed is no longer pending."""
    if row["action"] == "take":
        try:
            lxd.delete_snapshot(client, instance["lxd_name"], row["name"])
        except WarrenError as again:
            log.warning("could not remove the half-taken snapshot %s: %s", row["name"], again)
    with transaction(db):
        if row["action"] == "take" or not row["manual"]:
            db.execute("DELETE FROM snapshots WHERE id = ?", [row["id"]])
        else:
            db["snapshots"].update(row["id"], {"action": None})
        verb = {"take": "Taking", "restore": "Restoring to", "delete": "Deleting"}[row["action"]]
        record_event(db, instance["id"], "snapshot", f"{verb} snapshot {row['name']} failed: {error}")


def abandon(db, instance: dict, error: WarrenError) -> None:
    """After a job that stopped half-way (a crash): every action still
    pending is undone and told, as a failed one would be."""
    client = lxd.backend(current_settings()).client(instance["project"])
    for row in list(db["snapshots"].rows_where("instance_id = ? AND action IS NOT NULL",
                                               [instance["id"]], order_by="id")):
        _undo(db, client, instance, row, error)


def _measure_instance(db, client, instance: dict) -> int:
    try:
        held = sum(item["size"] for item in lxd.list_snapshots(client, instance["lxd_name"]))
    except NotFound:
        held = 0  # gone from LXD: nothing held
    if held != instance["snapshot_bytes"]:
        with transaction(db):
            db["instances"].update(instance["id"], {"snapshot_bytes": held})
    return held


def measure(db, settings, user: dict) -> int:
    """Read from LXD what each of the member's instances' snapshots hold and
    store it (it counts against the disk quota); the member's total."""
    client = lxd.backend(settings).client(project_name(user["username"]))
    return sum(_measure_instance(db, client, row) for row in
               db["instances"].rows_where("user_id = ? AND status = ?", [user["id"], READY]))


def _settle_space(db, settings, instance: dict) -> None:
    """After snapshots changed: their space measured again, and LXD told
    whether the member may take more (restricted.snapshots)."""
    user = db["users"].get(instance["user_id"])
    measure(db, settings, user)
    projects.ensure_member_project(settings, user["username"], quotas.quota_for(db, user),
                                   current_profiles())


def measure_all(db, settings) -> list[str]:
    """The periodic pass: every member's snapshot space measured (scheduled
    snapshots come and expire on their own, and a snapshot grows as its
    instance's data changes), and their projects allowed or refused new
    snapshots accordingly. Lines for members whose allowance changed."""
    existing = set(lxd.project_names(lxd.backend(settings).client(), PROJECT_PREFIX,
                                     projects.installation()))
    users = [user for user in db["users"].rows_where(
        "deleting = 0 AND id IN (SELECT user_id FROM instances WHERE status = ?)", [READY])
        if project_name(user["username"]) in existing]  # never make a project here

    def settle(user):
        measure(db, settings, user)
        quota, name = quotas.quota_for(db, user), project_name(user["username"])
        before = projects.applied_digest(name)
        projects.ensure_member_project(settings, user["username"], quota, current_profiles())
        if before is None or projects.applied_digest(name) == before:
            return None
        allowed = quotas.snapshots_allowed(quota, quotas.usage(db, user["id"]))
        return f"{user['username']}: new snapshots {'allowed' if allowed else 'refused (disk full)'}"

    return [line for line in each_guarded(users, lambda user: f"the snapshots of {user['username']}",
                                           settle) if line]
