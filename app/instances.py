"""Members' instances: requests, listing and actions. The LXD and DNS work is
done by the worker (provisioning.py); this module only validates, reserves
and queues, so a request returns at once.

A request is reserved in one BEGIN IMMEDIATE transaction: the name, the
quota room and a static address (two with IPv6 on) are checked and taken
together, so concurrent requests cannot overbook.
"""
import re
from datetime import timedelta


from . import addresses, audit, clock, jobs, lxd, offline, quotas, sshkeys, statuses
from .config import current_settings
from .errors import BackendError, Conflict, NotFound, ValidationError
from .keys import saved_keys
from .names import fqdn_for, lxd_name, project_name
from .profiles import current_profiles
from .projects import installation, usable_profiles
from .store import get_db, new_id, now, select_rows, transaction

NAME = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")


def _check_name(name: str, username: str, zone: str) -> list[str]:
    if not NAME.fullmatch(name or ""):
        return ["Use lower-case letters, digits and hyphens (up to 63), starting with a letter "
                "and not ending with a hyphen: it becomes a DNS name and the hostname."]
    if name[2:4] == "--":
        return ["Names with -- in third and fourth place are reserved for internationalised DNS names."]
    if len(fqdn_for(name, username, zone)) > 253:
        return ["This name makes the DNS name longer than 253 characters."]
    return []


def _chosen_keys(user: dict, keys_text: str, saved_ids: list) -> tuple[list, list[str]]:
    keys, problems = sshkeys.parse_keys(keys_text)
    stored = {str(row["id"]): row for row in saved_keys(user["id"])}
    chosen = [sshkeys.parse_key(stored[str(key_id)]["public_key"])
              for key_id in saved_ids if str(key_id) in stored]
    known = {key.fingerprint for key in chosen}
    chosen += [key for key in keys if key.fingerprint not in known]
    if not chosen and not problems:
        problems.append("Paste at least one SSH public key, or pick a saved one.")
    return chosen, problems


def request_instance(user: dict, name: str, profile_name: str, image: str, keys_text: str = "",
                     saved_key_ids: list | None = None, approved: bool = False) -> dict:
    """Validate every field, reserve name, quota and address, queue the job
    (or put it in the approval queue when the profile asks for that, unless
    an admin approved it beforehand: an event's machines)."""
    target = fqdn_for((name or "").strip().lower(), user["username"], current_settings().dns_zone)
    with audit.audited(get_db(), user["username"], "instance.request", target,
                       member=user["username"], detail=f"profile {profile_name}, image {image}"):
        return _request_instance(user, name, profile_name, image, keys_text, saved_key_ids,
                                 approved)


def _request_instance(user, name, profile_name, image, keys_text, saved_key_ids,
                      approved=False) -> dict:
    settings = current_settings()
    name = (name or "").strip().lower()
    errors: dict[str, list[str]] = {}
    problems = _check_name(name, user["username"], settings.dns_zone)
    if problems:
        errors["name"] = problems
    quota = quotas.quota_for(get_db(), user)
    profile = usable_profiles(current_profiles(), quota).get(profile_name or "")
    if profile is None:
        errors["profile"] = [f"Choose one of: {', '.join(sorted(usable_profiles(current_profiles(), quota)))}."]
    elif reason := unavailable(profile):
        errors["profile"] = [f"{profile.name} is unavailable on this server: {reason}."]
    elif image not in profile.images:
        errors["image"] = [f"The {profile.name} profile offers: {', '.join(profile.images)}."]
    elif image not in available_images():
        errors["image"] = [f"The image {image} is not installed on this server; ask an admin."]
    keys, problems = _chosen_keys(user, keys_text, saved_key_ids or [])
    if problems:
        errors["keys"] = problems
    if errors:
        raise ValidationError(errors)

    db = get_db()
    with transaction(db):
        if db["instances"].count_where("user_id = ? AND name = ?", [user["id"], name]):
            raise ValidationError({"name": [f"You already have an instance named {name}."]})
        fqdn = fqdn_for(name, user["username"], settings.dns_zone)
        taken = db.execute("SELECT rtype FROM dns_records WHERE fqdn = ? AND rtype IN "
                           "('CNAME', 'AAAA')", [fqdn]).fetchone()
        if taken:
            raise ValidationError({"name": [f"{fqdn} has a {taken[0]} record of yours; an "
                                            "instance's own addresses cannot sit beside it. "
                                            "Remove the record first, or choose another name."]})
        quota = quotas.quota_for(db, user)  # read again inside the write lock
        quotas.check_room(quota, quotas.usage(db, user["id"]), profile)
        address = addresses.allocate(db, settings.network_address)
        address6 = addresses.allocate_ipv6(db, settings.network_ipv6_prefix) \
            if settings.network_ipv6_prefix else None
        if address is None or (settings.network_ipv6_prefix and address6 is None):
            raise Conflict("No free addresses are left on Warren's network; ask an admin.")
        stamp = now()
        waits = profile.approval and user["role"] != "admin" and not approved
        instance_id = new_id(db, "instances")
        db["instances"].insert({
            "id": instance_id, "lxd_name": lxd_name(name, instance_id, installation()),
            "user_id": user["id"], "name": name, "project": project_name(user["username"]),
            "profile": profile.name, "image": image, "instance_type": profile.instance_type,
            "fqdn": fqdn_for(name, user["username"], settings.dns_zone), "ipv4": address, "ipv6": address6,
            "ssh_keys": "\n".join(key.line for key in keys),
            "cpu": profile.limits.cpu, "memory": profile.limits.memory, "disk": profile.limits.disk,
            "processes": profile.limits.processes, "error": None,
            "status": statuses.AWAITING_APPROVAL if waits else statuses.QUEUED,
            "lease_expires_at": lease_end(profile), "created_at": stamp, "updated_at": stamp,
        })
        for key in keys:
            db.execute("INSERT OR IGNORE INTO ssh_keys (user_id, fingerprint, public_key, created_at) "
                       "VALUES (?, ?, ?, ?)", [user["id"], key.fingerprint, key.line, stamp])
        # Recheck with the reservation in place: the sum must still fit.
        quotas.check_within(quota, quotas.usage(db, user["id"]))
        if waits:
            db["approvals"].insert({"user_id": user["id"], "kind": "instance",
                                    "instance_id": instance_id, "created_at": stamp})
            record_event(db, instance_id, statuses.AWAITING_APPROVAL, f"The {profile.name} profile needs "
                         "an admin's approval; the name, quota and address are held meanwhile.")
        else:
            jobs.enqueue(db, instance_id, "provision")  # bounded by the instances quota
            record_event(db, instance_id, statuses.QUEUED, "Request accepted; waiting for the worker.")
    jobs.wake_worker(settings)
    return get_instance(user, instance_id)


def member_quota(user: dict) -> quotas.Quota:
    """The member's allowance (tier and overrides)."""
    return quotas.quota_for(get_db(), user)


def usage(user: dict) -> dict:
    """What the member's instances take now."""
    return quotas.usage(get_db(), user["id"])


def lease_end(profile) -> str | None:
    """When a leased profile's instance expires, counted from now."""
    if not profile.lease_hours:
        return None
    return (clock.now() + timedelta(hours=profile.lease_hours)).isoformat(timespec="seconds")


def unavailable(profile) -> str | None:
    """Why this server cannot run the profile's instance type (LXD's
    reason) or place it where it says, or None when it can."""
    backend = lxd.backend(current_settings())
    if profile.placement:
        groups = lxd.cached(("groups", backend.endpoint), backend.groups)
        group = profile.placement.removeprefix("@")
        if not groups:
            return (f"the profile places instances on the cluster group {profile.placement}, "
                    "but this LXD is not a cluster")
        if not groups.get(group):
            return (f"the profile places instances on the cluster group {profile.placement}, "
                    "which has no members in this LXD cluster")
    return lxd.instance_types(backend).get(profile.instance_type)


def available_images() -> set[str]:
    """Image aliases LXD has (a clear error when LXD is down)."""
    backend = lxd.backend(current_settings())
    return lxd.cached(("aliases", backend.endpoint), lambda: lxd.image_aliases(backend.client()))


def record_event(db, instance_id: int, step: str, message: str) -> None:
    """Append a progress line to an instance's history."""
    db["events"].insert({"instance_id": instance_id, "at": now(), "step": step, "message": message})


def get_instance(user: dict, instance_id) -> dict:
    """One of the member's instances; NotFound for anyone else's."""
    rows = list(get_db()["instances"].rows_where("id = ? AND user_id = ?", [instance_id, user["id"]]))
    if not rows:
        raise NotFound("No such instance.")
    return rows[0]


def list_instances(user: dict, limit: int | None = None, offset: int = 0) -> list[dict]:
    """The member's instances by name with their live LXD state where LXD
    answers: all of them (the dashboard), or `limit` from `offset` (a page
    of the API), cut in SQL so a page reads only its own rows."""
    return with_live_state(user, select_rows(
        get_db(), "SELECT * FROM instances WHERE user_id = ? ORDER BY name LIMIT ? OFFSET ?",
        [user["id"], -1 if limit is None else limit, offset]))  # LIMIT -1: no limit


def with_live_state(user: dict, rows: list[dict]) -> list[dict]:
    """The rows with LXD's state of each (`state`: Running, Stopped, ...; "-"
    when LXD has no such instance, "unknown" when LXD does not answer), from
    one read of the member's project; no read at all for no rows.

    One request for the whole project, not a filtered one: LXD 5.0 renders
    every instance of the project before it applies a `filter` (and compiles
    each name clause's pattern once per instance), so a filter for a page of
    50 cost more than the whole list (measured with 300 instances: 196 ms
    with one clause, 496 ms with 50, 114 ms unfiltered)."""
    if not rows:
        return rows
    try:
        states = lxd.instance_states(
            lxd.backend(current_settings()).client(project_name(user["username"])))
    except NotFound:
        states = {}  # no project yet
    except BackendError:
        states = None
    for row in rows:
        row["state"] = "unknown" if states is None else states.get(row["lxd_name"], "-")
    return rows


def events(user: dict, instance_id) -> list[dict]:
    """The progress history of one of the member's instances."""
    get_instance(user, instance_id)
    return list(get_db()["events"].rows_where("instance_id = ?", [instance_id], order_by="id"))


def request_action(user: dict, instance_id, action: str, actor: dict | None = None) -> str | None:
    """Queue start, stop, restart or delete for one of the member's instances
    (on the member's behalf by `actor`, an admin, when given). Returns what
    the member should know when the action has to wait (its cluster member
    is offline), else None."""
    instance = get_instance(user, instance_id)
    if action not in jobs.POWER + ("delete",):
        raise NotFound("No such action.")
    with audit.audited(get_db(), (actor or user)["username"], f"instance.{action}", instance["fqdn"],
                       member=user["username"]):
        _queue_action(instance, action)
    return offline.waiting_note(current_settings(), instance, action)


def lease_blocks_start(instance: dict) -> bool:
    """Whether the instance was stopped at its lease's end and may only run
    again after a renewal."""
    return bool(instance["lease_expires_at"]) and instance["lease_state"] == "expired"


def _queue_action(instance: dict, action: str) -> None:
    if action in jobs.POWER and instance["status"] != statuses.READY:
        raise Conflict(f"{instance['name']} is {instance['status']}; wait until it is ready.")
    if action in ("start", "restart") and lease_blocks_start(instance):
        raise Conflict(f"The lease of {instance['name']} has expired; renew it to start it again.")
    db = get_db()
    with transaction(db):
        if action == "delete":
            if instance["status"] == statuses.DELETING:
                return
            db["instances"].update(instance["id"], {"status": statuses.DELETING, "updated_at": now()})
            record_event(db, instance["id"], statuses.DELETING, "Deletion requested.")
            jobs.cancel_power(db, instance["id"])
            jobs.enqueue(db, instance["id"], action)  # always taken: it frees what the member holds
        else:
            jobs.enqueue(db, instance["id"], action, member_limit=current_settings().member_job_limit)
    jobs.wake_worker(current_settings())
