"""Member quotas: share tiers, current use, and the check made before acting.

The check runs inside the reservation transaction (BEGIN IMMEDIATE), so two
requests cannot both see room for one more instance. The same numbers are
mirrored into the member's LXD project limits, so LXD refuses too.
"""
import json
from dataclasses import dataclass, fields, replace

from .errors import NotFound, QuotaExceeded, ValidationError
from .units import format_size, parse_size

GiB = 1024 ** 3


@dataclass(frozen=True)
class Quota:
    instances: int
    cpu: int
    memory: int  # bytes
    disk: int  # bytes
    processes: int
    nesting: bool
    cpu_priority: int  # cap on LXD's limits.cpu.priority (0-10) for this member's instances

    def lxd_limits(self) -> dict:
        """The aggregate limits of the member's LXD project."""
        return {"limits.instances": str(self.instances), "limits.cpu": str(self.cpu),
                "limits.memory": format_size(self.memory), "limits.disk": format_size(self.disk),
                "limits.processes": str(self.processes)}


# A co-op's two shares: a half share has half of everything and a lower CPU
# priority (like running at nice 10), so under contention full shares win.
TIERS = {
    "full": Quota(instances=4, cpu=6, memory=6 * GiB, disk=40 * GiB, processes=6000, nesting=True,
                  cpu_priority=10),
    "half": Quota(instances=2, cpu=3, memory=3 * GiB, disk=20 * GiB, processes=3000, nesting=False,
                  cpu_priority=5),
}
RESOURCES = (("instances", "instances", str), ("cpu", "CPUs", str), ("memory", "memory", format_size),
             ("disk", "root disk", format_size), ("processes", "processes", str))


def quota_for(user: dict) -> Quota:
    """The allowance of a member: their tier, with their overrides applied."""
    tier = TIERS[user.get("tier") or "full"]
    return replace(tier, **json.loads(user.get("quota_overrides") or "{}"))


def parse_overrides(pairs: dict[str, str]) -> dict:
    """Typed overrides from text (memory=8GiB, instances=6, nesting=false);
    every bad entry is reported at once."""
    known = {field.name for field in fields(Quota)}
    overrides, errors = {}, {}
    for key, text in pairs.items():
        try:
            if key not in known:
                raise ValueError(f"is not a quota (use {', '.join(sorted(known))})")
            if key in ("memory", "disk"):
                overrides[key] = parse_size(text)
            elif key == "nesting":
                if text.lower() not in ("true", "false"):
                    raise ValueError("must be true or false")
                overrides[key] = text.lower() == "true"
            else:
                overrides[key] = int(text)
                if overrides[key] < 0:
                    raise ValueError("must not be negative")
        except ValueError as error:
            errors[key] = [str(error) if "invalid literal" not in str(error) else "must be a whole number"]
    if errors:
        raise ValidationError(errors)
    return overrides


def set_quota(db, user_id: int, tier: str | None = None, overrides: dict | None = None) -> None:
    """Change a member's tier and/or merge quota overrides."""
    row = db["users"].get(user_id)
    changes = {}
    if tier is not None:
        if tier not in TIERS:
            raise NotFound(f"No tier {tier!r} (tiers: {', '.join(TIERS)}).")
        changes["tier"] = tier
    if overrides:
        merged = {**json.loads(row["quota_overrides"] or "{}"), **overrides}
        changes["quota_overrides"] = json.dumps(merged, sort_keys=True)
    if changes:
        db["users"].update(user_id, changes)


def usage(db, user_id: int) -> dict:
    """What a member's instances take now (failed requests hold nothing)."""
    row = db.execute(
        "SELECT count(*), coalesce(sum(cpu), 0), coalesce(sum(memory), 0), coalesce(sum(disk), 0), "
        "coalesce(sum(processes), 0) FROM instances WHERE user_id = ? AND status != 'failed'",
        [user_id]).fetchone()
    return dict(zip(("instances", "cpu", "memory", "disk", "processes"), row))


def cpu_priority(quota: Quota, profile) -> int:
    """The instance's CPU priority: the profile's, capped by the member's share."""
    return min(profile.limits.cpu_priority, quota.cpu_priority)


def usage_table(quota: Quota, used: dict) -> list[dict]:
    """Used and allowed for every resource, ready to show."""
    return [{"resource": label, "used": show(used[key]), "allowed": show(getattr(quota, key)),
             "percent": min(100, round(100 * used[key] / getattr(quota, key))) if getattr(quota, key) else 100}
            for key, label, show in RESOURCES]


def check_room(quota: Quota, used: dict, profile) -> None:
    """Raise QuotaExceeded naming each limit a new instance would pass."""
    wanted = {"instances": 1, "cpu": profile.limits.cpu, "memory": profile.limits.memory,
              "disk": profile.limits.disk, "processes": profile.limits.processes}
    problems = []
    for key, label, show in RESOURCES:
        allowance = getattr(quota, key)
        if used[key] + wanted[key] > allowance:
            problems.append(f"{label}: this needs {show(wanted[key])}, you use {show(used[key])} "
                            f"of your {show(allowance)}")
    if problems:
        raise QuotaExceeded("Over quota — " + "; ".join(problems) + ".")
