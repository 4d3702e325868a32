"""Member quotas: share tiers, current use, and the check made before acting.

The check runs inside the reservation transaction (BEGIN IMMEDIATE), so two
requests cannot both see room for one more instance. The same numbers are
mirrored into the member's LXD project limits, so LXD refuses too.
"""
from dataclasses import dataclass

from .errors import QuotaExceeded
from .units import format_size

GiB = 1024 ** 3


@dataclass(frozen=True)
class Quota:
    instances: int
    cpu: int
    memory: int  # bytes
    disk: int  # bytes
    processes: int
    nesting: bool

    def lxd_limits(self) -> dict:
        """The aggregate limits of the member's LXD project."""
        return {"limits.instances": str(self.instances), "limits.cpu": str(self.cpu),
                "limits.memory": format_size(self.memory), "limits.disk": format_size(self.disk),
                "limits.processes": str(self.processes)}


# A co-op's two shares: a half share has half of everything.
TIERS = {
    "full": Quota(instances=4, cpu=6, memory=6 * GiB, disk=40 * GiB, processes=6000, nesting=True),
    "half": Quota(instances=2, cpu=3, memory=3 * GiB, disk=20 * GiB, processes=3000, nesting=False),
}
RESOURCES = (("instances", "instances", str), ("cpu", "CPUs", str), ("memory", "memory", format_size),
             ("disk", "root disk", format_size), ("processes", "processes", str))


def quota_for(user: dict) -> Quota:
    """The allowance of a member, from their tier."""
    return TIERS[user.get("tier") or "full"]


def usage(db, user_id: int) -> dict:
    """What a member's instances take now (failed requests hold nothing)."""
    row = db.execute(
        "SELECT count(*), coalesce(sum(cpu), 0), coalesce(sum(memory), 0), coalesce(sum(disk), 0), "
        "coalesce(sum(processes), 0) FROM instances WHERE user_id = ? AND status != 'failed'",
        [user_id]).fetchone()
    return dict(zip(("instances", "cpu", "memory", "disk", "processes"), row))


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
