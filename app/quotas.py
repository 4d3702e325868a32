"""Member quotas: share tiers, current use, and the check made before acting.

The check runs inside the reservation transaction (BEGIN IMMEDIATE), so two
requests cannot both see room for one more instance. The same numbers are
mirrored into the member's LXD project limits, so LXD refuses too.
"""
import json
import re
from dataclasses import asdict, dataclass, fields, replace

from .errors import NotFound, QuotaExceeded, ValidationError
from .statuses import RELEASED, sql_list
from .units import UNITS, format_size, parse_size, show_size, shown

GiB = 1024 ** 3
TIER_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
WHOLE = re.compile(r"[0-9]{1,19}")  # int() of a longer string costs time, and no quota needs it
SIZES = ("memory", "disk")
# The largest value of each quota: far above any co-op's host, and still a
# number LXD and the kernel take. Every quota is at least 0.
MAXIMUM = {"instances": 1000, "cpu": 1024, "memory": UNITS["PiB"], "disk": UNITS["PiB"],
           "processes": 10_000_000, "cpu_priority": 10, "forwards": 1000,
           "records": 10_000, "domains": 1000, "snapshots": 1000}


@dataclass(frozen=True)
class Quota:
    instances: int
    cpu: int
    memory: int  # bytes
    disk: int  # bytes
    processes: int
    nesting: bool
    cpu_priority: int  # cap on LXD's limits.cpu.priority (0-10) for this member's instances
    forwards: int  # port forwards on the public address (app/forwards.py)
    records: int  # DNS records and ACME keys in the member's subtree (app/records.py)
    domains: int  # custom domains attached to instances (app/domains.py)
    snapshots: int  # snapshots taken by hand, all instances together (app/snapshots.py)

    def lxd_limits(self) -> dict:
        """The aggregate limits of the member's LXD project."""
        return {"limits.instances": str(self.instances), "limits.cpu": str(self.cpu),
                "limits.memory": format_size(self.memory), "limits.disk": format_size(self.disk),
                "limits.processes": str(self.processes)}


# A co-op's two shares, the defaults seeded into the tiers table (admins
# change them with `flask tier set`): a half share has half of everything
# and a lower CPU priority (like running at nice 10).
TIERS = {
    "full": Quota(instances=4, cpu=6, memory=6 * GiB, disk=40 * GiB, processes=6000, nesting=True,
                  cpu_priority=10, forwards=4, records=20, domains=4, snapshots=10),
    "half": Quota(instances=2, cpu=3, memory=3 * GiB, disk=20 * GiB, processes=3000, nesting=False,
                  cpu_priority=5, forwards=2, records=10, domains=2, snapshots=5),
}
RESOURCES = (("instances", "instances", str), ("cpu", "CPUs", str), ("memory", "memory", format_size),
             ("disk", "disk (root disks and snapshots)", show_size),
             ("processes", "processes", str), ("forwards", "port forwards", str),
             ("records", "DNS records", str), ("domains", "custom domains", str),
             ("snapshots", "manual snapshots", str))


def tiers(db) -> dict[str, Quota]:
    """Every share tier by name."""
    return {name: Quota(**json.loads(quota)) for name, quota in
            db.execute("SELECT name, quota FROM tiers ORDER BY name")}


def quota_for(db, user: dict) -> Quota:
    """The allowance of a member: their tier, with their overrides applied."""
    row = db.execute("SELECT quota FROM tiers WHERE name = ?", [user.get("tier") or "full"]).fetchone()
    if row is None:
        raise NotFound(f"The tier {user.get('tier')!r} of {user['username']} no longer exists.")
    return replace(Quota(**json.loads(row[0])), **json.loads(user.get("quota_overrides") or "{}"))


def set_tier(db, name: str, overrides: dict) -> Quota:
    """Create a tier or change some of its values (a new tier starts from
    'full'); the caller holds the transaction and brings LXD in line."""
    if not TIER_NAME.fullmatch(name):
        raise ValidationError({"name": ["Use 1 to 31 lower-case letters, digits and hyphens, "
                                        "starting with a letter."]})
    check_bounds(overrides)
    current = tiers(db).get(name, tiers(db).get("full", TIERS["full"]))
    quota = replace(current, **overrides)
    db.execute("INSERT INTO tiers (name, quota) VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
               "SET quota = excluded.quota", [name, json.dumps(asdict(quota), sort_keys=True)])
    return quota


def _range(key: str) -> str:
    if key in SIZES:
        return f"must be a size from 0B to {format_size(MAXIMUM[key])}, like 8GiB"
    return f"must be a whole number from 0 to {MAXIMUM[key]}"


def _unknown(key) -> dict[str, list[str]]:
    known = ", ".join(field.name for field in fields(Quota))
    return {shown(key): [f"is not a quota (use {known})"]}


def check_bounds(values: dict) -> None:
    """Raise ValidationError, naming each bound, for typed quota values
    (from the database or a caller) that are unknown or out of bounds."""
    errors = {}
    for key, value in values.items():
        if key == "nesting":
            if not isinstance(value, bool):
                errors[key] = ["must be true or false"]
        elif key not in MAXIMUM:
            errors.update(_unknown(key))
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAXIMUM[key]:
            errors[key] = [_range(key)]
    if errors:
        raise ValidationError(errors)


def parse_overrides(pairs: dict[str, str]) -> dict:
    """Typed values from text (memory=8GiB, instances=6, nesting=false),
    each within its bound; every bad entry is reported at once."""
    overrides, errors = {}, {}
    for key, text in pairs.items():
        if key == "nesting":
            if text.lower() in ("true", "false"):
                overrides[key] = text.lower() == "true"
            else:
                errors[key] = ["must be true or false"]
        elif key not in MAXIMUM:
            errors.update(_unknown(key))
        elif key in SIZES:
            try:
                overrides[key] = parse_size(text)
            except ValueError:
                errors[key] = [_range(key)]
        elif WHOLE.fullmatch(text):
            overrides[key] = int(text)
        else:
            errors[key] = [_range(key)]
    try:
        check_bounds(overrides)
    except ValidationError as error:
        errors.update(error.errors)
    if errors:
        raise ValidationError(errors)
    return overrides


def usage(db, user_id: int) -> dict:
    """What a member's instances take now (failed and denied requests hold
    nothing; disk is the root disks' sizes plus what their snapshots hold),
    the port forwards they hold, their DNS records and ACME keys (which
    count together), their custom domains and their manual snapshots."""
    row = db.execute(
        "SELECT count(*), coalesce(sum(cpu), 0), coalesce(sum(memory), 0), "
        "coalesce(sum(disk + snapshot_bytes), 0), "
        "coalesce(sum(processes), 0), (SELECT count(*) FROM forwards f JOIN instances fi "
        "ON fi.id = f.instance_id WHERE fi.user_id = ?), "
        "(SELECT count(*) FROM dns_records WHERE user_id = ?) + (SELECT count(*) FROM dns_keys "
        "WHERE user_id = ? AND kind = 'acme'), (SELECT count(*) FROM domains WHERE user_id = ?), "
        "(SELECT count(*) FROM snapshots s JOIN instances si ON si.id = s.instance_id "
        "WHERE si.user_id = ? AND s.manual = 1) "
        f"FROM instances WHERE user_id = ? AND status NOT IN {sql_list(RELEASED)}",
        [user_id, user_id, user_id, user_id, user_id, user_id]).fetchone()
    return dict(zip(("instances", "cpu", "memory", "disk", "processes", "forwards", "records",
                     "domains", "snapshots"), row))


def check_one_more(db, user: dict, key: str) -> None:
    """Raise QuotaExceeded when a member already holds their whole allowance
    of a counted resource (forwards, domains, snapshots); inside the caller's transaction."""
    allowance = getattr(quota_for(db, user), key)
    held = usage(db, user["id"])[key]
    if held + 1 > allowance:
        label = next(label for name, label, _show in RESOURCES if name == key)
        raise QuotaExceeded(f"Over quota — {label}: you hold {held} of your {allowance}; remove "
                            "one first or ask for more.")


def show_value(key: str, value) -> str:
    """A quota value as people write it (sizes in GiB/MiB, booleans as true/false)."""
    if key in ("memory", "disk"):
        return format_size(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def snapshots_allowed(quota: Quota, used: dict) -> bool:
    """Whether LXD may take new snapshots in the member's project (by hand
    or on a schedule): the share includes snapshots and the disk quota,
    which snapshots count against, is not full."""
    return quota.snapshots > 0 and used["disk"] < quota.disk


def cpu_priority(quota: Quota, profile) -> int:
    """The instance's CPU priority: the profile's, capped by the member's share."""
    return min(profile.limits.cpu_priority, quota.cpu_priority)


def usage_table(quota: Quota, used: dict) -> list[dict]:
    """Used and allowed for every resource, ready to show."""
    return [{"resource": label, "used": show(used[key]), "allowed": show(getattr(quota, key)),
             "percent": min(100, round(100 * used[key] / getattr(quota, key))) if getattr(quota, key) else 100}
            for key, label, show in RESOURCES]


def exceeded(quota: Quota, used: dict) -> list[tuple[str, str, str]]:
    """(resource, use, allowance), as people write them, for each resource
    whose use passes the allowance."""
    return [(label, show(used[key]), show(getattr(quota, key)))
            for key, label, show in RESOURCES if used[key] > getattr(quota, key)]


def check_within(quota: Quota, used: dict) -> None:
    """Raise QuotaExceeded if current use (with a new reservation) passes any limit."""
    over = [f"{label}: {used_text} of {allowed}"
            for label, used_text, allowed in exceeded(quota, used)]
    if over:
        raise QuotaExceeded("Over quota after reserving — " + "; ".join(over) + ".")


def check_room(quota: Quota, used: dict, profile) -> None:
    """Raise QuotaExceeded naming each limit a new instance would pass."""
    wanted = {"instances": 1, "cpu": profile.limits.cpu, "memory": profile.limits.memory,
              "disk": profile.limits.disk, "processes": profile.limits.processes}
    problems = []
    for key, label, show in RESOURCES:
        if key not in wanted:
            continue
        allowance = getattr(quota, key)
        if used[key] + wanted[key] > allowance:
            problems.append(f"{label}: this needs {show(wanted[key])}, you use {show(used[key])} "
                            f"of your {show(allowance)}")
    if problems:
        raise QuotaExceeded("Over quota — " + "; ".join(problems) + ".")
