"""Cluster maintenance: the members and their state, evacuating and
restoring a member, and moving one instance to another member. LXD does
the work (its evacuation, its migration); Warren lists beforehand which
instances will move and which will only stop, carries the request out in
the worker, keeps each instance's row in line with where it now runs, and
tells the instance's member on their dashboard.

  evacuate/restore: request (admin, audited) -> the worker's `maintenance`
  pass runs LXD's evacuation or restore -> rows' locations refreshed -> a
  line in each affected instance's history -> done / failed.
  move: request (admin, audited) -> a `move` job: stopped if running, moved
  by LXD migration (name, address, keys and config go with it), started
  again, its port guarded -> history line and audit.
"""
import json
import logging
from datetime import datetime, timedelta, timezone

from . import audit, hostroutes, isolation, jobs, lxd
from .config import current_settings
from .errors import Conflict, NotFound, ValidationError
from .instances import record_event
from .names import member_of
from .statuses import READY
from .store import get_db, now, transaction

log = logging.getLogger(__name__)
NOTICE_DAYS = 14  # how long a member's dashboard mentions a maintenance move or stop


def members(settings) -> list[lxd.Member]:
    """The cluster's members with LXD's state of each ([] on one server)."""
    return lxd.backend(settings).members()


def _member(settings, name: str) -> lxd.Member:
    found = [member for member in members(settings) if member.name == name]
    if not found:
        raise NotFound(f"No cluster member {name} (the members are: "
                       f"{', '.join(m.name for m in members(settings)) or 'none, this is one server'}).")
    return found[0]


def plan(db, settings, member: str) -> list[dict]:
    """What evacuating the member would do: each instance on it with its
    Warren owner (or none), whether it moves or stays stopped, and why."""
    _member(settings, member)
    rows = {(row["project"], row["lxd_name"]): row for row in db["instances"].rows}
    found = []
    for item in lxd.instances_on(lxd.backend(settings).client(), member):
        row = rows.get((item["project"], item["name"]))
        found.append({**item, "fqdn": row["fqdn"] if row else None,
                      "owner": member_of(row["project"]) if row else None,
                      "instance_id": row["id"] if row else None})
    return sorted(found, key=lambda item: (item["stays"] is not None, item["fqdn"] or item["name"]))


def request(db, settings, actor: str, member: str, action: str) -> dict:
    """Ask the worker to evacuate or restore a member (audited); the row."""
    with audit.audited(db, actor, f"cluster.{action}", member):
        if action not in ("evacuate", "restore"):
            raise ValidationError({"action": ["must be evacuate or restore"]})
        state = _member(settings, member).status
        if action == "evacuate" and state != "Online":
            raise Conflict(f"{member} is {state}: only an online member can be evacuated.")
        if action == "restore" and state != "Evacuated":
            raise Conflict(f"{member} is {state}: only an evacuated member can be restored.")
        steps = plan(db, settings, member) if action == "evacuate" else []
        with transaction(db):
            if db["maintenance"].count_where("member = ? AND state IN ('pending', 'running')",
                                             [member]):
                raise Conflict(f"Maintenance of {member} is already under way; wait for it to end.")
            row_id = db["maintenance"].insert({
                "member": member, "action": action, "requested_by": actor,
                "requested_at": now(), "plan": json.dumps(
                    [{"project": step["project"], "name": step["name"], "fqdn": step["fqdn"],
                      "stays": step["stays"]} for step in steps])}).last_pk
    jobs.wake_worker(settings)
    return db["maintenance"].get(row_id)


def history(db, limit: int = 20) -> list[dict]:
    """The latest maintenance requests, newest first, with their plans."""
    return [{**row, "plan": json.loads(row["plan"])} for row in
            db["maintenance"].rows_where(order_by="id DESC", limit=limit)]


def advance(db, settings) -> list[str]:
    """The worker's pass: carry out waiting evacuations and restores, one
    at a time; a line per request finished."""
    lines = []
    while True:
        with transaction(db):
            row = db.execute("SELECT id FROM maintenance WHERE state = 'pending' ORDER BY id "
                             "LIMIT 1").fetchone()
            if row is None:
                return lines
            db["maintenance"].update(row[0], {"state": "running", "claimed_by": jobs.worker_id()})
        lines.append(_carry_out(db, settings, db["maintenance"].get(row[0])))


def resume(db) -> int:
    """At the worker's start: requests a worker was carrying out when it
    died go back to waiting, so they are finished (LXD's own operation went
    on without it); how many."""
    with transaction(db):
        interrupted = [row for row in db["maintenance"].rows_where("state = 'running'")
                       if jobs.died(row["claimed_by"])]
        for row in interrupted:
            db["maintenance"].update(row["id"], {"state": "pending"})
            audit.record(db, audit.WORKER, f"cluster.{row['action']}", row["member"], "resumed",
                         detail="the worker carrying it out had stopped")
    return len(interrupted)


# A member's state once LXD's evacuation or restore of it is over.
END_STATE = {"evacuate": "Evacuated", "restore": "Online"}


def _carry_out(db, settings, row: dict) -> str:
    client = lxd.backend(settings).client()
    member, action = row["member"], row["action"]
    # Where Warren last saw its instances (not LXD's view now: a request
    # resumed after the worker died finds LXD's evacuation already done).
    before = {(item["project"], item["lxd_name"]): item["location"]
              for item in db["instances"].rows_where("location != ''")}
    try:
        done_already = _member(settings, member).status == END_STATE[action]
        if action == "evacuate" and not done_already:
            lxd.evacuate_member(client, member)
        elif action == "restore":
            if not done_already:
                lxd.restore_member(client, member)
            _bring_back(db, settings, member)
    except Exception as error:  # LXD's own message, for the admin
        with transaction(db):
            db["maintenance"].update(row["id"], {"state": "failed", "error": str(error),
                                                 "finished_at": now()})
            audit.record(db, audit.WORKER, f"cluster.{action}", member, "failed", detail=str(error))
        _tell_members(db, settings, member, action, before)  # some may have moved before it failed
        hostroutes.sync(db, settings)
        return f"{action} of {member} failed: {error}"
    told = _tell_members(db, settings, member, action, before)
    hostroutes.sync(db, settings)  # this host reaches them where they now run
    with transaction(db):
        db["maintenance"].update(row["id"], {"state": "done", "finished_at": now()})
        audit.record(db, audit.WORKER, f"cluster.{action}", member,
                     detail=f"{told} Warren instance(s) moved or stopped")
    return f"{action} of {member} done ({told} instance(s) of members affected)"


def _bring_back(db, settings, member: str) -> None:
    """Move back what the member's last evacuation moved away. LXD's restore
    finds those instances by volatile.evacuate.origin, which LXD 5.0.2 drops
    when it migrates an instance of a restricted project (every member's
    project is one), so it would leave them where they went: Warren moves
    them back itself, from the evacuation's plan."""
    last = db.execute("SELECT plan FROM maintenance WHERE member = ? AND action = 'evacuate' "
                      "AND state = 'done' ORDER BY id DESC LIMIT 1", [member]).fetchone()
    moved = {(step["project"], step["name"]) for step in json.loads(last[0]) if step["stays"] is None} \
        if last else set()
    where = lxd.locations(lxd.backend(settings).client())
    for row in list(db["instances"].rows):
        key = (row["project"], row["lxd_name"])
        if key in moved and where.get(key) not in (None, member):
            _move(settings, row, member)


def _move(settings, instance: dict, target: str) -> str:
    """Stop (if running), migrate to target, start again and guard the new
    port; the member it was on."""
    client = lxd.backend(settings).client(instance["project"])
    found = lxd.get_instance(client, instance["lxd_name"])
    if found is None:
        raise NotFound(f"{instance['lxd_name']} is missing from LXD")
    origin = lxd.location(found)
    if origin != target:
        running = found.status == "Running"
        if running:
            lxd.set_power(found, "stop")
        lxd.move_instance(client, instance["lxd_name"], target)
        if running:
            lxd.set_power(lxd.get_instance(client, instance["lxd_name"]), "start")
            isolation.guard_started(settings, client, instance["lxd_name"])
    return origin


def _tell_members(db, settings, member: str, action: str, before: dict) -> int:
    """Refresh each row's location and put a line in the history of every
    instance the maintenance moved, stopped or brought back."""
    client = lxd.backend(settings).client()
    after = lxd.locations(client)
    states = {}
    told = 0
    for row in list(db["instances"].rows_where("location != '' OR move_to IS NOT NULL")):
        key = (row["project"], row["lxd_name"])
        was, now_on = before.get(key), after.get(key)
        if now_on is None:
            continue
        if now_on != row["location"]:
            db["instances"].update(row["id"], {"location": now_on})
        if was != member and now_on != member:
            continue  # not on the member before or after: untouched
        if was != now_on:
            message = (f"Moved from {was} to {now_on} while {member} is under maintenance."
                       if action == "evacuate" else f"Moved back to {now_on}: its maintenance is over.")
        elif action == "evacuate" and row["status"] == READY:
            if not states:
                states = {(item["project"], item["name"]): item["status"]
                          for item in lxd.instances_on(client, member)}
            if states.get(key) != "Stopped":
                continue
            message = (f"Stopped while {member} is under maintenance (it cannot move: see your "
                       "admin); it starts again when the maintenance is over.")
        elif action == "restore":
            message = f"Started again on {now_on}: its maintenance is over."
        else:
            continue
        with transaction(db):
            record_event(db, row["id"], "maintenance", message)
        told += 1
    return told


def notices(user: dict) -> list[dict]:
    """Maintenance lines of the member's instances from the last
    NOTICE_DAYS days, newest first (for their dashboard)."""
    since = (datetime.now(timezone.utc) - timedelta(days=NOTICE_DAYS)).isoformat(timespec="seconds")
    return [dict(zip(("name", "at", "message"), row)) for row in get_db().execute(
        "SELECT instances.name, events.at, events.message FROM events JOIN instances "
        "ON instances.id = events.instance_id WHERE instances.user_id = ? "
        "AND events.step = 'maintenance' AND events.at >= ? "
        "ORDER BY events.id DESC LIMIT 20", [user["id"], since])]


def request_move(db, settings, actor: str, instance_id: int, target: str) -> dict:
    """Ask the worker to move an instance to another member (audited)."""
    rows = list(db["instances"].rows_where("id = ?", [instance_id]))
    if not rows:
        raise NotFound("No such instance.")
    instance = rows[0]
    with audit.audited(db, actor, "instance.move", instance["fqdn"],
                       member=member_of(instance["project"]), detail=f"to {target}"):
        state = _member(settings, target).status
        if state != "Online":
            raise Conflict(f"{target} is {state}: instances move only to an online member.")
        if instance["location"] == target:
            raise Conflict(f"{instance['name']} already runs on {target}.")
        if instance["status"] != READY:
            raise Conflict(f"{instance['name']} is {instance['status']}: only a ready instance "
                           "can be moved.")
        with transaction(db):
            db["instances"].update(instance["id"], {"move_to": target})
            jobs.enqueue(db, instance["id"], "move")
    jobs.wake_worker(settings)
    return instance


def move_job(db, instance: dict) -> None:
    """The move job: stop, migrate, start again, guard the new port."""
    target = instance["move_to"]
    origin = _move(current_settings(), instance, target)
    with transaction(db):
        db["instances"].update(instance["id"], {"location": target, "move_to": None})
        record_event(db, instance["id"], "maintenance", f"Moved from {origin} to {target} by an admin.")
    hostroutes.sync(db, current_settings())


def move_failed(db, instance: dict, error) -> None:
    """A move that failed: the row keeps where LXD says the instance is."""
    with transaction(db):
        db["instances"].update(instance["id"], {"move_to": None})
        record_event(db, instance["id"], "maintenance", f"Not moved: {error}")
