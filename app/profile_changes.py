"""Admins' profile changes: review, save, delete.

The YAML files stay the source of truth. A change is first reviewed: the
same parser as the files validates it, and the review lists what changes
in LXD, which instances follow (LXD applies profile changes live), and
which members would go over quota (then the save is refused). A save
writes the file atomically and syncs the LXD profile in every member
project; if LXD refuses, the old file is put back and synced again, so
files and LXD never disagree.
"""
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import audit, projects, quotas
from .config import current_settings
from .errors import Conflict, NotFound, PreconditionFailed, WarrenError
from .locks import held
from .statuses import RELEASED
from .profiles import Profile, parse_profile, profile_set
from .store import get_db, now, transaction
from .units import format_size


@dataclass
class Review:
    """What saving a profile would do."""
    profile: Profile
    created: bool
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # key, old, new
    affected: list[dict] = field(default_factory=list)  # instances that follow
    problems: list[str] = field(default_factory=list)  # why it would be refused
    notes: list[str] = field(default_factory=list)  # what the admin should know


@contextmanager
def _folder_lock():
    """One profile change at a time, across web workers."""
    with held(profile_set().folder / ".lock"):
        yield


def _flat(profile: Profile | None) -> dict[str, str]:
    if profile is None:
        return {}
    flat = {f"config {key}": value for key, value in profile.lxd_config().items()}
    if profile.is_vm:
        flat["CPUs (applied at the VM's next start)"] = str(profile.limits.cpu)
    flat["root disk size"] = format_size(profile.limits.disk)
    flat["instance type"] = profile.instance_type
    flat["images"] = ", ".join(profile.images)
    flat["approval"] = "required" if profile.approval else "not required"
    flat["lease"] = (f"{profile.lease_hours} h, {profile.lease_renewals} renewal(s), "
                     f"{profile.lease_grace_hours} h grace" if profile.lease_hours else "none")
    flat["placement (new instances)"] = profile.placement or "any cluster member"
    return flat


def using(name: str) -> list[dict]:
    """Instances that hold resources under a profile, with their member."""
    placeholders = ", ".join("?" for _ in RELEASED)
    return list(get_db().query(
        "SELECT i.id, i.fqdn, i.status, i.user_id, i.cpu, i.memory, i.disk, i.processes, u.username "
        f"FROM instances i JOIN users u ON u.id = i.user_id WHERE i.profile = ? "
        f"AND i.status NOT IN ({placeholders}) ORDER BY i.fqdn", [name, *RELEASED]))


def _quota_problems(profile: Profile, affected: list[dict]) -> list[str]:
    """Members whose use would pass their quota with the new limits."""
    db = get_db()
    problems = []
    for username in sorted({row["username"] for row in affected}):
        mine = [row for row in affected if row["username"] == username]
        user = db["users"].get(mine[0]["user_id"])
        quota = quotas.quota_for(db, user)
        used = quotas.usage(db, user["id"])
        for key in ("cpu", "memory", "disk", "processes"):
            used[key] += sum(getattr(profile.limits, key) - row[key] for row in mine)
        over = [f"{label} {used_text} of {allowed}"
                for label, used_text, allowed in quotas.exceeded(quota, used)]
        if profile.nesting and not quota.nesting:
            over.append("nesting, which their share does not allow")
        if over:
            problems.append(f"{username} would use " + ", ".join(over))
    return problems


def review(name: str, text: str, creating: bool) -> Review:
    """Validate a profile's new YAML and say what saving it would do."""
    profile = parse_profile(name, text, f"{name}.yaml")
    old = profile_set().get(name)
    if creating and old is not None:
        raise Conflict(f"A profile named {name} exists already; edit it instead.")
    if not creating and old is None:
        raise NotFound(f"No profile named {name}.")
    before, after = _flat(old), _flat(profile)
    result = Review(profile=profile, created=old is None)
    result.changes = [(key, before.get(key, "-"), after.get(key, "-"))
                      for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    result.affected = using(name)
    if old is not None and old.instance_type != profile.instance_type and result.affected:
        result.problems.append(f"the instance type cannot change while {len(result.affected)} "
                               f"instance(s) use the profile")
    result.problems += _quota_problems(profile, result.affected)
    if old is not None and profile.is_vm and old.limits.cpu != profile.limits.cpu and result.affected:
        result.notes.append(f"CPUs of the {len(result.affected)} VM(s) change from {old.limits.cpu} "
                            f"to {profile.limits.cpu} at their next start or restart: Warren never "
                            "changes the CPUs of a running VM.")
    return result


def _sync_all() -> None:
    db = get_db()
    usernames = [row[0] for row in db.execute("SELECT username FROM users WHERE deleting = 0")]
    projects.sync_existing(current_settings(), db, usernames)


def version(text: str) -> str:
    """A profile text's version, as an HTTP entity tag (quoted)."""
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def save(actor: dict, name: str, text: str, creating: bool, if_match: list[str] | None = None) -> Review:
    """Write a reviewed profile and bring every member project in line;
    refused, naming the members, when anyone would go over quota, and, when
    `if_match` is given, when the file is no longer one of those versions
    (someone saved meanwhile)."""
    db = get_db()
    action = "profile.create" if creating else "profile.edit"
    with audit.audited(db, actor["username"], action, name or "-") as note:
        with _folder_lock():
            if if_match is not None and "*" not in if_match:
                current = profile_set().text(name) if profile_set().get(name) is not None else None
                if current is None or version(current) not in if_match:
                    raise PreconditionFailed(f"The profile {name} changed since you read it; read "
                                             "it again, review and save.")
            result = review(name, text, creating)
            note["detail"] = "; ".join(f"{key}: {old} -> {new}" for key, old, new in result.changes) \
                or "no change"
            if result.problems:
                raise Conflict("Not saved: " + "; ".join(result.problems) + ".")
            _change_file(name, text)
            align_rows(db, profile_set().all())
    return result


def align_rows(db, profiles: dict) -> int:
    """Give instance rows their profile's current limits, which quota
    checks count (after a save, or a file edited on disk); returns how
    many rows changed."""
    changed = 0
    placeholders = ", ".join("?" for _ in RELEASED)
    with transaction(db):
        for row in list(db["instances"].rows_where(f"status NOT IN ({placeholders})", list(RELEASED))):
            profile = profiles.get(row["profile"])
            if profile is None:
                continue
            limits = {key: getattr(profile.limits, key) for key in ("cpu", "memory", "disk", "processes")}
            if any(row[key] != value for key, value in limits.items()):
                db["instances"].update(row["id"], {**limits, "updated_at": now()})
                changed += 1
    return changed


def _change_file(name: str, text: str | None) -> None:
    """Write a profile's file (remove it, for None) and sync every member
    project; if LXD refuses, the old file is put back and synced again."""
    folder = profile_set()
    previous = folder.text(name) if folder.path(name).exists() else None

    def put(content: str | None) -> None:
        if content is None:
            folder.remove(name)
        else:
            folder.write(name, content)

    put(text)
    try:
        _sync_all()
    except WarrenError as error:
        put(previous)
        try:
            _sync_all()
        except WarrenError:
            pass  # the worker's next pass brings LXD in line with the files
        raise type(error)(f"LXD refused the change, so the file was put back: {error}") from error


def delete(actor: dict, name: str) -> None:
    """Delete a profile nobody uses; refused with the list of its instances."""
    db = get_db()
    with audit.audited(db, actor["username"], "profile.delete", name or "-"):
        with _folder_lock():
            if profile_set().get(name) is None:
                raise NotFound(f"No profile named {name}.")
            users = using(name)
            if users:
                raise Conflict(f"{name} is in use by {len(users)} instance(s): "
                               + ", ".join(row["fqdn"] for row in users)
                               + ". Delete those first.")
            _change_file(name, None)
